"""Contextual Residual Aggregation at full resolution (§3.1, §3.2 Eq. 4, §4.1).

Pipeline, all inside one TensorFlow graph (no NumPy, no host round trips):

1. **Plan.** The photo (H x W) is extended by mirror padding to
   ``(16 g_h f) x (16 g_w f)`` (read by index, never built) and averaged down by one integer factor ``f`` on both axes (geometry kept,
   no stretching) to a network input of ``16 g_h x 16 g_w`` pixels, the
   smallest ``f`` whose network input holds at most ``max_pixels`` (512x512 by
   default). So a 7680x4320 photo runs the network at 640x368 (f = 12), a
   2048x2048 one at 512x512 (f = 4), a photo smaller than the budget at
   native size (f = 1, padded to a multiple of 16).
2. **Network.** The generator fills the hole of the small image and returns
   attention scores over its ``g_h x g_w`` grid; each grid cell is a patch of
   ``16f x 16f`` full-resolution pixels, so the patches tile the padded photo
   without overlap (Eq. 4 requires this).
3. **Aggregation** (Eq. 4) ``R_j = sum_i s_ij R_i`` with residual
   ``R = I - up(down(I))``, only for hole cells ``j`` (targets) and cells
   ``i`` with non-zero weight (sources). Because bilinear up-sampling is
   linear and identical for every cell (cells align with low-resolution
   pixels), ``sum_i s_ij up(L)_i = up(sum_i s_ij L_i)``: the low-frequency
   part is aggregated on the 18x18 low-resolution windows of the cells and
   up-sampled once per target, and the only full-resolution matrix product
   is ``S^T @ I_sources``, done in chunks of cell rows that bound peak memory
   (each source pixel read and cast once, each output pixel written once).
4. **Paste.** Target cells get ``up(G)_j + R_j``; only hole pixels are
   written, everything else is the input, bit for bit.

Down-sampling is averaging and up-sampling bilinear (§4.1), computed per
cell as two small matrix products instead of ``tf.nn.avg_pool2d`` /
``tf.image.resize`` over the whole photo, which take seconds at 8K.
"""

import tensorflow as tf

from hifill_tf.layers.contextual_attention import cell_mask, touched_by_hole

CELL = 16  # network pixels per attention cell: the grid is the input / 16
MAX_PIXELS = 512 * 512


MIN_PIXELS = CELL * CELL  # the smallest network input is one 16 x 16 attention cell


def to_network(pixels):
    """Pixel values in [0, 255] -> the generator's range [-1, 1] (its outputs are tanh)."""
    return pixels / 127.5 - 1.0


def from_network(values):
    """The generator's [-1, 1] -> pixel values in [0, 255] (float, not rounded)."""
    return (values + 1.0) * 127.5


def run_network(generator, low, low_hole):
    """The generator on float pixels [B, h, w, 3] in [0, 255] and a hole [B, h, w, 1].

    Returns (the inpainted image in [0, 255], the attention scores [B, source, target]): the
    one network call of CRA, the bicubic baseline and the benchmarks.
    """
    outputs = generator(to_network(low), tf.cast(low_hole, tf.float32))
    return from_network(outputs["inpainted"]), outputs["scores"]


def network_pixels(generator, max_pixels=None):
    """The pixel budget to use: ``max_pixels`` if given, else the one stored with the
    generator's weights (``generator.network_pixels``, the size it was trained for; see
    ``hifill_tf.weights``), else the paper's 512 x 512.

    The one check of a budget that every entry point goes through (API, ``infer.py``,
    ``export.py``, the SavedModel, evaluation): below ``MIN_PIXELS`` no network input fits
    and ``plan`` could never finish, so that is a ValueError here.
    """
    if max_pixels is None:
        max_pixels = getattr(generator, "network_pixels", None) or MAX_PIXELS
    if isinstance(max_pixels, bool) or int(max_pixels) != max_pixels:
        raise ValueError(f"max_pixels must be an integer; got {max_pixels!r}")
    if max_pixels < MIN_PIXELS:
        raise ValueError(f"max_pixels must be at least {MIN_PIXELS} (one {CELL}x{CELL} attention "
                         f"cell); got {max_pixels!r}")
    return int(max_pixels)


# Bound on the float32 buffers of one chunk of the full-resolution product. Small chunks
# stay in cache: at 8K 8 MB was as fast as 64 MB (and 1 MB 30% slower), for less memory.
CHUNK_BYTES = 8 * 1024 * 1024


def plan(height, width, max_pixels=MAX_PIXELS):
    """Integer down-sampling factor and network size for an H x W photo.

    Returns int32 scalars ``(f, net_h, net_w)``: ``net_h = 16 * ceil(H / (16 f))``
    and the same for width, with the smallest ``f`` such that
    ``net_h * net_w <= max_pixels``. Works on tensors or Python ints; a tensor
    ``max_pixels`` (``api.inpaint_function`` passes one, so that one graph serves every
    budget) is checked by ``network_pixels`` before and asserted here.
    """
    if tf.is_tensor(max_pixels):
        minimum = tf.debugging.assert_greater_equal(
            max_pixels, MIN_PIXELS, message=f"max_pixels must be at least {MIN_PIXELS}")
        with tf.control_dependencies([minimum]):
            max_pixels = tf.cast(max_pixels, tf.int32)
    else:
        max_pixels = network_pixels(None, max_pixels)  # the one budget check: below it, no end
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


def _upsample_windows(windows, matrix):
    """[N, 18, 18, C] low-resolution windows -> [N, 16f, 16f, C] cells."""
    x = tf.einsum("pa,nabc->npbc", matrix, windows)
    return tf.einsum("qb,npbc->npqc", matrix, x)


def _windows(low, grid):
    """[N, 18, 18, C] edge-padded low-resolution window of every cell."""
    padded = tf.pad(low[None], [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    patches = tf.image.extract_patches(padded, sizes=[1, CELL + 2, CELL + 2, 1],
                                       strides=[1, CELL, CELL, 1], rates=[1, 1, 1, 1],
                                       padding="VALID")
    return tf.reshape(patches, [grid[0] * grid[1], CELL + 2, CELL + 2, low.shape[-1]])


def to_cells(image, grid, size):
    """[gh*size, gw*size, C] -> [gh*gw, size, size, C], cells row-major."""
    channels = image.shape[-1]
    x = tf.reshape(image, [grid[0], size, grid[1], size, channels])
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3, 4]), [grid[0] * grid[1], size, size, channels])


def from_cells(cells, grid, size):
    channels = cells.shape[-1]
    x = tf.reshape(cells, [grid[0], grid[1], size, size, channels])
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3, 4]), [grid[0] * size, grid[1] * size, channels])


def source_cells(hole_cells, patch_size=3):
    """Cells whose attention patch is untouched by the hole (non-zero scores); bool or float."""
    touched = touched_by_hole(tf.cast(hole_cells[None], tf.float32), patch_size)[0]
    return tf.reshape(touched, [-1]) == 0


def _mirror(index, size):
    """Index into an axis of ``size`` of its SYMMETRIC mirror padding (edge pixel repeated)."""
    return tf.where(index < size, index, 2 * size - 1 - index)


def _block_any(hole, factor, net_h, net_w):
    """[net_h, net_w, 1] bool: any pixel of each f x f block of the mirror-padded ``hole``."""
    height, width = tf.shape(hole)[0], tf.shape(hole)[1]
    rows = CELL * factor

    def band(k):
        h = _band(hole, k, rows, height)
        h = tf.reduce_any(tf.reshape(h, [CELL, factor, width, 1]), axis=1)
        h = _pad_columns(h, net_w * factor)
        return tf.reduce_any(tf.reshape(h, [CELL, net_w, factor, 1]), axis=2)

    out = tf.map_fn(band, tf.range(net_h // CELL), fn_output_signature=tf.bool,
                    parallel_iterations=2)
    return tf.reshape(out, [net_h, net_w, 1])


def _band(x, k, rows, height):
    """Rows ``[k rows, (k + 1) rows)`` of the mirror-padded ``x``: a view inside the photo."""
    return tf.cond((k + 1) * rows <= height, lambda: x[k * rows:(k + 1) * rows],
                   lambda: tf.gather(x, _mirror(k * rows + tf.range(rows), height)))


def _pad_columns(x, width):
    """Mirror-pad [h, w, C] on the right to ``width`` (at most w more columns)."""
    pad = width - tf.shape(x)[1]
    return tf.cond(pad > 0, lambda: tf.concat([x, tf.reverse(x[:, tf.shape(x)[1] - pad:], [1])], 1),
                   lambda: x)


def reduce_photo(image, hole, factor, net_h, net_w):
    """f x f averages and any-pixel hole of the mirror-padded photo, without padding it (§4.1).

    Args: image uint8 [H, W, 3]; hole bool [H, W, 1]; the padded size is
    ``(net_h f) x (net_w f)``, at most one cell more than the photo.
    Returns (low float32 [net_h, net_w, 3] in 0..255, low hole float32 [net_h, net_w, 1]).

    One band of 16 output rows at a time: only that band is cast to float32. Rows are
    summed first (exact: integers below 2^24), then the few padding columns mirrored onto
    the 16-row sums, then columns summed; one division by f^2, so the result is the mean.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows = CELL * factor
    padded_w = net_w * factor

    def band(k):
        x = tf.cast(_band(image, k, rows, height), tf.float32)
        x = tf.reduce_sum(tf.reshape(x, [CELL, factor, width, 3]), axis=1)
        h = tf.reduce_any(tf.reshape(_band(hole, k, rows, height), [CELL, factor, width, 1]), axis=1)
        x = tf.reduce_sum(tf.reshape(_pad_columns(x, padded_w), [CELL, net_w, factor, 3]), axis=2)
        h = tf.reduce_any(tf.reshape(_pad_columns(h, padded_w), [CELL, net_w, factor, 1]), axis=2)
        return x / tf.cast(factor * factor, tf.float32), tf.cast(h, tf.float32)

    low, low_hole = tf.map_fn(band, tf.range(net_h // CELL),
                              fn_output_signature=(tf.float32, tf.float32), parallel_iterations=2)
    return (tf.reshape(low, [net_h, net_w, 3]), tf.reshape(low_hole, [net_h, net_w, 1]))


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
    size = CELL * factor
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    net_h, net_w = tf.shape(low)[0], tf.shape(low)[1]
    gh, gw = net_h // CELL, net_w // CELL
    padded_w = gw * size

    def cells_of(low_res):  # [net_h, net_w, 1] -> [gh, gw, 1] float, any pixel per cell
        return tf.cast(tf.reduce_any(tf.reshape(low_res, [gh, CELL, gw, CELL, 1]), axis=[1, 3]),
                       tf.float32)

    if low_hole is None:
        low_hole = _block_any(mask, factor, net_h, net_w)
    hole_cells = cells_of(tf.cast(low_hole, tf.float32) > 0)
    if alpha is None:
        paste = mask
        paste_cells = hole_cells
    else:
        paste = alpha
        paste_cells = cells_of(_block_any(alpha > 0, factor, net_h, net_w))
    targets = tf.cast(tf.where(tf.reshape(paste_cells, [-1]) > 0)[:, 0], tf.int32)
    sources = tf.cast(tf.where(source_cells(hole_cells, patch_size))[:, 0], tf.int32)
    weights = tf.gather(tf.gather(scores, sources, axis=0), targets, axis=1)  # [src, tgt]

    # Low frequencies: up(G_j - sum_i s_ij L_i), on 18x18 windows.
    matrix = interpolation_matrix(factor)
    low_windows = tf.gather(_windows(low, (gh, gw)), sources)
    mixed = tf.tensordot(weights, low_windows, axes=[[0], [0]])  # [tgt, 18, 18, 3]
    base = tf.gather(_windows(inpainted, (gh, gw)), targets) - mixed
    # Bilinear up-sampling is separable: columns once here, on the 18 window rows
    # ([tgt, 18, 3 size], low-resolution height), rows per chunk by one matrix product.
    if alpha is None:
        base = base + 0.5  # interpolation rows sum to 1: up(base + 0.5) = up(base) + 0.5
    up_columns = tf.reshape(tf.einsum("qb,nabc->naqc", matrix, base), [tf.size(targets), CELL + 2, -1])

    num_cells = tf.size(sources) + tf.size(targets)
    step = tf.maximum(chunk_bytes // (4 * 3 * size * tf.maximum(num_cells, 1)), 1)  # cell rows
    step = tf.minimum(step, size)
    num_chunks = (size + step - 1) // step

    def cell_rows(cells, count):
        """[n, count] row indices into a chunk's band of (cell, row) of the given cells."""
        return ((cells // gw)[:, None] * count + tf.range(count)[None]) * gw + (cells % gw)[:, None]

    def fill_chunk(k):
        """Rows [k step, k step + count) of every cell row, as [gh * count, W, 3] uint8."""
        start = k * step
        count = tf.minimum(step, size - start)
        # Photo rows a * size + start + r of every cell row a, mirrored at the bottom.
        rows = tf.reshape(tf.range(gh)[:, None] * size + start + tf.range(count)[None], [-1])
        rows = _mirror(rows, height)
        band = tf.reshape(_pad_columns(tf.gather(image, rows), padded_w), [-1, size * 3])
        src = tf.gather(band, cell_rows(sources, count))  # [src, count, 3 size]
        src = tf.reshape(tf.cast(src, tf.float32), [tf.size(sources), -1])
        high = tf.reshape(tf.matmul(weights, src, transpose_a=True), [-1, count, size * 3])
        filled = high + tf.matmul(matrix[start:start + count][None], up_columns)
        where = cell_rows(targets, count)
        original = tf.gather(band, where)  # [tgt, count, 3 size] uint8
        paste_rows = tf.reshape(_pad_columns(tf.gather(paste, rows), padded_w), [-1, size])
        weight = tf.gather(paste_rows, where)  # [tgt, count, size]
        if alpha is None:
            # base carries +0.5, so truncation rounds (half up: differs from tf.round only at
            # exact .5); ClipByValue is one pass where tf.clip_by_value takes two.
            new = tf.cast(tf.raw_ops.ClipByValue(t=filled, clip_value_min=0.0, clip_value_max=255.0),
                          tf.uint8)
            # uint8 arithmetic wraps, so original + hole * (new - original) selects exactly.
            hole3 = tf.broadcast_to(tf.cast(weight, tf.uint8)[..., None], [tf.size(targets), count, size, 3])
            blend = original + tf.reshape(hole3, tf.shape(original)) * (new - original)
        else:
            weight = tf.reshape(tf.broadcast_to(weight[..., None], [tf.size(targets), count, size, 3]),
                                tf.shape(original))
            # Where weight is 0 the original uint8 value is kept exactly.
            blend = tf.cast(original, tf.float32) + weight * (filled - tf.cast(original, tf.float32))
            blend = tf.cast(tf.clip_by_value(tf.round(blend), 0.0, 255.0), tf.uint8)
            blend = tf.where(weight > 0, blend, original)
        band = tf.tensor_scatter_nd_update(band, tf.reshape(where, [-1, 1]),
                                           tf.reshape(blend, [-1, size * 3]))
        return tf.reshape(band, [-1, padded_w, 3])[:, :width]

    parts = tf.TensorArray(tf.uint8, size=num_chunks, infer_shape=False,
                           element_shape=tf.TensorShape([None, None, 3]))
    _, parts = tf.while_loop(lambda k, _: k < num_chunks,
                             lambda k, ta: (k + 1, ta.write(k, fill_chunk(k))),
                             [0, parts], parallel_iterations=1)
    # Chunk k holds rows (a, r) of all cell rows a, r in [k step, k step + count_k): put each
    # photo row y = a size + r back in place with one gather.
    y = tf.range(height)
    a, r = y // size, y % size
    k = r // step
    count = tf.minimum(step, size - k * step)
    return tf.gather(parts.concat(), k * gh * step + a * count + r - k * step)


def network_input(image, hole, max_pixels=MAX_PIXELS):
    """Pad and average a photo down to the network's grid (steps 1-2 of the module doc).

    Args: image uint8 [H, W, 3]; hole bool [H, W, 1].
    Returns (padded image, padded hole, low float32 [h, w, 3] in 0..255,
    low hole float32 [h, w, 1], f). The hole is mirrored like the image, so
    hole content mirrored into the padding is marked as hole too.
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    factor, net_h, net_w = plan(height, width, max_pixels)
    return reduce_to_grid(image, hole, factor, net_h, net_w) + (factor,)


def reduce_to_grid(image, hole, factor, net_h, net_w):
    """Mirror-pad to ``(net_h f) x (net_w f)`` and average f x f blocks (§4.1).

    ``reduce_photo`` (the one reduction of photo to network input, used by
    inference and by training, ``data.pipeline``) plus the padded copies that
    evaluation's bicubic baseline needs. A network pixel is hole if any of its
    f x f photo pixels is. Needs ``H > (net_h - 16) f`` (at most one cell of
    padding) and the same for the width.
    Returns (padded image, padded hole, low float32 [net_h, net_w, 3] in
    0..255, low hole float32 [net_h, net_w, 1]).
    """
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    pad = [[0, net_h * factor - height], [0, net_w * factor - width], [0, 0]]
    padded = tf.pad(image, pad, mode="SYMMETRIC")
    padded_hole = tf.pad(hole, pad, mode="SYMMETRIC")
    low, low_hole = reduce_photo(image, hole, factor, net_h, net_w)
    return padded, padded_hole, low, low_hole


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


def inpaint_tensor(generator, image, mask, max_pixels=MAX_PIXELS, feather=0):
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
