"""Step 1 of CRA, continued: the photo averaged down to the network input (§4.1).

The photo is extended by mirror padding to ``(net_h f) x (net_w f)`` (read by index, never
built) and averaged over f x f blocks; a network pixel is hole if any of its f x f photo
pixels is (``block_any``), so thin scratches survive the reduction. Training's crop views go
through ``reduce_photo`` too (``data.pipeline``), so the network trains on what it sees here.
"""

import tensorflow as tf

from hifill_tf.cra.mirror import band, pad_columns
from hifill_tf.cra.planning import CHUNK_BYTES, DEFAULT_NETWORK_PIXELS, plan
from hifill_tf.layers.contextual_attention import block_any
from hifill_tf.models.generator import CELL


def _hole_band(hole, k, factor, net_w, count=CELL):
    """Band k (``count`` network rows) of the any-pixel hole of the mirror-padded ``hole``."""
    h = block_any(band(hole, k, count * factor, tf.shape(hole)[0]), factor, 1)
    return block_any(pad_columns(h, net_w * factor), 1, factor)


def reduce_hole(hole, factor, net_h, net_w):
    """[net_h, net_w, 1] bool: any pixel of each f x f block of the mirror-padded ``hole``."""
    out = tf.map_fn(lambda k: _hole_band(hole, k, factor, net_w), tf.range(net_h // CELL),
                    fn_output_signature=tf.bool, parallel_iterations=2)
    return tf.reshape(out, [net_h, net_w, 1])


def _rows_per_band(factor, width):
    """Network rows averaged at a time: the largest of 16, 8, 4, 2, 1 whose float32 band of
    photo rows fits in CHUNK_BYTES (a divisor of CELL, so of the network's height). Larger
    bands, such as an 8K photo's 44 MB of 16 rows, were mapped and zeroed afresh each time."""
    counts = tf.constant([CELL, CELL // 2, CELL // 4, CELL // 8, 1])
    fits = (counts * factor * width * 3 * 4 <= CHUNK_BYTES) | (counts == 1)
    return counts[tf.argmax(tf.cast(fits, tf.int32))]


def reduce_photo(image, hole, factor, net_h, net_w):
    """f x f averages and any-pixel hole of the mirror-padded photo, without padding it (§4.1).

    Args: image uint8 [H, W, 3]; hole bool [H, W, 1]; the padded size is
    ``(net_h f) x (net_w f)``, at most one cell more than the photo.
    Returns (low float32 [net_h, net_w, 3] in 0..255, low hole float32 [net_h, net_w, 1]).

    A band of network rows at a time (``_rows_per_band``): only that band is cast to
    float32. Rows are summed first (exact: integers below 2^24), then the few padding columns
    mirrored onto the row sums, then columns summed; one division by f^2, so the result is
    the mean.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    count = _rows_per_band(factor, width)

    def average_band(k):
        x = tf.cast(band(image, k, count * factor, height), tf.float32)
        x = tf.reduce_sum(tf.reshape(x, [count, factor, width, 3]), axis=1)
        x = tf.reduce_sum(tf.reshape(pad_columns(x, net_w * factor), [count, net_w, factor, 3]), axis=2)
        h = _hole_band(hole, k, factor, net_w, count)
        return x / tf.cast(factor * factor, tf.float32), tf.cast(h, tf.float32)

    low, low_hole = tf.map_fn(average_band, tf.range(net_h // count),
                              fn_output_signature=(tf.float32, tf.float32), parallel_iterations=2)
    return (tf.reshape(low, [net_h, net_w, 3]), tf.reshape(low_hole, [net_h, net_w, 1]))


def reduce_to_grid(image, hole, factor, net_h, net_w):
    """Mirror-pad to ``(net_h f) x (net_w f)`` and average f x f blocks (§4.1).

    ``reduce_photo`` (the one reduction of photo to network input) plus the padded copies
    that evaluation's bicubic baseline needs. Needs ``H > (net_h - 16) f`` (at most one
    cell of padding) and the same for the width.
    Returns (padded image, padded hole, low float32 [net_h, net_w, 3] in
    0..255, low hole float32 [net_h, net_w, 1]).
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    pad = [[0, net_h * factor - height], [0, net_w * factor - width], [0, 0]]
    padded = tf.pad(image, pad, mode="SYMMETRIC")
    padded_hole = tf.pad(hole, pad, mode="SYMMETRIC")
    low, low_hole = reduce_photo(image, hole, factor, net_h, net_w)
    return padded, padded_hole, low, low_hole


def network_input(image, hole, max_pixels=DEFAULT_NETWORK_PIXELS):
    """Plan, pad and average a photo down to the network's grid (``plan``, ``reduce_to_grid``).

    Args: image uint8 [H, W, 3]; hole bool [H, W, 1].
    Returns (padded image, padded hole, low float32 [h, w, 3] in 0..255,
    low hole float32 [h, w, 1], f). The hole is mirrored like the image, so
    hole content mirrored into the padding is marked as hole too.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    factor, net_h, net_w = plan(height, width, max_pixels)
    return reduce_to_grid(image, hole, factor, net_h, net_w) + (factor,)
