"""FusedAdam: Adam's equations, Keras Adam's variables and checkpoints, one kernel per variable."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from hifill_tf.training.optimizers import FusedAdam
from reference import numpy_adam

SHAPES = [(3, 3, 4, 8), (8,)]


def _case(seed=0, steps=4):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    gradients = [[rng.normal(scale=10.0 ** -k, size=s).astype(np.float32) for s in SHAPES]
                 for k in range(steps)]  # gradients from 1 down to 1e-3: epsilon matters
    return weights, gradients


def _train(optimizer, weights, gradients, graph):
    variables = [keras.Variable(w) for w in weights]
    optimizer.build(variables)
    apply = lambda g: optimizer.apply(g, variables)  # noqa: E731
    if graph:
        apply = tf.function(apply, autograph=False)
    for step in gradients:
        apply([tf.constant(g) for g in step])
    return variables


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
def test_matches_adam_equations_and_keras_adam(graph):
    weights, gradients = _case()
    settings = dict(learning_rate=1e-2, beta_1=0.5, beta_2=0.9, epsilon=1e-3)
    fused = _train(FusedAdam(**settings), weights, gradients, graph)
    want = numpy_adam(weights, gradients, 1e-2, 0.5, 0.9, 1e-3)
    plain = _train(keras.optimizers.Adam(**settings), weights, gradients, graph)
    for f, w, p in zip(fused, want, plain):
        np.testing.assert_allclose(np.array(f), w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.array(f), np.array(p), rtol=1e-6, atol=1e-7)
        assert not np.allclose(np.array(f), weights[SHAPES.index(f.shape)], atol=1e-3)


def test_reads_keras_adam_checkpoints_and_continues_like_it(tmp_path):
    # Checkpoints written before FusedAdam (plain Keras Adam) resume with the same state.
    weights, gradients = _case(seed=1, steps=6)
    plain = keras.optimizers.Adam(1e-2, beta_1=0.5, beta_2=0.9)
    variables = _train(plain, weights, gradients[:3], graph=True)
    path = tf.train.Checkpoint(optimizer=plain, weights=variables).write(str(tmp_path / "ckpt"))

    fused = FusedAdam(1e-2, beta_1=0.5, beta_2=0.9)
    restored = [keras.Variable(np.zeros(s, np.float32)) for s in SHAPES]
    fused.build(restored)
    tf.train.Checkpoint(optimizer=fused, weights=restored).read(path).assert_consumed()
    assert int(fused.iterations) == 3
    for step in gradients[3:]:
        plain.apply([tf.constant(g) for g in step], variables)
        fused.apply([tf.constant(g) for g in step], restored)
    for r, v in zip(restored, variables):
        np.testing.assert_allclose(np.array(r), np.array(v), rtol=1e-6, atol=1e-7)
