"""The photo's mirror padding (SYMMETRIC: edge pixel repeated), read by index, never built.

CRA pads the photo to a whole number of cells of ``16 f`` pixels; the padding is at most one
cell, so every padded row or column is the mirror image of one inside the photo.
"""

import tensorflow as tf


def mirror(index, size):
    """Index into an axis of ``size`` of its SYMMETRIC mirror padding (edge pixel repeated)."""
    return tf.where(index < size, index, 2 * size - 1 - index)


def band(x, k, rows, height):
    """Rows ``[k rows, (k + 1) rows)`` of the mirror-padded ``x``: a view inside the photo."""
    return tf.cond((k + 1) * rows <= height, lambda: x[k * rows:(k + 1) * rows],
                   lambda: tf.gather(x, mirror(k * rows + tf.range(rows), height)))


def pad_columns(x, width):
    """Mirror-pad [h, w, C] on the right to ``width`` (at most w more columns)."""
    pad = width - tf.shape(x)[1]
    return tf.cond(pad > 0, lambda: tf.concat([x, tf.reverse(x[:, tf.shape(x)[1] - pad:], [1])], 1),
                   lambda: x)
