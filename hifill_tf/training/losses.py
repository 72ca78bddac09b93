"""Training losses of §3.5 (Eq. 9-14)."""

import tensorflow as tf


def reconstruction_loss(prediction, target, mask, hole_weight=1.0, context_weight=1.2):
    """Eq. (11)-(13): ``alpha_1 |y - x| * m + alpha_2 |y - x| * (1 - m)``, averaged.

    The mean is over all pixels and channels (per example, then over the
    batch), so the weights alpha_1 = 1 and alpha_2 = 1.2 keep the paper's
    balance between hole and context whatever the hole size.
    """
    error = tf.abs(prediction - target)
    weights = hole_weight * mask + context_weight * (1.0 - mask)
    return tf.reduce_mean(error * weights)


def critic_loss(real_scores, fake_scores):
    """The Wasserstein part of Eq. (9): E[D(x~)] - E[D(x)]."""
    return tf.reduce_mean(fake_scores) - tf.reduce_mean(real_scores)


def adversarial_loss(fake_scores):
    """Eq. (10): -E[D(x~)]."""
    return -tf.reduce_mean(fake_scores)


# Under mixed precision the critic's backward pass runs in float16, where the per-pixel
# gradients of the penalty (about 1 / sqrt(pixels)) lose precision or underflow; the penalty's
# inner gradient is scaled like a loss (LossScaleOptimizer does this only for the outer one).
PENALTY_GRADIENT_SCALE = 2.0 ** 15


def gradient_norms(critic, interpolated):
    """Per-sample ||grad_x D(x)||_2 at ``interpolated`` [B, H, W, C], float32."""
    scale = PENALTY_GRADIENT_SCALE if critic.compute_dtype == "float16" else 1.0
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        scores = tf.cast(critic(interpolated, training=True), tf.float32) * scale
    grads = tf.cast(tape.gradient(scores, interpolated), tf.float32) / scale
    return tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)


def gradient_penalty(critic, real, fake, alpha):
    """The penalty of Eq. (9): E[(||grad D(x^)||_2 - 1)^2], x^ = (1 - a) x + a x~.

    ``alpha`` [B, 1, 1, 1] is drawn from U[0, 1] by the caller (Algorithm 1).
    """
    # As tensors, so that NumPy inputs can be watched like the other losses' inputs.
    real, fake, alpha = (tf.convert_to_tensor(t) for t in (real, fake, alpha))
    interpolated = (1.0 - alpha) * real + alpha * fake
    return tf.reduce_mean(tf.square(gradient_norms(critic, interpolated) - 1.0))
