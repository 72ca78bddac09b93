"""Contextual Residual Aggregation at full resolution (§3.1, §3.2 Eq. 4, §4.1).

Pipeline, all inside one TensorFlow graph (no NumPy, no host round trips), one module a step:

1. **Plan** (``planning``). The photo (H x W) is extended by mirror padding to
   ``(16 g_h f) x (16 g_w f)`` and averaged down by one integer factor ``f`` on both axes
   (geometry kept, no stretching) to a network input of ``16 g_h x 16 g_w`` pixels, the
   smallest ``f`` whose network input holds at most ``max_pixels`` (512x512 by default).
   So a 7680x4320 photo runs the network at 640x368 (f = 12), a 2048x2048 one at 512x512
   (f = 4), a photo smaller than the budget at native size (f = 1, padded to a multiple
   of 16). The padding is read by index, never built (``mirror``); the averages and the
   any-pixel hole are ``reduce``'s.
2. **Network** (``network``). The generator fills the hole of the small image and returns
   attention scores over its ``g_h x g_w`` grid; each grid cell is a patch of
   ``16f x 16f`` full-resolution pixels, so the patches tile the padded photo
   without overlap (Eq. 4 requires this).
3. **Aggregation and paste** (``aggregation``): Eq. (4) for the hole cells, then
   ``up(G)_j + R_j`` into their hole pixels; everything else is the input, bit for bit.
   ``feather`` gives the weights of a soft seam instead.
"""

import tensorflow as tf

from hifill_tf.cra.aggregation import aggregate, interpolation_matrix, source_cells
from hifill_tf.cra.feather import feather_weights
from hifill_tf.cra.network import from_network, run_network, to_network
from hifill_tf.cra.planning import (CELL, CHUNK_BYTES, DEFAULT_NETWORK_PIXELS, MIN_PIXELS, check_budget,
                                network_pixels, plan)
from hifill_tf.cra.reduce import network_input, reduce_hole, reduce_photo, reduce_to_grid

__all__ = [
    "CELL", "CHUNK_BYTES", "DEFAULT_NETWORK_PIXELS", "MIN_PIXELS", "aggregate", "check_budget",
    "feather_weights", "from_network", "inpaint_tensor", "interpolation_matrix", "network_input",
    "network_pixels", "plan", "reduce_hole", "reduce_photo", "reduce_to_grid", "run_network",
    "source_cells", "to_network",
]


def inpaint_tensor(generator, image, mask, max_pixels=DEFAULT_NETWORK_PIXELS, feather=0):
    """Inpaint a full-resolution photo: uint8 [H, W, 3], mask [H, W, 1] or [H, W] (bool, or
    non-zero = hole).

    Returns uint8 [H, W, 3]. Pixels outside the hole are the input's (with
    ``feather`` > 0 pixels, a band that wide around the hole is blended
    softly into the fill). An empty mask returns the input; a hole covering
    the whole photo fails an assertion (there is no context to borrow from).
    """
    image = tf.convert_to_tensor(image, tf.uint8)
    hole = tf.convert_to_tensor(mask)
    hole = hole if hole.dtype == tf.bool else hole > 0
    if hole.shape.rank == 2:
        hole = hole[..., None]

    def run():
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        factor, net_h, net_w = plan(height, width, max_pixels)
        # The photo is never padded: reduce_photo and aggregate read its mirror padding by index.
        low, low_hole = reduce_photo(image, hole, factor, net_h, net_w)
        inpainted, scores = run_network(generator, low[None], low_hole[None])
        inpainted = inpainted[0]
        alpha = None
        if feather > 0:  # the seam weights of the padded hole, as the box blur sees it
            pad = [[0, net_h * factor - height], [0, net_w * factor - width], [0, 0]]
            alpha = feather_weights(tf.pad(hole, pad, mode="SYMMETRIC"), feather)[:height, :width]
        return aggregate(image, hole, low, inpainted, scores[0], factor, alpha=alpha,
                         patch_size=getattr(generator, "attention_patch_size", 3), low_hole=low_hole)

    checks = [tf.debugging.assert_equal(tf.reduce_all(hole), False,
                                        message="the mask covers the whole image: nothing to borrow from")]
    with tf.control_dependencies(checks):
        return tf.cond(tf.reduce_any(hole), run, lambda: tf.identity(image))
