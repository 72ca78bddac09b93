import numpy as np
import pytest

from harness import run_layer_test
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
            g = reference.conv2d_same(x, gates[0].kernel.numpy(), gates[0].bias.numpy(), strides)
        else:
            g = reference.conv2d_same(x, gates[0].kernel.numpy(), gates[0].bias.numpy(), strides, dilation)
        if gate == "sc":
            assert g.shape[-1] == 1  # one gate broadcast over all features (Eq. 8)
        expected = reference.sigmoid(g) * reference.elu(f)
        np.testing.assert_allclose(output[0], expected, atol=1e-4)


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
