"""Soft seams: paste weights that fade outside the hole (``inpaint_tensor(feather=...)``)."""

import tensorflow as tf


def feather_weights(hole, radius):
    """Paste weights for a soft seam: 1 in the hole, a box-blurred ramp outside.

    ``max(hole, box_blur(hole, 2 radius + 1))``: about 0.5 at the hole's edge
    falling to 0 at ``radius`` pixels. The box blur is two cumulative sums,
    which stay fast at 8K where ``tf.nn.avg_pool2d`` does not.
    """
    x = tf.cast(hole, tf.float32)[..., 0]
    k = 2 * radius + 1

    def box(x, axis):
        pad = [[0, 0], [0, 0]]
        pad[axis] = [radius + 1, radius]
        c = tf.cumsum(tf.pad(x, pad), axis=axis)
        n = tf.shape(c)[axis]
        hi = tf.gather(c, tf.range(k, n), axis=axis)
        lo = tf.gather(c, tf.range(0, n - k), axis=axis)
        return (hi - lo) / k

    blurred = box(box(x, 0), 1)
    return tf.maximum(x, blurred)[..., None]
