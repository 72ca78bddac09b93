import numpy as np
import pytest

from harness import run_layer_test, tensorflow_only, to_numpy
from hifill_tf.layers.gated_conv import ClippedConv2D, GatedConv2D
import reference


@pytest.mark.parametrize("gate", ["full", "ds", "pw", "sc"])
@pytest.mark.parametrize("strides,dilation", [(1, 1), (2, 1), (1, 2)])
def test_gated_conv_harness_and_numerics(gate, strides, dilation, tmp_path):
    rng = np.random.default_rng(0)
    layer, results = run_layer_test(
        GatedConv2D,
        dict(filters=5, kernel_size=3, strides=strides, dilation_rate=dilation, gate=gate),
        lambda h, w: (rng.normal(size=(2, h, w, 4)).astype(np.float32),),
        lambda h, w: (2, -(-h // strides), -(-w // strides), 5),
        sizes=[(8, 12), (11, 7)],
        tmp_path=tmp_path,
    )
    # Eq. (5)-(8) against the NumPy reference, first image of each size.
    feature = layer.feature_conv
    for (inputs,), output in results.values():
        x = inputs[0].astype(np.float64)
        f = reference.conv2d_same(x, feature.kernel.numpy(), feature.bias.numpy(), strides, dilation)
        gates = layer.gate_layers
        if gate == "ds":
            g = reference.depthwise_same(x, gates[0].kernel.numpy(), gates[0].bias.numpy(), strides, dilation)
            g = reference.conv2d_same(g, gates[1].kernel.numpy(), gates[1].bias.numpy())
        elif gate == "pw":
            # The 1x1 gate reads the pixel the feature kernel is centred on (at stride 2 that
            # is 2i + 1 for even sizes, not the 2i a 1x1 stride-2 conv would take).
            centres = reference.centre_pixels(x, 3, strides, dilation)
            g = reference.conv2d_same(centres, gates[0].kernel.numpy(), gates[0].bias.numpy())
        else:
            g = reference.conv2d_same(x, gates[0].kernel.numpy(), gates[0].bias.numpy(), strides, dilation)
        if gate == "sc":
            assert g.shape[-1] == 1  # one gate broadcast over all features (Eq. 8)
        expected = reference.sigmoid(g) * reference.elu(f)
        np.testing.assert_allclose(output[0], expected, atol=1e-4)


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("size", [8, 9])
def test_pw_gate_and_feature_see_the_same_pixel(kernel_size, size):
    # A feature kernel that is a delta at its centre copies the pixel it is centred on; a pw gate
    # with an identity 1x1 kernel must then see exactly the same values, at every output pixel.
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, size, size + 2, 4)).astype(np.float32)
    layer = GatedConv2D(4, kernel_size, strides=2, gate="pw")
    layer.build(x.shape)
    delta = np.zeros((kernel_size, kernel_size, 4, 4), np.float32)
    delta[kernel_size // 2, kernel_size // 2] = np.eye(4)
    layer.feature_conv.kernel.assign(delta)
    layer.feature_conv.bias.assign(np.zeros(4, np.float32))
    layer.gate_layers[0].kernel.assign(np.eye(4, dtype=np.float32)[None, None])
    layer.gate_layers[0].bias.assign(np.zeros(4, np.float32))
    seen_by_feature = to_numpy(layer.feature_conv(x))
    seen_by_gate = to_numpy(layer.gate_layers[0](layer._feature_centres(x)))
    np.testing.assert_array_equal(seen_by_gate, seen_by_feature)
    # Hand-computed for even sizes, k = 3 or 5: output (i, j) is centred on input (2i + 1, 2j + 1).
    if size % 2 == 0:
        np.testing.assert_array_equal(seen_by_feature[0], x[0, 1::2, 1::2])


def test_table1_gate_parameter_counts():
    # Table 1: gate-branch weights for a 3x3 kernel, 32 -> 32 channels.
    expected = {"full": 9216, "ds": 1312, "pw": 1024, "sc": 288}
    for gate, count in expected.items():
        layer = GatedConv2D(32, 3, gate=gate)
        layer.build((None, 16, 16, 32))
        assert layer.gate_weight_count() == count, gate


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="'lw'"):
        GatedConv2D(8, gate="lw")
    with pytest.raises(ValueError, match="strides=2"):
        GatedConv2D(8, strides=2, dilation_rate=2)


def test_clipped_output_conv(tmp_path):
    rng = np.random.default_rng(1)
    layer, results = run_layer_test(
        ClippedConv2D, dict(filters=3, kernel_size=3),
        lambda h, w: (rng.normal(scale=10, size=(1, h, w, 6)).astype(np.float32),),
        lambda h, w: (1, h, w, 3), sizes=[(6, 6), (9, 5)], tmp_path=tmp_path)
    for (inputs,), output in results.values():
        raw = reference.conv2d_same(inputs[0].astype(np.float64), layer.conv.kernel.numpy(), layer.conv.bias.numpy())
        np.testing.assert_allclose(output[0], np.clip(raw, -1, 1), atol=1e-4)
        assert (np.abs(raw) > 1).any()  # the clip was exercised


@tensorflow_only("the single-op dilated convolution of inference is a TF graph fast path")
@pytest.mark.parametrize("gate", ["sc", "pw"])  # the generator's coarse and refine gates
def test_dilated_inference_and_training_paths_agree_and_training_has_gradients(gate):
    """Inference runs a dilated conv as one op, training as space-to-batch (the form with a
    gradient on a CPU without oneDNN, as these tests run): the same Eq. (5)-(8) either way."""
    import tensorflow as tf

    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 13, 10, 4)).astype(np.float32)
    layer = GatedConv2D(5, 3, dilation_rate=2, gate=gate)
    layer.build(x.shape)
    spec = tf.TensorSpec([None, None, None, 4], tf.float32)
    graphs = {}
    for training in (False, True):
        function = tf.function(lambda t, training=training: layer(t, training=training),
                               input_signature=[spec])
        graphs[training] = {op.type for op in function.get_concrete_function().graph.get_operations()}
        np.testing.assert_allclose(function(x).numpy(), layer(x, training=False).numpy(), atol=1e-5)
    assert "SpaceToBatchND" not in graphs[False] and "SpaceToBatchND" in graphs[True]
    # (test_gated_conv_harness_and_numerics checks the inference path against NumPy.)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads)
