"""Training losses of §3.5 (Eq. 9-14), in ``keras.ops`` for the TensorFlow and JAX backends."""

import keras
from keras import ops


def reconstruction_loss(prediction, target, mask, hole_weight=1.0, context_weight=1.2):
    """Eq. (11)-(13): ``alpha_1 |y - x| * m + alpha_2 |y - x| * (1 - m)``, averaged.

    The mean is over all pixels and channels (per example, then over the
    batch), so the weights alpha_1 = 1 and alpha_2 = 1.2 keep the paper's
    balance between hole and context whatever the hole size.
    """
    error = ops.abs(prediction - target)
    weights = hole_weight * mask + context_weight * (1.0 - mask)
    return ops.mean(error * weights)


def critic_loss(real_scores, fake_scores):
    """The Wasserstein part of Eq. (9): E[D(x~)] - E[D(x)]."""
    return ops.mean(fake_scores) - ops.mean(real_scores)


def adversarial_loss(fake_scores):
    """Eq. (10): -E[D(x~)]."""
    return -ops.mean(fake_scores)


# Under mixed float16 the critic's backward pass runs in float16, where the per-pixel
# gradients of the penalty (about 1 / sqrt(pixels)) lose precision or underflow; the penalty's
# inner gradient is scaled like a loss (LossScaleOptimizer does this only for the outer one).
# bfloat16 has float32's exponent range and needs no scaling.
PENALTY_GRADIENT_SCALE = 2.0 ** 15


def gradient_norms(critic, interpolated, critic_fn=None):
    """Per-sample ||grad_x D(x)||_2 at ``interpolated`` [B, H, W, C], float32.

    ``critic_fn`` (x -> scores [B, 1]) replaces ``critic(x, training=True)``: a JAX train
    step passes ``lambda x: critic.stateless_call(trainable, non_trainable, x,
    training=True)[0]`` so that the penalty is a function of the variable values it is
    differentiated by. ``critic`` still gives the compute dtype.

    The input gradient is a ``tf.GradientTape`` on TensorFlow and ``jax.grad`` on JAX; other
    backends raise ``NotImplementedError``.
    """
    if critic_fn is None:
        def critic_fn(x):
            return critic(x, training=True)
    interpolated = ops.convert_to_tensor(interpolated)
    scale = PENALTY_GRADIENT_SCALE if critic.compute_dtype == "float16" else 1.0
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(interpolated)
            scores = tf.cast(critic_fn(interpolated), tf.float32) * scale
        grads = tape.gradient(scores, interpolated)
    elif backend == "jax":
        import jax

        # Samples are independent (no batch statistics in the critic), so the gradient of
        # the summed scores holds every sample's own input gradient, as the tape's does.
        def total(x):
            return ops.sum(ops.cast(critic_fn(x), "float32")) * scale
        grads = jax.grad(total)(interpolated)
    else:
        raise NotImplementedError(
            f"gradient_norms needs an input gradient, written for the tensorflow and jax "
            f"backends; got {backend!r}")
    grads = ops.cast(grads, "float32") / scale
    return ops.sqrt(ops.sum(ops.square(grads), axis=(1, 2, 3)) + 1e-12)


def gradient_penalty(critic, real, fake, alpha, critic_fn=None):
    """The penalty of Eq. (9): E[(||grad D(x^)||_2 - 1)^2], x^ = (1 - a) x + a x~.

    ``alpha`` [B, 1, 1, 1] is drawn from U[0, 1] by the caller (Algorithm 1). ``critic_fn``:
    see :func:`gradient_norms`.
    """
    # As tensors, so that NumPy inputs can be watched like the other losses' inputs.
    real, fake, alpha = (ops.convert_to_tensor(t) for t in (real, fake, alpha))
    interpolated = (1.0 - alpha) * real + alpha * fake
    return ops.mean(ops.square(gradient_norms(critic, interpolated, critic_fn) - 1.0))
