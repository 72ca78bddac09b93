"""Contextual attention with shared scores (§3.2 of the paper, Eq. 1-3).

The attention grid is the high-level map ``P`` (32x32 for a 512x512 input).
Scores are computed once (Attention Computing Module) and reused to transfer
patches of several lower-level maps (Attention Transfer Module) and, outside
the network, the full-resolution residuals (CRA, ``hifill_tf.cra``).

Scores are laid out ``[batch, source, target]`` over the ``gh * gw`` cells of
the grid in row-major order, so column ``j`` holds the weights that fill
target cell ``j``.

Everything here is ``keras.ops``: sizes are Python ints where they are static and scalar
tensors where TensorFlow traces with unknown height and width.
"""

import keras
from keras import ops


def block_any(mask, rows, cols):
    """True where any pixel of a ``rows`` x ``cols`` block is non-zero.

    [..., H, W, C] -> bool [..., H / rows, W / cols, C]; H and W multiples of the block, sizes
    Python ints or scalar tensors. The one rule for "a coarser pixel is hole if any of its
    pixels is": the generator's attention cells, CRA's network input and its hole cells.
    """
    shape = ops.shape(mask)
    lead, (height, width, channels) = tuple(shape[:-3]), shape[-3:]
    blocks = ops.reshape(mask, lead + (height // rows, rows, width // cols, cols, channels))
    return ops.any(blocks, axis=(len(lead) + 1, len(lead) + 3))


def touched_by_hole(hole_cells, patch_size):
    """1 where the ``patch_size`` x ``patch_size`` patch centred on a cell holds a hole cell.

    ``hole_cells`` float [B, gh, gw, 1] (``block_any`` of the hole). Only untouched cells are attention
    sources (Eq. 2 sums over background patches): ACM and CRA's ``source_cells`` both ask here.
    """
    return ops.max_pool(hole_cells, patch_size, 1, "same", data_format="channels_last")


def grid_to_patches(x, grid_shape):
    """Split [B, H, W, C] into the non-overlapping cells of a (gh, gw) grid.

    Returns [B, gh * gw, (H / gh) * (W / gw) * C], cells in row-major order.
    """
    shape = ops.shape(x)
    gh, gw = grid_shape[0], grid_shape[1]
    ph, pw = shape[1] // gh, shape[2] // gw
    x = ops.reshape(x, (shape[0], gh, ph, gw, pw, shape[3]))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (shape[0], gh * gw, ph * pw * shape[3]))


def patches_to_grid(patches, grid_shape, patch_shape, channels):
    """Inverse of :func:`grid_to_patches`: tile [B, n, ph * pw * C] back to an image."""
    batch = ops.shape(patches)[0]
    gh, gw = grid_shape[0], grid_shape[1]
    ph, pw = patch_shape[0], patch_shape[1]
    x = ops.reshape(patches, (batch, gh, gw, ph, pw, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (batch, gh * ph, gw * pw, channels))


def upsample_cells(cells, factor_h, factor_w):
    """Nearest up-sampling of a grid map by integer per-axis factors."""
    shape = ops.shape(cells)
    x = ops.reshape(cells, (shape[0], shape[1], 1, shape[2], 1, shape[3]))
    x = ops.tile(x, (1, 1, factor_h, 1, factor_w, 1))
    return ops.reshape(x, (shape[0], shape[1] * factor_h, shape[2] * factor_w, shape[3]))


def patches_around(x, k):
    """The k x k patch around every pixel of [B, H, W, C] (zero padding), flattened in
    (row, col, channel) order: [B, H, W, k * k * C], as ``tf.image.extract_patches``."""
    shape = ops.shape(x)
    r = k // 2
    padded = ops.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    # The slice ends once per row and column (tensors on TensorFlow with unknown sizes).
    ends_h, ends_w = [i + shape[1] for i in range(k)], [j + shape[2] for j in range(k)]
    return ops.concatenate([padded[:, i:ends_h[i], j:ends_w[j], :]
                            for i in range(k) for j in range(k)], axis=-1)


@keras.saving.register_keras_serializable(package="hifill")
class AttentionComputing(keras.layers.Layer):
    """Attention Computing Module (ACM): Eq. (1) cosine similarity, Eq. (2) softmax.

    Every cell of the high-level map ``P`` [B, gh, gw, C] is described by the
    ``patch_size`` x ``patch_size`` patch around it (zero padding at the
    border). ``c_ij`` is the cosine similarity between source patch ``i`` and
    target patch ``j``; the scores ``s_ij`` are the softmax of
    ``softmax_scale * c_ij`` over the background sources ``i`` only. A source
    patch touched by the hole gets exactly zero weight.

    Args:
        softmax_scale: temperature of the softmax; Eq. (2) is scale 1, the
            authors' code uses 10, which makes the weights peakier.
        patch_size: side of the patches compared (3 in the paper).

    Call args: ``features`` [B, gh, gw, C] and ``hole`` [B, gh, gw, 1]
    (1 = the cell holds hole pixels). Returns scores [B, gh*gw, gh*gw].
    """

    def __init__(self, softmax_scale=10.0, patch_size=3, **kwargs):
        super().__init__(**kwargs)
        if patch_size < 1 or patch_size % 2 != 1:
            raise ValueError(f"patch_size must be a positive odd integer; got {patch_size!r}")
        self.softmax_scale = softmax_scale
        self.patch_size = patch_size

    def call(self, features, hole):
        k = self.patch_size
        # float32 even under a mixed policy: the squared norms of 3x3x128
        # patches overflow float16.
        features = ops.cast(features, "float32")
        hole = ops.cast(hole, "float32")
        shape = ops.shape(features)
        n = shape[1] * shape[2]
        patches = ops.reshape(patches_around(features, k), (shape[0], n, -1))
        norms = ops.sum(ops.square(patches), axis=-1, keepdims=True)
        patches = patches * ops.rsqrt(ops.maximum(norms, 1e-12))
        cosine = ops.matmul(patches, _swap_last(patches))  # Eq. (1), [B, src, tgt]

        touched = touched_by_hole(hole, k)
        background = 1.0 - ops.reshape(touched, (shape[0], n, 1))
        logits = self.softmax_scale * cosine
        # Softmax over background sources (Eq. 2), written out so that hole
        # sources get exactly zero and an all-hole grid gives zeros, not NaN.
        logits = ops.where(background > 0, logits, ops.min(logits) - 1.0)
        logits -= ops.max(logits, axis=1, keepdims=True)
        weights = ops.exp(logits) * background
        total = ops.sum(weights, axis=1, keepdims=True)
        return weights / ops.maximum(total, 1e-12)

    def compute_output_shape(self, features_shape, hole_shape=None):
        n = None
        if features_shape[1] is not None and features_shape[2] is not None:
            n = features_shape[1] * features_shape[2]
        return (features_shape[0], n, n)

    def get_config(self):
        config = super().get_config()
        config.update(softmax_scale=self.softmax_scale, patch_size=self.patch_size)
        return config


@keras.saving.register_keras_serializable(package="hifill")
class AttentionTransfer(keras.layers.Layer):
    """Attention Transfer Module (ATM): fill hole cells of ``P^l`` by Eq. (3).

    ``P^l`` [B, H, W, C] is cut by the attention grid (gh, gw) into cells of
    (H/gh) x (W/gw) pixels. Each hole cell ``j`` is replaced by
    ``sum_i s_ij p_i``, the score-weighted sum of the patches of the
    background cells; other cells pass through unchanged. With
    ``patch_multiple`` k > 1 the patches are k cells wide, centred on their
    cell, and overlapping contributions are averaged (§3.2: overlap is fine).

    Args:
        patch_multiple: patch side in cells, odd so that patches are centred
            (1 = patches tile ``P^l`` exactly).

    Call args: ``features`` [B, H, W, C], ``scores`` [B, n, n] from
    :class:`AttentionComputing`, ``hole`` [B, gh, gw, 1] cell mask.
    """

    def __init__(self, patch_multiple=1, **kwargs):
        super().__init__(**kwargs)
        if patch_multiple < 1 or patch_multiple % 2 != 1:
            raise ValueError(f"patch_multiple must be a positive odd integer; got {patch_multiple!r}")
        self.patch_multiple = patch_multiple

    def call(self, features, scores, hole):
        features = ops.convert_to_tensor(features)
        shape = ops.shape(features)
        hole_shape = ops.shape(hole)
        gh, gw = hole_shape[1], hole_shape[2]
        sh, sw = shape[1] // gh, shape[2] // gw
        channels = shape[3]
        k = self.patch_multiple
        scores = ops.cast(scores, features.dtype)
        if k == 1:
            patches = grid_to_patches(features, (gh, gw))
            filled = _transfer(scores, patches)  # Eq. (3)
            filled = patches_to_grid(filled, (gh, gw), (sh, sw), channels)
        else:
            filled = self._overlapping_transfer(features, scores, gh, gw, sh, sw, channels)
        hole_pixels = ops.cast(upsample_cells(hole, sh, sw), features.dtype)
        return features + hole_pixels * (filled - features)

    def _overlapping_transfer(self, features, scores, gh, gw, sh, sw, channels):
        # A patch k cells wide is k*k blocks; block (a, b) of every patch is a
        # cell of the map shifted by (a - c, b - c) cells. Transfer each block
        # with the same scores, shift it back and average the overlaps.
        # Static loops over the k*k blocks, none over the batch.
        k = self.patch_multiple
        c = k // 2
        padded = ops.pad(features, ((0, 0), (c * sh, c * sh), (c * sw, c * sw), (0, 0)))
        cells = ops.ones((1, gh, gw, 1), features.dtype)
        total, count = 0.0, 0.0
        for a in range(k):
            for b in range(k):
                block = padded[:, a * sh:a * sh + gh * sh, b * sw:b * sw + gw * sw, :]
                filled = _transfer(scores, grid_to_patches(block, (gh, gw)))
                filled = patches_to_grid(filled, (gh, gw), (sh, sw), channels)
                total += ops.pad(filled, ((0, 0), (a * sh, (k - 1 - a) * sh),
                                          (b * sw, (k - 1 - b) * sw), (0, 0)))
                count += ops.pad(cells, ((0, 0), (a, k - 1 - a), (b, k - 1 - b), (0, 0)))
        count = upsample_cells(count[:, c:c + gh, c:c + gw, :], sh, sw)
        return total[:, c * sh:c * sh + gh * sh, c * sw:c * sw + gw * sw, :] / count

    def compute_output_shape(self, features_shape, scores_shape=None, hole_shape=None):
        return features_shape

    def get_config(self):
        config = super().get_config()
        config.update(patch_multiple=self.patch_multiple)
        return config


def _swap_last(x):
    # TensorFlow's graph optimizer folds this transpose into the BatchMatMul that reads it (the
    # adjoint flag): no copy in a tf.function, and the op stays a BatchMatMulV2, which
    # bench/generator_bench.py's profiler counts (it has no FLOP count for Einsum).
    return ops.transpose(x, (0, 2, 1))


def _transfer(scores, patches):
    """Eq. (3) for every target: ``sum_i s_ij p_i``, [B, tgt, D] from scores [B, src, tgt]."""
    return ops.matmul(_swap_last(scores), patches)
