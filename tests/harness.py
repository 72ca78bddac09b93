"""One harness that runs any hifill layer through the checks of STYLE.md, on the running backend.

build, eager call and compiled call at two sizes, output shape and dtype, get_config/from_config
round trip, and a .keras save/load that reproduces the outputs. The compiled call: on TensorFlow
a ``tf.function`` with unknown batch, height and width that traces once for every size (one
SavedModel signature serves every photo size); on JAX a ``jax.jit`` of the layer's
``stateless_call`` (JAX compiles per shape).
"""

import numpy as np
import keras
import pytest
from keras import ops

BACKEND = keras.backend.backend()


def tensorflow_only(reason):
    """Skip a test outside TensorFlow (the JAX pass of tests/test_jax_backend.py), saying why."""
    return pytest.mark.skipif(BACKEND != "tensorflow", reason=f"TensorFlow only: {reason}")


def to_numpy(x):
    return ops.convert_to_numpy(x)


class _Compiled:
    """``layer(*inputs)`` compiled the backend's way; ``traces`` counts TensorFlow traces."""

    def __init__(self, layer, inputs):
        self.layer = layer
        if BACKEND == "tensorflow":
            import tensorflow as tf

            # Unknown batch, height and width: one trace must serve every size.
            signature = [tf.TensorSpec([None, None, None] + list(x.shape[3:]) if x.ndim == 4
                                       else [None] * x.ndim, tf.float32) for x in inputs]
            self.function = tf.function(lambda *args: layer(*args), input_signature=signature)
        elif BACKEND == "jax":
            import jax

            self.function = jax.jit(lambda trainable, non_trainable, *args: layer.stateless_call(
                trainable, non_trainable, *args)[0])
        else:
            raise NotImplementedError(f"no compiled call for the {BACKEND!r} backend")

    def __call__(self, *inputs):
        if BACKEND == "jax":
            return self.function([v.value for v in self.layer.trainable_variables],
                                 [v.value for v in self.layer.non_trainable_variables], *inputs)
        return self.function(*inputs)

    def traces(self):
        return self.function.experimental_get_tracing_count() if BACKEND == "tensorflow" else None


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
    compiled = None
    for height, width in sizes:
        inputs = make_inputs(height, width)
        eager = layer(*inputs)
        assert tuple(eager.shape) == tuple(expected_shape(height, width)), (height, width, eager.shape)
        assert keras.backend.standardize_dtype(eager.dtype) == "float32"
        compiled = compiled or _Compiled(layer, inputs)
        np.testing.assert_allclose(to_numpy(compiled(*inputs)), to_numpy(eager), atol=atol)
        results[(height, width)] = (inputs, to_numpy(eager))
    assert compiled.traces() in (1, None)

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
        np.testing.assert_allclose(to_numpy(restored(list(ins))), to_numpy(model(list(ins))),
                                   atol=atol)
    return layer, results
