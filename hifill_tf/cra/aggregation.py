"""Step 3 of CRA: Eq. (4) at full resolution and the paste, reading the photo in place.

``R_j = sum_i s_ij R_i`` with residual ``R = I - up(down(I))``, only for hole cells ``j``
(targets) and cells ``i`` with non-zero weight (sources). Bilinear up-sampling is linear and
the same for every cell (cells align with low-resolution pixels), so
``sum_i s_ij up(L)_i = up(sum_i s_ij L_i)``: the low frequencies are aggregated on the 18x18
low-resolution windows of the cells and up-sampled once per target, and the one
full-resolution product is ``S^T @ I_sources``, in chunks of cell rows that bound peak memory
(each source pixel read and cast once, each output pixel written once). Target cells get
``up(G)_j + R_j`` in their hole pixels; every other pixel is the input's, bit for bit.

Up-sampling is bilinear (§4.1), per cell as two small matrix products instead of
``tf.image.resize`` over the whole photo, which takes seconds at 8K.
"""

from typing import NamedTuple

import tensorflow as tf

from hifill_tf.cra.mirror import mirror, pad_columns
from hifill_tf.cra.planning import CHUNK_BYTES
from hifill_tf.cra.reduce import reduce_hole
from hifill_tf.layers.contextual_attention import touched_by_hole
from hifill_tf.models.generator import CELL, cell_mask



def interpolation_matrix(factor, cells=CELL):
    """[cells * f, cells + 2] weights of bilinear 2-tap up-sampling by ``f``.

    Row p gives output pixel p of a cell as a mix of the cell's
    low-resolution window (the cell plus one pixel each side). Half-pixel
    centres as ``tf.image.resize``; the edge-replicated window makes the
    border match its clamping.
    """
    f = tf.cast(factor, tf.float32)
    p = tf.range(cells * factor, dtype=tf.float32)
    u = (p + 0.5) / f - 0.5 + 1.0  # +1: window starts one pixel before the cell
    lo = tf.floor(u)
    frac = u - lo
    lo = tf.cast(lo, tf.int32)
    return (tf.one_hot(lo, cells + 2) * (1.0 - frac)[:, None]
            + tf.one_hot(lo + 1, cells + 2) * frac[:, None])


def cell_windows(low, grid):
    """[N, 18, 18, C] edge-padded low-resolution window of every cell."""
    padded = tf.pad(low[None], [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    patches = tf.image.extract_patches(padded, sizes=[1, CELL + 2, CELL + 2, 1],
                                       strides=[1, CELL, CELL, 1], rates=[1, 1, 1, 1],
                                       padding="VALID")
    return tf.reshape(patches, [grid[0] * grid[1], CELL + 2, CELL + 2, low.shape[-1]])


def source_cells(hole_cells, patch_size=3):
    """Cells whose attention patch is untouched by the hole (non-zero scores); bool or float."""
    touched = touched_by_hole(tf.cast(hole_cells[None], tf.float32), patch_size)[0]
    return tf.reshape(touched, [-1]) == 0


class Cells(NamedTuple):
    """The grid over the mirror-padded photo: ``gh`` x ``gw`` cells of ``size`` = 16 f photo
    pixels a side, the photo itself ``height`` x ``width``."""
    size: tf.Tensor
    gh: tf.Tensor
    gw: tf.Tensor
    height: tf.Tensor
    width: tf.Tensor

    @property
    def padded_width(self):
        return self.gw * self.size

    def rows(self, cells, count):
        """[n, count] indices of (cell, row) of ``cells`` in a chunk's [gh * count * gw] rows."""
        gw = self.gw
        return ((cells // gw)[:, None] * count + tf.range(count)[None]) * gw + (cells % gw)[:, None]


class Fill(NamedTuple):
    """What every chunk applies: Eq. (4) from ``sources`` to ``targets`` (cell indices) with
    ``weights`` [source, target]; the low frequencies ``up_columns`` [target, 18, 3 size]
    (columns up-sampled, rows by ``matrix`` per chunk); the ``paste`` mask or, ``soft``,
    the feathered paste weights."""
    sources: tf.Tensor
    targets: tf.Tensor
    weights: tf.Tensor
    matrix: tf.Tensor
    up_columns: tf.Tensor
    paste: tf.Tensor
    soft: bool


def aggregate(image, mask, low, inpainted, scores, factor, chunk_bytes=CHUNK_BYTES, alpha=None,
              patch_size=3, low_hole=None):
    """Eq. (4) and the paste, reading the photo in place.

    Args:
        image: uint8 [H, W, 3], the photo; it may be smaller than the grid
            (``16 gh f`` x ``16 gw f``) by less than one cell, the rest being its
            mirror padding, which is read by index and never built.
        mask: bool [H, W, 1], True = hole.
        low: float32 [16 gh, 16 gw, 3], the averaged-down padded photo (0..255).
        inpainted: float32 [16 gh, 16 gw, 3], the network's filled image (0..255).
        scores: float32 [gh*gw, gh*gw], attention scores [source, target].
        factor: int f.
        alpha: optional float32 [H, W, 1] paste weights for a feathered seam
            (1 in the hole, fading outside it); default: the hard mask.
        patch_size: the generator's ``attention_patch_size``: a source is a cell
            whose patch of that size holds no hole (the cells with non-zero scores).
        low_hole: optional [16 gh, 16 gw, 1] hole of the network input (``reduce_photo``),
            to save a pass over ``mask``.
    Returns uint8 like ``image``: hole pixels filled, all others unchanged
    (with ``alpha``: pixels where alpha = 0 unchanged).

    The work is split along the rows inside a cell: chunk k takes rows
    ``[r0, r1)`` of every cell, so each source pixel is read and cast to float32
    once, each output pixel written once, and every float32 buffer holds
    ``r1 - r0`` rows of the sources and targets (bounded by ``chunk_bytes``).
    """
    net_h, net_w = tf.shape(low)[0], tf.shape(low)[1]
    cells = Cells(CELL * factor, net_h // CELL, net_w // CELL, tf.shape(image)[0], tf.shape(image)[1])
    if low_hole is None:
        low_hole = reduce_hole(mask, factor, net_h, net_w)
    hole_cells = cell_mask(tf.cast(low_hole, tf.float32)[None])[0]
    paste_cells = hole_cells if alpha is None else cell_mask(
        reduce_hole(alpha > 0, factor, net_h, net_w)[None])[0]
    targets = tf.cast(tf.where(tf.reshape(paste_cells, [-1]) > 0)[:, 0], tf.int32)
    sources = tf.cast(tf.where(source_cells(hole_cells, patch_size))[:, 0], tf.int32)
    weights = tf.gather(tf.gather(scores, sources, axis=0), targets, axis=1)  # [src, tgt]
    matrix = interpolation_matrix(factor)
    up_columns = low_frequencies(low, inpainted, weights, sources, targets, matrix,
                                 rounding=alpha is None)
    fill = Fill(sources, targets, weights, matrix, up_columns,
                mask if alpha is None else alpha, soft=alpha is not None)
    return fill_photo(image, cells, fill, chunk_rows(cells, fill, chunk_bytes))


def low_frequencies(low, inpainted, weights, sources, targets, matrix, rounding):
    """``G_j - sum_i s_ij L_i`` of every target on its 18x18 window, up-sampled along the
    columns: [target, 18, 3 size]. Bilinear up-sampling is separable: the columns once here
    (on the 18 window rows, low-resolution height), the rows per chunk by one matrix product.

    ``rounding`` adds 0.5 (the rows of the interpolation sum to 1, so
    ``up(base + 0.5) = up(base) + 0.5``): the hard paste then rounds by truncating.
    """
    grid = (tf.shape(low)[0] // CELL, tf.shape(low)[1] // CELL)
    low_windows = tf.gather(cell_windows(low, grid), sources)
    mixed = tf.tensordot(weights, low_windows, axes=[[0], [0]])  # [tgt, 18, 18, 3]
    base = tf.gather(cell_windows(inpainted, grid), targets) - mixed
    if rounding:
        base = base + 0.5
    return tf.reshape(tf.einsum("qb,nabc->naqc", matrix, base), [tf.size(targets), CELL + 2, -1])


def chunk_rows(cells, fill, chunk_bytes):
    """Rows of every cell per chunk: the float32 sources and targets fit in ``chunk_bytes``."""
    num_cells = tf.size(fill.sources) + tf.size(fill.targets)
    step = tf.maximum(chunk_bytes // (4 * 3 * cells.size * tf.maximum(num_cells, 1)), 1)
    return tf.minimum(step, cells.size)


def fill_photo(image, cells, fill, step):
    """The filled photo, ``step`` rows of every cell row at a time (``fill_chunk``).

    The chunks' rows go back in place whichever way moves fewer bytes: when at most half of the
    cell rows hold a target, only their rows are kept and one scatter writes them into a copy
    of the photo (``_scatter_rows``); otherwise every row is kept and one gather puts them in
    order (``_gather_rows``).
    """
    target_rows = tf.unique(fill.targets // cells.gw).y  # cell rows holding a target
    return tf.cond(2 * tf.size(target_rows) <= cells.gh,
                   lambda: _scatter_rows(image, cells, fill, step, target_rows),
                   lambda: _gather_rows(image, cells, fill, step))


def _chunks(cells, step, write, arrays):
    """Runs ``write(k, start, count, *arrays)`` for every chunk k; returns the arrays."""
    num_chunks = (cells.size + step - 1) // step

    def body(k, *arrays):
        start = k * step
        return (k + 1,) + tuple(write(k, start, tf.minimum(step, cells.size - start), *arrays))

    return tf.while_loop(lambda k, *_: k < num_chunks, body, [0, *arrays],
                         parallel_iterations=1)[1:]


def _array(dtype, shape, cells, step):
    return tf.TensorArray(dtype, size=(cells.size + step - 1) // step, infer_shape=False,
                          element_shape=tf.TensorShape(shape))


def _scatter_rows(image, cells, fill, step, target_rows):
    """The rows of the cell rows ``target_rows``, scattered into one copy of the photo."""

    def write(k, start, count, parts, places):
        band = tf.reshape(fill_chunk(image, cells, fill, k, step), [-1, cells.width * 3])
        # Band row a * count + r is photo row a * size + start + r; rows past the photo are
        # its mirror padding.
        photo_rows = tf.reshape(target_rows[:, None] * cells.size + start + tf.range(count), [-1])
        band_rows = tf.reshape(target_rows[:, None] * count + tf.range(count), [-1])
        inside = photo_rows < cells.height
        return (parts.write(k, tf.gather(band, tf.boolean_mask(band_rows, inside))),
                places.write(k, tf.boolean_mask(photo_rows, inside)))

    parts, places = _chunks(cells, step, write, [_array(tf.uint8, [None, None], cells, step),
                                                 _array(tf.int32, [None], cells, step)])
    flat = tf.tensor_scatter_nd_update(tf.reshape(image, [cells.height, -1]),
                                       places.concat()[:, None], parts.concat())
    return tf.reshape(flat, tf.shape(image))


def _gather_rows(image, cells, fill, step):
    """Every chunk's rows, put in order by one gather."""
    (parts,) = _chunks(cells, step, lambda k, start, count, parts: [
        parts.write(k, fill_chunk(image, cells, fill, k, step))],
        [_array(tf.uint8, [None, None, 3], cells, step)])
    # Chunk k holds rows (a, r) of all cell rows a, r in [k step, k step + count_k): put each
    # photo row y = a size + r back in place with one gather.
    y = tf.range(cells.height)
    a, r = y // cells.size, y % cells.size
    k = r // step
    count = tf.minimum(step, cells.size - k * step)
    return tf.gather(parts.concat(), k * cells.gh * step + a * count + r - k * step)


def fill_chunk(image, cells, fill, k, step):
    """Rows [k step, k step + count) of every cell row, as [gh * count, W, 3] uint8."""
    size = cells.size
    start = k * step
    count = tf.minimum(step, size - start)
    # Photo rows a * size + start + r of every cell row a, mirrored at the bottom.
    rows = tf.reshape(tf.range(cells.gh)[:, None] * size + start + tf.range(count)[None], [-1])
    rows = mirror(rows, cells.height)
    band = tf.reshape(pad_columns(tf.gather(image, rows), cells.padded_width), [-1, size * 3])
    src = tf.gather(band, cells.rows(fill.sources, count))  # [src, count, 3 size]
    src = tf.reshape(tf.cast(src, tf.float32), [tf.size(fill.sources), -1])
    high = tf.reshape(tf.matmul(fill.weights, src, transpose_a=True), [-1, count, size * 3])
    filled = high + tf.matmul(fill.matrix[start:start + count][None], fill.up_columns)
    where = cells.rows(fill.targets, count)
    original = tf.gather(band, where)  # [tgt, count, 3 size] uint8
    paste_rows = tf.reshape(pad_columns(tf.gather(fill.paste, rows), cells.padded_width), [-1, size])
    weight = tf.gather(paste_rows, where)  # [tgt, count, size]
    blend = (soft_paste if fill.soft else hard_paste)(original, filled, weight)
    band = tf.tensor_scatter_nd_update(band, tf.reshape(where, [-1, 1]),
                                       tf.reshape(blend, [-1, size * 3]))
    return tf.reshape(band, [-1, cells.padded_width, 3])[:, :cells.width]


def _per_channel(weight, like):
    """[tgt, count, size] paste weights repeated over the 3 channels, shaped as ``like``."""
    return tf.reshape(tf.broadcast_to(weight[..., None], tf.concat([tf.shape(weight), [3]], 0)),
                      tf.shape(like))


def hard_paste(original, filled, hole):
    """uint8 ``filled`` (which carries +0.5) where ``hole``, else ``original``, exactly."""
    # Truncation of filled + 0.5 rounds (half up: differs from tf.round only at exact .5);
    # ClipByValue is one pass where tf.clip_by_value takes two.
    new = tf.cast(tf.raw_ops.ClipByValue(t=filled, clip_value_min=0.0, clip_value_max=255.0),
                  tf.uint8)
    # uint8 arithmetic wraps, so original + hole * (new - original) selects exactly.
    return original + _per_channel(tf.cast(hole, tf.uint8), original) * (new - original)


def soft_paste(original, filled, alpha):
    """``original + alpha (filled - original)``, rounded; where alpha is 0, ``original`` exactly."""
    weight = _per_channel(alpha, original)
    blend = tf.cast(original, tf.float32) + weight * (filled - tf.cast(original, tf.float32))
    blend = tf.cast(tf.clip_by_value(tf.round(blend), 0.0, 255.0), tf.uint8)
    return tf.where(weight > 0, blend, original)
