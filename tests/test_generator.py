import numpy as np
import pytest
import keras

from harness import tensorflow_only, to_numpy
from hifill_tf.layers.gated_conv import ClippedConv2D, GatedConv2D
from hifill_tf.models.generator import CELL, Generator, cell_mask


@pytest.fixture(scope="module")
def generator():
    generator = Generator()
    generator.build()  # not every test calls it first (pytest-xdist may reorder them)
    return generator


def _inputs(rng, batch, height, width):
    image = rng.uniform(-1, 1, size=(batch, height, width, 3)).astype(np.float32)
    mask = np.zeros((batch, height, width, 1), np.float32)
    mask[:, height // 4:height // 2, width // 3:width // 2] = 1
    mask[0, -40:-10, 10:60] = 1
    return image, mask


def test_cell_mask_is_the_attention_grid_of_the_hole():
    assert CELL == 16  # §3.2: a 32 x 32 attention grid on the 512 x 512 input
    hole = np.zeros((2, 64, 96, 1), np.float32)
    hole[1, 17, 95] = 1.0
    cells = to_numpy(cell_mask(hole))
    assert cells.dtype == np.float32 and cells.shape == (2, 4, 6, 1)
    assert cells.sum() == 1 and cells[1, 1, 5, 0] == 1


@pytest.mark.parametrize("height,width", [(256, 256), (256, 512)])
def test_generator_outputs(generator, height, width):
    rng = np.random.default_rng(0)
    image, mask = _inputs(rng, 2, height, width)
    out = generator(image, mask)
    assert {keras.backend.standardize_dtype(v.dtype) for v in out.values()} == {"float32"}
    out = {key: to_numpy(value) for key, value in out.items()}
    n = (height // 16) * (width // 16)
    assert set(out) == {"coarse", "refined", "inpainted", "scores"}
    for key in ("coarse", "refined", "inpainted"):
        assert out[key].shape == (2, height, width, 3)
        assert out[key].min() >= -1 and out[key].max() <= 1
    assert out["scores"].shape == (2, n, n)
    np.testing.assert_allclose(out["scores"].sum(axis=1), 1.0, atol=1e-4)
    # The paste: outside the hole the inpainted image is the input, bit for bit.
    keep = np.broadcast_to(mask == 0, image.shape)
    np.testing.assert_array_equal(out["inpainted"][keep], image[keep])
    hole = np.broadcast_to(mask == 1, image.shape)
    np.testing.assert_array_equal(out["inpainted"][hole], out["refined"][hole])


def test_generator_ignores_hole_content(generator):
    # The generator sees x * (1 - m): whatever is under the hole cannot leak out.
    rng = np.random.default_rng(1)
    image, mask = _inputs(rng, 1, 256, 256)
    other = np.where(mask > 0, rng.uniform(-1, 1, image.shape), image).astype(np.float32)
    a, b = generator(image, mask), generator(other, mask)
    np.testing.assert_allclose(to_numpy(a["refined"]), to_numpy(b["refined"]), atol=1e-6)


# The appendix, transcribed by hand for this test (not parsed from the model's spec strings):
# (kernel, stride, channels, dilation) of every convolution, in order.
APPENDIX_COARSE = ([(5, 2, 32, 1), (3, 1, 32, 1), (3, 2, 64, 1)] + [(3, 1, 64, 1)] * 5
                   + [(3, 1, 64, 2)] * 6 + [(3, 1, 64, 4)] * 5 + [(3, 1, 64, 8)] * 2
                   + [(3, 1, 64, 1)] * 4 + [(3, 1, 32, 1), (3, 1, 3, 1)])
APPENDIX_REFINE = {
    "encoder1": [(5, 2, 32, 1), (3, 1, 32, 1)],
    "encoder2": [(3, 2, 64, 1), (3, 1, 64, 1)],
    "encoder3": [(3, 2, 128, 1), (3, 1, 128, 1), (3, 1, 128, 2), (3, 1, 128, 4), (3, 1, 128, 8),
                 (3, 1, 128, 16)],
    "decoder3": [(3, 1, 128, 1), (3, 1, 64, 1), (3, 1, 64, 1)],
    "decoder2": [(3, 1, 32, 1), (3, 1, 32, 1)],
    "decoder1": [(3, 1, 3, 1)],
}
APPENDIX_TRANSFER = {3: [(3, 1, 128, 1)], 2: [(3, 1, 64, 1), (3, 1, 64, 2)],
                     1: [(3, 1, 32, 1), (3, 1, 32, 2)]}
# Input channels of each stack: RGB + mask, and the concatenations of Figure 2.
STACK_INPUTS = {"coarse": 4, "encoder1": 4, "encoder2": 32, "encoder3": 64,
                "decoder3": 128 + 128, "decoder2": 64 + 64, "decoder1": 32 + 32,
                3: 128, 2: 64, 1: 32}


def _conv_specs(layers):
    specs = []
    for layer in layers:
        conv = getattr(layer, "feature_conv", None) or getattr(layer, "conv", None)
        if conv is not None:
            specs.append((conv.kernel_size[0], conv.strides[0], conv.filters, conv.dilation_rate[0]))
    return specs


def _expected_params(specs, channels, gate):
    """Weights of a stack from its appendix list: feature conv + gate (Eq. 7, 8) per layer."""
    total = 0
    for index, (k, _, c, _) in enumerate(specs):
        total += k * k * channels * c + c  # feature (or output) convolution
        if index < len(specs) - 1 or c != 3:  # the K3S1C3 output conv has no gate
            total += k * k * channels + 1 if gate == "sc" else channels * c + c
        channels = c
    return total


def test_layers_match_the_appendix(generator):
    assert _conv_specs(generator.coarse) == APPENDIX_COARSE
    for name, specs in APPENDIX_REFINE.items():
        assert _conv_specs(generator.refine[name]) == specs, name
    for level, specs in APPENDIX_TRANSFER.items():
        assert _conv_specs(generator.branches[level]) == specs, level
    # Resampling of the coarse network: downsample first, three 2x up-samplings (the last after clip).
    kinds = [type(l).__name__ for l in generator.coarse]
    assert kinds[0] == "AveragePooling2D" and kinds[-1] == "Upsample2x"
    assert kinds.count("Upsample2x") == 3 and kinds[-2] == "ClippedConv2D"
    expected = _expected_params(APPENDIX_COARSE, STACK_INPUTS["coarse"], "sc")
    expected += sum(_expected_params(specs, STACK_INPUTS[name], "pw")
                    for name, specs in {**APPENDIX_REFINE, **APPENDIX_TRANSFER}.items())
    assert generator.count_params() == expected


def test_paper_configuration_and_parameter_count(generator):
    config = generator.get_config()
    assert config["coarse_gate"] == "sc" and config["refine_gate"] == "pw"
    gated = [l for l in generator._flatten_layers() if isinstance(l, GatedConv2D)]
    coarse = [l for l in gated if l.name.startswith("coarse")]
    assert {l.gate for l in coarse} == {"sc"}
    assert {l.gate for l in gated if l not in coarse} == {"pw"}
    assert len([l for l in generator._flatten_layers() if isinstance(l, ClippedConv2D)]) == 2
    assert len(coarse) == len(APPENDIX_COARSE) - 1  # every conv but the output one is gated
    # §4: "The final model has a total of 2.7M parameters".
    assert 2.6e6 < generator.count_params() < 2.8e6


def test_generator_keras_round_trip(generator, tmp_path):
    rng = np.random.default_rng(2)
    image, mask = _inputs(rng, 1, 128, 192)
    path = tmp_path / "generator.keras"
    generator.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(restored(image, mask)["refined"]),
                               to_numpy(generator(image, mask)["refined"]), atol=1e-6)
    assert Generator.from_config(generator.get_config()).get_config() == generator.get_config()


@tensorflow_only("one tf.function trace (one SavedModel signature) serves every size")
def test_generator_traces_once_for_any_size(generator):
    import tensorflow as tf

    fn = tf.function(lambda i, m: generator(i, m)["inpainted"], input_signature=[
        tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, None, 1])])
    rng = np.random.default_rng(3)
    for size in [(64, 96), (128, 64)]:
        assert fn(*_inputs(rng, 1, *size)).shape == (1, *size, 3)
    assert fn.experimental_get_tracing_count() == 1


def test_initial_outputs_are_not_vanishing(generator):
    # Deep gated stacks shrink the signal at Glorot init (coarse output ~1e-11);
    # the feature initialiser keeps both outputs at a trainable scale.
    rng = np.random.default_rng(5)
    image, mask = _inputs(rng, 1, 256, 256)
    out = Generator()(image, mask)
    for key in ("coarse", "refined"):
        std = float(np.std(to_numpy(out[key])))
        assert 0.05 < std < 0.95, (key, std)
