import numpy as np
import pytest

from hifill_tf.models.generator import Generator
from hifill_tf.weights import generator_config, load_generator, save_generator_weights


def test_float16_round_trip_into_any_instance(tmp_path):
    source = Generator(refine_gate="ds")
    path = str(tmp_path / "w.npz")
    save_generator_weights(source, path)
    assert generator_config(path)["refine_gate"] == "ds"
    loaded = load_generator(path)  # a second Generator in the process: automatic name differs
    assert loaded.name != source.name and loaded.refine_gate == "ds"
    for a, b in zip(loaded.weights, source.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy().astype(np.float16).astype(np.float32))
    with pytest.raises(ValueError, match="missing"):
        load_generator_weights_into_other_gates(path)


def load_generator_weights_into_other_gates(path):
    from hifill_tf.weights import load_generator_weights
    return load_generator_weights(Generator(refine_gate="pw"), path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_generator(str(tmp_path / "nope.npz"))


def test_network_pixels_travel_with_the_weights_and_are_the_default_budget(tmp_path):
    from hifill_tf import api, cra

    keras_seed(1)
    source = Generator()
    plain, small = str(tmp_path / "plain.npz"), str(tmp_path / "small.npz")
    save_generator_weights(source, plain)
    save_generator_weights(source, small, network_pixels=64 * 64)
    without = load_generator(plain)
    assert without.network_pixels is None
    generator = load_generator(small)
    assert generator.network_pixels == 4096
    assert cra.network_pixels(generator) == 4096
    assert cra.network_pixels(generator, 512 * 512) == 512 * 512  # an explicit budget wins
    assert cra.network_pixels(without) == 512 * 512  # the paper's budget (§4.1)
    # Re-saving keeps it.
    save_generator_weights(generator, str(tmp_path / "again.npz"))
    assert load_generator(str(tmp_path / "again.npz")).network_pixels == 4096

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    mask = np.zeros((256, 256), np.uint8)
    mask[100:160, 90:170] = 1
    default = api.inpaint(image, mask, generator)  # 64x64 network input: f = 4
    np.testing.assert_array_equal(default, api.inpaint(image, mask, generator, max_pixels=4096))
    assert not np.array_equal(default, api.inpaint(image, mask, generator, max_pixels=512 * 512))
    # The budget is an input of the one graph: three budgets, one trace.
    assert api._functions[(id(generator), 0)][1].experimental_get_tracing_count() == 1


def keras_seed(seed):
    import keras

    keras.utils.set_random_seed(seed)


def test_reordered_layers_fail_to_load_instead_of_loading_wrongly(tmp_path, monkeypatch):
    # Two same-shaped layers swapped (a K3S1C64 and a K3S1C64D2): loading by position would
    # succeed silently with each weight in the wrong layer; by name it must fail.
    from hifill_tf.models import generator as generator_module
    from hifill_tf.weights import load_generator_weights

    path = str(tmp_path / "w.npz")
    save_generator_weights(Generator(), path)
    spec = generator_module.COARSE_SPEC
    swapped = spec.replace("K3S1C64 - K3S1C64D2 - ", "K3S1C64D2 - K3S1C64 - ", 1)
    assert swapped != spec
    monkeypatch.setattr(generator_module, "COARSE_SPEC", swapped)
    with pytest.raises(ValueError, match=r"w.npz: weights do not match .* 8 missing.*8 unexpected"):
        load_generator_weights(Generator(), path)
