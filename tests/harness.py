"""One harness that runs any hifill layer through the checks of STYLE.md.

build, eager call and tf.function call with unknown spatial size at two
sizes, output shape and dtype, get_config/from_config round trip, and a
.keras save/load that reproduces the outputs.
"""

import numpy as np
import keras
import tensorflow as tf


def run_layer_test(layer_cls, init_kwargs, make_inputs, expected_shape, sizes, tmp_path, atol=1e-5):
    """Check one layer class.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        make_inputs: callable (height, width) -> tuple of numpy arrays (positional call args).
        expected_shape: callable (height, width) -> expected output shape tuple.
        sizes: two or more (height, width) pairs.
    Returns the layer and its outputs per size, for extra numeric checks.
    """
    layer = layer_cls(**init_kwargs)
    results = {}
    signature = None
    traced = None
    for height, width in sizes:
        inputs = make_inputs(height, width)
        eager = layer(*inputs)
        assert tuple(eager.shape) == tuple(expected_shape(height, width)), (height, width, eager.shape)
        assert eager.dtype == tf.float32
        if traced is None:
            # Unknown batch, height and width: one trace must serve every size.
            signature = [tf.TensorSpec([None, None, None] + list(x.shape[3:]) if x.ndim == 4
                                       else [None] * x.ndim, tf.float32) for x in inputs]
            traced = tf.function(lambda *args: layer(*args), input_signature=signature)
        graph = traced(*inputs)
        np.testing.assert_allclose(graph.numpy(), eager.numpy(), atol=atol)
        results[(height, width)] = (inputs, eager.numpy())
    assert traced.experimental_get_tracing_count() == 1

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    for key, value in init_kwargs.items():
        assert config[key] == value, key

    # .keras round trip through a functional wrapper with unknown spatial size.
    inputs = results[sizes[0]][0]
    symbolic = [keras.Input(shape=(None, None) + x.shape[3:]) if x.ndim == 4
                else keras.Input(shape=x.shape[1:]) for x in inputs]
    model = keras.Model(symbolic, layer_cls(**init_kwargs)(*symbolic))
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    for size in sizes:
        ins, _ = results[size]
        np.testing.assert_allclose(restored(list(ins)).numpy(), model(list(ins)).numpy(), atol=atol)
    return layer, results
