"""Step 1 of CRA: the network budget and the size plan (§4.1).

A photo is averaged down by one integer factor ``f`` on both axes (geometry kept) to a
network input that is a whole number of attention cells and holds at most the budget.
"""

import tensorflow as tf

from hifill_tf.models.generator import CELL

DEFAULT_NETWORK_PIXELS = 512 * 512  # the paper's network input (§4.1)
MIN_PIXELS = CELL * CELL  # the smallest network input is one attention cell
# Bound on the float32 buffers of one chunk of full-resolution work (aggregation's product,
# reduction's bands). Small chunks stay in cache: at 8K 8 MB is as fast as 64 MB (and 1 MB
# 30% slower), for less memory.
CHUNK_BYTES = 8 * 1024 * 1024


def check_budget(pixels):
    """``pixels`` as an int, or a ValueError: a budget must be an integer of at least one
    attention cell, below which no network input fits and ``plan`` could never finish."""
    if isinstance(pixels, bool) or int(pixels) != pixels:
        raise ValueError(f"max_pixels must be an integer; got {pixels!r}")
    if pixels < MIN_PIXELS:
        raise ValueError(f"max_pixels must be at least {MIN_PIXELS} (one {CELL}x{CELL} attention "
                         f"cell); got {pixels!r}")
    return int(pixels)


def network_pixels(generator, max_pixels=None):
    """The pixel budget to use: ``max_pixels`` if given, else the one stored with the
    generator's weights (``generator.network_pixels``, the size it was trained for; see
    ``hifill_tf.weights``), else the paper's 512 x 512; checked by ``check_budget``.
    """
    if max_pixels is None:
        max_pixels = generator.network_pixels or DEFAULT_NETWORK_PIXELS
    return check_budget(max_pixels)


def plan(height, width, max_pixels=DEFAULT_NETWORK_PIXELS):
    """Integer down-sampling factor and network size for an H x W photo.

    Returns int32 scalars ``(f, net_h, net_w)``: ``net_h = 16 * ceil(H / (16 f))``
    and the same for width, with the smallest ``f`` such that
    ``net_h * net_w <= max_pixels``. Works on tensors or Python ints; a tensor
    ``max_pixels`` (``api.inpaint_function`` passes one, so that one graph serves every
    budget) is checked by ``check_budget`` before and asserted here.
    """
    if tf.is_tensor(max_pixels):
        minimum = tf.debugging.assert_greater_equal(
            max_pixels, MIN_PIXELS, message=f"max_pixels must be at least {MIN_PIXELS}")
        with tf.control_dependencies([minimum]):
            max_pixels = tf.cast(max_pixels, tf.int32)
    else:
        max_pixels = check_budget(max_pixels)
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)

    def net_size(f):
        return (CELL * ((height + CELL * f - 1) // (CELL * f)),
                CELL * ((width + CELL * f - 1) // (CELL * f)))

    def too_big(f):
        h, w = net_size(f)
        return h * w > max_pixels

    area = tf.cast(height, tf.float64) * tf.cast(width, tf.float64)
    guess = tf.cast(tf.math.floor(tf.sqrt(area / tf.cast(max_pixels, tf.float64))), tf.int32)
    f = tf.maximum(guess, 1)
    f = tf.while_loop(too_big, lambda f: [f + 1], [f])[0]
    h, w = net_size(f)
    return f, h, w
