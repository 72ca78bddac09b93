"""The losses of §3.5 (Eq. 9-14) against NumPy and hand-computed values, on the running backend."""

import numpy as np
import pytest
import keras
from keras import ops

from harness import BACKEND, tensorflow_only, to_numpy
from hifill_tf.training import losses
import reference


def _gradients(fn, *args):
    """The gradients of the scalar ``fn(*args)`` with respect to every argument, as NumPy."""
    args = [ops.convert_to_tensor(a) for a in args]
    if BACKEND == "jax":
        import jax

        grads = jax.grad(fn, argnums=tuple(range(len(args))))(*args)
    else:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        grads = tape.gradient(value, args)
    return [to_numpy(g) for g in grads]


def _stateless(model, trainable):
    """``model``'s scores as a function of its trainable values (a JAX train step's form)."""
    non_trainable = [v.value for v in model.non_trainable_variables]
    return lambda x: model.stateless_call(list(trainable), non_trainable, x, training=True)[0]


# ----------------------------------------------------------------------------
# Eq. (11)-(13): reconstruction loss; Eq. (9), (10): signs of the WGAN losses.
# ----------------------------------------------------------------------------

def test_reconstruction_loss_matches_numpy():
    rng = np.random.default_rng(0)
    prediction = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    target = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    mask = (rng.uniform(size=(2, 16, 16, 1)) < 0.3).astype(np.float32)
    for weights in ((), (0.5, 3.0)):  # the paper's alpha_1 = 1, alpha_2 = 1.2, and others
        got = float(losses.reconstruction_loss(prediction, target, mask, *weights))
        expected = reference.reconstruction_loss(prediction, target, mask, *weights)
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_reconstruction_loss_weights_hole_and_context():
    # mask = 1 is the hole (§3.5): alpha_1 = 1 there, alpha_2 = 1.2 on the context.
    target = np.zeros((1, 8, 8, 3), np.float32)
    mask = np.zeros((1, 8, 8, 1), np.float32)
    mask[:, :2] = 1.0  # a quarter of the pixels
    in_hole = np.where(mask > 0, 0.5, 0.0) + target
    in_context = np.where(mask > 0, 0.0, 0.5) + target
    np.testing.assert_allclose(float(losses.reconstruction_loss(in_hole, target, mask)),
                               0.5 * 1.0 * 0.25, rtol=1e-6)
    np.testing.assert_allclose(float(losses.reconstruction_loss(in_context, target, mask)),
                               0.5 * 1.2 * 0.75, rtol=1e-6)


def test_wasserstein_loss_values_and_signs():
    real = np.array([[2.0], [4.0]], np.float32)
    fake = np.array([[1.0], [0.0]], np.float32)
    # Eq. (9) without the penalty: E[D(x~)] - E[D(x)]; Eq. (10): -E[D(x~)].
    np.testing.assert_allclose(float(losses.critic_loss(real, fake)), 0.5 - 3.0)
    np.testing.assert_allclose(float(losses.adversarial_loss(fake)), -0.5)

    # Behaviour: descending L_d separates real from fake scores; descending
    # L_adv raises the critic's score of the fakes.
    rng = np.random.default_rng(1)
    real_x = rng.normal(size=(4, 6)).astype(np.float32)
    fake_x = rng.normal(size=(4, 6)).astype(np.float32)
    critic = keras.layers.Dense(1)
    critic.build((None, 6))
    weights = [v.numpy() for v in critic.trainable_variables]

    def gap(weights):
        scores = _stateless(critic, weights)
        return float(ops.mean(scores(real_x)) - ops.mean(scores(fake_x)))

    grads = _gradients(lambda *w: losses.critic_loss(_stateless(critic, w)(real_x),
                                                     _stateless(critic, w)(fake_x)), *weights)
    assert gap([w - 0.1 * g for w, g in zip(weights, grads)]) > gap(weights)
    scores = _stateless(critic, weights)
    (grad,) = _gradients(lambda x: losses.adversarial_loss(scores(x)), fake_x)
    assert float(ops.mean(scores(fake_x - 0.1 * grad))) > float(ops.mean(scores(fake_x)))


# ----------------------------------------------------------------------------
# Eq. (9): the gradient penalty against hand-computed values.
# ----------------------------------------------------------------------------

def _linear_critic(weights, bias, shape):
    critic = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(1)])
    critic.layers[-1].set_weights([weights.reshape(-1, 1), np.array([bias], np.float32)])
    return critic


def _linear_case(scale):
    # D(x) = <w, x> + b: grad_x D = w for every x, so the penalty is exactly
    # (||w||_2 - 1)^2 whatever the images and alpha, and its gradient with
    # respect to w (the second-order term that trains the critic) is
    # 2 (||w|| - 1) w / ||w||.
    rng = np.random.default_rng(2)
    shape = (4, 4, 3)
    w = rng.normal(size=shape).astype(np.float32)
    w *= scale / np.linalg.norm(w)
    real = rng.uniform(-1, 1, (3,) + shape).astype(np.float32)
    fake = rng.uniform(-1, 1, (3,) + shape).astype(np.float32)
    alpha = rng.uniform(size=(3, 1, 1, 1)).astype(np.float32)
    return _linear_critic(w, 0.7, shape), real, fake, alpha, 2 * (scale - 1) * w / scale


@pytest.mark.parametrize("scale", [0.3, 2.5])
def test_gradient_penalty_linear_critic(scale):
    critic, real, fake, alpha, expected_grad = _linear_case(scale)
    for a in (np.zeros_like(alpha), np.ones_like(alpha), alpha):
        penalty = losses.gradient_penalty(critic, real, fake, a)
        np.testing.assert_allclose(float(penalty), (scale - 1.0) ** 2, rtol=1e-5)

    # Differentiable w.r.t. the critic's weights, with the critic passed as a function of them.
    def penalty(kernel, bias):
        return losses.gradient_penalty(critic, real, fake, alpha,
                                       critic_fn=_stateless(critic, [kernel, bias]))

    kernel, bias = critic.layers[-1].kernel.numpy(), critic.layers[-1].bias.numpy()
    np.testing.assert_allclose(float(penalty(kernel, bias)), (scale - 1.0) ** 2, rtol=1e-5)
    grad, _ = _gradients(penalty, kernel, bias)
    np.testing.assert_allclose(grad.reshape(expected_grad.shape), expected_grad,
                               rtol=1e-4, atol=1e-6)


@tensorflow_only("the TF train step differentiates the critic's variables by tape")
@pytest.mark.parametrize("scale", [0.3, 2.5])
def test_gradient_penalty_linear_critic_variables_by_tape(scale):
    import tensorflow as tf

    critic, real, fake, alpha, expected_grad = _linear_case(scale)
    kernel = critic.layers[-1].kernel
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(critic, real, fake, alpha)
    grad = tape.gradient(penalty, kernel)
    assert grad is not None, "the penalty must be differentiable w.r.t. the critic's weights"
    np.testing.assert_allclose(grad.numpy().reshape(expected_grad.shape), expected_grad,
                               rtol=1e-4, atol=1e-6)


def test_gradient_penalty_interpolates_per_sample():
    # D(x) = ||x||^2 / 2 has grad_x D = x, so the penalty is the mean over
    # samples of (||x^_i|| - 1)^2 with x^_i = (1 - a_i) x_i + a_i x~_i (Algorithm 1).
    class Quadratic(keras.Model):
        def call(self, x, training=None):
            return 0.5 * ops.sum(ops.square(x), axis=(1, 2, 3))

    rng = np.random.default_rng(3)
    real = (rng.uniform(-1, 1, (3, 4, 4, 3)) * np.reshape([0.05, 0.3, 1], (3, 1, 1, 1))).astype(np.float32)
    fake = rng.uniform(-1, 1, (3, 4, 4, 3)).astype(np.float32)
    alpha = np.reshape([0.1, 0.5, 0.8], (3, 1, 1, 1)).astype(np.float32)
    hat = (1 - alpha) * real.astype(np.float64) + alpha * fake
    norms = np.sqrt((hat ** 2).sum(axis=(1, 2, 3)))
    expected = np.mean((norms - 1.0) ** 2)
    got = float(losses.gradient_penalty(Quadratic(), real, fake, alpha))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Swapping the roles of real and fake (x^ = a x + (1 - a) x~) gives another value.
    swapped = float(losses.gradient_penalty(Quadratic(), fake, real, alpha))
    assert abs(swapped - expected) > 1e-2


def test_gradient_penalty_nonlinear_critic_matches_analytic_gradient():
    # D(x) = v . tanh(U x + c) + d: grad_x D = U^T (v * (1 - tanh^2(U x + c))).
    rng = np.random.default_rng(4)
    shape, hidden = (3, 3, 2), 5
    u = rng.normal(0, 0.5, (18, hidden)).astype(np.float32)
    c = rng.normal(0, 0.5, hidden).astype(np.float32)
    v = rng.normal(0, 1.0, (hidden, 1)).astype(np.float32)
    critic = keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                               keras.layers.Dense(hidden, activation="tanh"), keras.layers.Dense(1)])
    critic.layers[1].set_weights([u, c])
    critic.layers[2].set_weights([v, np.array([0.2], np.float32)])
    real = rng.uniform(-1, 1, (4,) + shape).astype(np.float32)
    fake = rng.uniform(-1, 1, (4,) + shape).astype(np.float32)
    alpha = rng.uniform(size=(4, 1, 1, 1)).astype(np.float32)

    hat = ((1 - alpha) * real.astype(np.float64) + alpha * fake).reshape(4, -1)
    grads = (v[:, 0] * (1 - np.tanh(hat @ u + c) ** 2)) @ u.T
    expected = np.mean((np.linalg.norm(grads, axis=1) - 1.0) ** 2)
    got = float(losses.gradient_penalty(critic, real, fake, alpha))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_penalty_gradient_keeps_float16_precision_under_mixed_precision():
    # D(x) = (x W1) W2 with weights near 1e-4: the input gradient W1 W2 is near 1e-8 per pixel,
    # below float16's smallest subnormal (6e-8), so an unscaled float16 backward pass returns
    # (almost) zeros; the scaled inner gradient must give ||W1 W2|| to float16 precision.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        rng = np.random.default_rng(0)
        w1 = rng.uniform(0.5e-4, 1.5e-4, (8 * 8 * 3, 4)).astype(np.float32)
        w2 = rng.uniform(0.5e-4, 1.5e-4, (4, 1)).astype(np.float32)
        critic = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                                   keras.layers.Dense(4, use_bias=False),
                                   keras.layers.Dense(1, use_bias=False)])
        critic.layers[-2].kernel.assign(w1)
        critic.layers[-1].kernel.assign(w2)
        assert critic.compute_dtype == "float16"
        x = ops.convert_to_tensor(rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32))
        norms = to_numpy(losses.gradient_norms(critic, x))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    exact = np.linalg.norm(w1.astype(np.float16).astype(np.float64) @ w2.astype(np.float16))
    exact = np.sqrt(exact ** 2 + 1e-12)  # gradient_norms' epsilon, not small at this scale
    np.testing.assert_allclose(norms, exact, rtol=5e-3)
