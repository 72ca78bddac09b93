"""Training views without TensorFlow: the "crop" mode of ``pipeline.make_dataset`` in NumPy.

For a training machine that has JAX, NumPy and Pillow but no TensorFlow. Needs only NumPy and
Pillow (and ``hifill_tf.io``, which needs no more); ``render-holes`` alone imports TensorFlow.

Public API::

    reduce_view(window, hole, factor, size) -> (low float32 [S, S, 3] in 0..255,
                                                low_hole float32 [S, S, 1])
    render_holes(size, count, out, kind="mixed", min_area=0.02, max_area=0.25, seed=0,
                 templates_dir=None, render_side=None) -> path       # needs TensorFlow
    HolePool.load(path)                                             # the masks it wrote
    ViewFeed(photos, size, batch_size, factor_range=(1, None), holes=path, seed=0,
             workers=None, color_augment=False, slots=None, copy=True)
        iterate -> {"image": float32 [B, S, S, 3] in [-1, 1], "mask": float32 [B, S, S, 1]}
        feed.skipped: [(path, reason)]; feed.close(); with ViewFeed(...) as feed: ...

    python -m hifill_tf.data.numpy_feed render-holes --size 256 --count 4000 --out holes.npz
    python -m hifill_tf.data.numpy_feed bench --photos DIR [--holes holes.npz]

A view is made as ``make_dataset`` makes one in crop mode: a photo chosen uniformly; a window
of it at a random integer factor f, sides uniform in ``((S - 16) f, S f]`` (``view_window``,
as ``pipeline._view_window``); a random left-right flip; a hole drawn on a 2S x 2S canvas by
``MaskGenerator(2S, 2S, max_render_side=S, ...)`` and scaled to the window with nearest
neighbours; mirror padding to S f x S f, f x f averages and the any-hole-pixel rule
(``reduce_view``, equal to ``cra.reduce_photo``); ``cra.to_network``; optionally ``recolour``.

Differences from ``make_dataset``, all deliberate:

- Holes come from a pool rendered once by the TF ``MaskGenerator`` (``render-holes``), each
  used in one of its 8 orientations (``HolePool``), instead of a fresh mask per view.
- Photos are decoded once (``hifill_tf.io.read_image``, as inference reads them: Pillow's
  accurate IDCT, EXIF orientation applied). ``make_dataset`` decodes with TF's default fast
  IDCT and ignores EXIF: about 1 level apart on average (at most 7 on the shared photos).
- A photo is drawn uniformly for every view, where ``make_dataset`` shuffles the files each
  epoch; random numbers are NumPy's, so the views are the same distribution, not the same views.

Determinism: view ``n`` (counted over the whole stream) is drawn from
``np.random.default_rng([seed, n])``, so batches depend on the seed and their index only, not
on the number of workers (nor on the batch size: batch i holds views i B .. i B + B - 1).
"""

import argparse
import json
import logging
import math
import os
import queue
import signal
import sys
import time
import traceback
import weakref
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import shared_memory

import numpy as np

from hifill_tf.data.files import list_image_files
from hifill_tf.io import InputError, atomic_file, read_image

CELL = 16  # cra.CELL: the network input is a whole number of 16 x 16 attention cells
GREY_PROBABILITY = 0.15  # share of grey views of color_augment (pipeline.recolour too)
PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
POOL_FORMAT = 1

logger = logging.getLogger(__name__)


# ----- one view ------------------------------------------------------------------------------


def mirror_index(count, size):
    """Indices ``0..count-1`` into an axis of ``size`` of its SYMMETRIC padding (``cra.mirror.mirror``)."""
    index = np.arange(count)
    return np.where(index < size, index, 2 * size - 1 - index)


def nearest_index(in_size, out_size):
    """Source index of each output pixel of ``tf.image.resize(method="nearest")``.

    Half-pixel centres in float32, as TF's kernel computes them, so the hole of a window is
    the one ``make_dataset`` draws, pixel for pixel.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    source = np.floor((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale)
    return np.minimum(source.astype(np.int64), in_size - 1)


def _check_window(height, width, factor, size):
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer; got {factor!r}")
    if int(size) != size or size < 2 * CELL or size % CELL:
        raise ValueError(f"size must be a multiple of {CELL}, at least {2 * CELL}; got {size!r}")
    low = (size - CELL) * factor
    if not (low < height <= size * factor and low < width <= size * factor):
        raise ValueError(f"a window at factor {factor} for size {size} has sides in "
                         f"({low}, {size * factor}]; got {height}x{width}")


def _row_sums(window, factor, size):
    """Sums of f rows of the window mirror-padded to S f rows: [S, w, 3] integers.

    Rows of whole blocks are added slice by slice (no padded copy); only the at most one cell
    of blocks that reach into the padding gathers mirrored rows.
    """
    height, width = window.shape[:2]
    dtype = np.uint16 if 255 * factor < 2**16 else np.uint32
    sums = np.empty((size, width, 3), dtype)
    inside = min(height // factor, size)
    head = sums[:inside]
    np.copyto(head, window[0:inside * factor:factor])
    for i in range(1, factor):
        np.add(head, window[i:inside * factor:factor], out=head)
    if inside < size:
        tail = window[mirror_index(size * factor, height)[inside * factor:]]
        sums[inside:] = tail.reshape(size - inside, factor, width, 3).sum(axis=1, dtype=dtype)
    return sums


def _column_sums(rows, factor, size):
    """[S, w, 3] row sums -> [3, S, S] block sums of the columns mirror-padded to S f.

    The row sums (1/f of the window) are first made channel-planar: strided adds over pixels
    of 3 values run one short loop per pixel, over a plane one long loop per row (2-3x faster).
    Sums stay uint16 while they fit (f <= 16): adds without a cast, 15-25% faster.
    """
    width = rows.shape[1]
    planes = np.ascontiguousarray(np.moveaxis(rows, 2, 0))
    dtype = np.uint16 if 255 * factor * factor < 2**16 else np.uint32
    sums = np.empty((3, size, size), dtype)
    inside = min(width // factor, size)
    head = sums[:, :, :inside]
    np.copyto(head, planes[:, :, 0:inside * factor:factor])
    for i in range(1, factor):
        np.add(head, planes[:, :, i:inside * factor:factor], out=head)
    if inside < size:
        tail = planes[:, :, mirror_index(size * factor, width)[inside * factor:]]
        sums[:, :, inside:] = tail.reshape(3, size, size - inside, factor).sum(axis=3, dtype=dtype)
    return sums


def reduce_image(window, factor, size, flip=False):
    """f x f means of the mirror-padded window (flipped left-right first if ``flip``):
    float32 [S, S, 3] in 0..255.

    The sums are integers, so any order of adding gives the same sum; one float32 division by
    f^2 then gives the value ``cra.reduce_photo`` gives (exact below f = 257). Rows are summed
    first on the window as stored (contiguous rows) and the flip is taken on the row sums.
    """
    rows = _row_sums(window, factor, size)
    sums = _column_sums(rows[:, ::-1] if flip else rows, factor, size)
    return np.moveaxis(sums, 0, 2).astype(np.float32) / np.float32(factor * factor)


def reduce_view(window, hole, factor, size):
    """The network input of a window: ``cra.reduce_photo`` / ``pipeline.training_view`` in NumPy.

    Args:
        window: uint8 [h, w, 3], ``(S - 16) f < h, w <= S f``.
        hole: bool (or non-zero = hole) [h, w] or [h, w, 1] at the window's resolution.
        factor: the integer f; size: S.
    Returns (low float32 [S, S, 3] in 0..255, low hole float32 [S, S, 1]): the window
    mirror-padded (edge pixel repeated) to S f x S f, f x f means, and a network pixel is hole
    if any of its f x f pixels is.
    """
    window = np.asarray(window)
    hole = np.asarray(hole)
    if window.dtype != np.uint8 or window.ndim != 3 or window.shape[2] != 3:
        raise ValueError(f"window must be uint8 [h, w, 3]; got {window.dtype} {window.shape}")
    if hole.ndim == 3:
        hole = hole[..., 0]
    if hole.shape != window.shape[:2]:
        raise ValueError(f"hole must be [h, w] like the window {window.shape[:2]}; got {hole.shape}")
    height, width = hole.shape
    _check_window(height, width, factor, size)
    full = size * factor
    rows = hole[mirror_index(full, height)].astype(bool).reshape(size, factor, width).any(axis=1)
    low_hole = rows[:, mirror_index(full, width)].reshape(size, size, factor).any(axis=2)
    return reduce_image(window, factor, size), low_hole[..., None].astype(np.float32)


def _block_sources(in_size, out_size, factor, size, flip=False):
    """[S, f] canvas index of each padded pixel of an axis (of the canvas flipped along it if
    ``flip``), grouped by block."""
    source = nearest_index(in_size, out_size)[mirror_index(size * factor, out_size)]
    return (in_size - 1 - source if flip else source).reshape(size, factor)


def _any_over(canvas, axis, sources):
    """Any-hole of each block along ``axis`` of ``canvas`` (uint8 0/1), given the blocks'
    [S, f] source indices: a maximum over gathers of S lines.

    Scaling up (f >= 3 for a 2S canvas) the sources of a block are a run first..last of at
    most 3 pixels, so that many gathers do instead of f.
    """
    factor = sources.shape[1]
    first, last = sources.min(axis=1), sources.max(axis=1)
    span = int((last - first).max()) + 1
    if span < factor and np.all(np.diff(np.sort(sources, axis=1), axis=1) <= 1):
        picks = [np.minimum(first + k, last) for k in range(span)]
    else:
        picks = [sources[:, k] for k in range(factor)]
    out = canvas.take(picks[0], axis)
    for pick in picks[1:]:
        np.maximum(out, canvas.take(pick, axis), out=out)
    return out


def orient(canvas, orientation):
    """One of the 8 symmetries of a square canvas: bit 4 transposes, then bit 2 flips the rows
    and bit 1 the columns (a view)."""
    if orientation & 4:
        canvas = canvas.T
    if orientation & 2:
        canvas = canvas[::-1]
    return canvas[:, ::-1] if orientation & 1 else canvas


def low_hole_from_canvas(canvas, height, width, factor, size, orientation=0):
    """Low-resolution hole of a window: ``orient(canvas, orientation)`` scaled to h x w
    (nearest), then reduced.

    The same as ``reduce_view``'s hole of the oriented canvas resized to the window, without
    building either: the flips, nearest and mirror index maps are composed, and the any-pixel
    rule is applied to rows, then columns, of the stored [M, M] canvas (uint8 0/1). A
    transposed orientation is worked out on the canvas as stored for the window's transpose
    (an h x w window of V is a w x h window of V^T): gathers of strided columns of a
    transposed view took twice as long. Returns float32 [S, S, 1].
    """
    flip_rows, flip_cols = bool(orientation & 2), bool(orientation & 1)
    if orientation & 4:  # V = flips(C^T), so V^T = C with the two flips swapped
        height, width, flip_rows, flip_cols = width, height, flip_cols, flip_rows
    hole = _any_over(canvas, 0, _block_sources(canvas.shape[0], height, factor, size, flip_rows))
    hole = _any_over(hole, 1, _block_sources(canvas.shape[1], width, factor, size, flip_cols))
    if orientation & 4:
        hole = hole.T
    return hole[..., None].astype(np.float32)


def view_window(height, width, size, factor_range, rng):
    """(top, left, h, w, f) of one view, drawn as ``pipeline._view_window`` draws it.

    f uniform over the integers of ``factor_range`` that fit the photo (``hi=None``: as large
    as it allows; a range the photo cannot hold is capped at what it can, as there); each side
    uniform in ``((S - 16) f, min(S f, side)]``; the place uniform.
    """
    lo, hi = factor_range
    fit = max((min(height, width) - 1) // (size - CELL), 1)
    high = fit if hi is None else min(int(hi), fit)
    low = min(int(lo), high)
    factor = int(rng.integers(low, high + 1))
    h = int(rng.integers((size - CELL) * factor + 1, min(size * factor, height) + 1))
    w = int(rng.integers((size - CELL) * factor + 1, min(size * factor, width) + 1))
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    return top, left, h, w, factor


def recolour(image, which, grey):
    """``pipeline.recolour`` with its draws given: channel order ``PERMUTATIONS[which]``, or the
    BT.601 luma of the original in all three channels if ``grey``."""
    if grey:
        luma = image[..., 0] * _LUMA[0] + image[..., 1] * _LUMA[1] + image[..., 2] * _LUMA[2]
        return np.repeat(luma[..., None], 3, axis=-1)
    return image[..., list(PERMUTATIONS[which])]


def scale_up(image, size):
    """A photo with a short side below S, scaled so it is S, as ``pipeline._decode_view`` does.

    ``tf.image.resize`` bilinear (half-pixel centres, weights in float32 as TF's kernel
    computes them), rounded half to even and clipped to uint8. Other photos come back as they are.
    """
    height, width = image.shape[:2]
    if min(height, width) >= size:
        return image
    shape = np.array([height, width], np.float32)
    target = np.ceil(shape * np.float32(size) / shape.min()).astype(np.int64)

    def taps(in_size, out_size):
        scale = np.float32(in_size) / np.float32(out_size)
        x = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        floor = np.floor(x)
        lower = np.maximum(floor, 0).astype(np.int64)
        upper = np.minimum(np.ceil(x).astype(np.int64), in_size - 1)
        return lower, upper, (x - floor).astype(np.float32)

    (y0, y1, ly), (x0, x1, lx) = taps(height, target[0]), taps(width, target[1])
    pixels = image.astype(np.float32)
    lx = lx[None, :, None]
    top = pixels[y0][:, x0] + (pixels[y0][:, x1] - pixels[y0][:, x0]) * lx
    bottom = pixels[y1][:, x0] + (pixels[y1][:, x1] - pixels[y1][:, x0]) * lx
    out = top + (bottom - top) * ly[:, None, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# ----- the hole pool ----------------------------------------------------------------------


class HolePool:
    """Masks rendered by ``render_holes``, kept bit-packed; one is drawn per view.

    Every view takes a mask uniformly from the pool in one of the 8 orientations of the
    square canvas (``orient``). That keeps ``MaskGenerator``'s distribution: it places every
    shape at a uniform centre with a uniform angle (strokes: uniform start and heading, turns
    symmetric about 0; objects: uniform rotation, templates flipped half the time), so a
    quarter turn or a mirror image of a mask is as likely a draw as the mask itself, and the
    pool is in effect 8 times larger (checked in ``tests/test_numpy_feed.py``).

    Attributes: ``packed`` uint8 [N, M * M / 8], ``seeds`` int64 [N, 2], ``config`` (the
    generator's ``get_config()`` plus the pool's own fields), ``side`` M (= 2 S).
    """

    def __init__(self, packed, seeds, config):
        self.packed = packed
        self.seeds = seeds
        self.config = config
        self.side = int(config["height"])

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as data:
            packed, seeds = data["masks"], data["seeds"]
            config = json.loads(str(data["config"]))
        if config.get("format") != POOL_FORMAT:
            raise ValueError(f"{path}: not a hole pool of format {POOL_FORMAT} "
                             f"(got {config.get('format')!r}); render it again")
        side = int(config["height"])
        if packed.ndim != 2 or packed.shape[1] * 8 != side * side or len(seeds) != len(packed):
            raise ValueError(f"{path}: masks {packed.shape} and seeds {seeds.shape} do not "
                             f"fit {side}x{side} canvases")
        return cls(packed, seeds, config)

    def __len__(self):
        return len(self.packed)

    def mask(self, index, orientation=0):
        """uint8 [M, M] (1 = hole) of mask ``index`` in orientation 0..7 (``orient``; 0: as
        rendered)."""
        return orient(np.unpackbits(self.packed[index]).reshape(self.side, self.side), orientation)

    def areas(self):
        """Hole fraction of every mask, float64 [N]."""
        ones = np.unpackbits(self.packed, axis=1).sum(axis=1, dtype=np.int64)
        return ones / float(self.side * self.side)


def render_holes(size, count, out, kind="mixed", min_area=0.02, max_area=0.25, seed=0,
                 templates_dir=None, render_side=None):
    """Draw ``count`` masks with ``make_dataset``'s crop-mode generator and save them to ``out``.

    The generator is ``MaskGenerator(2 S, 2 S, max_render_side=render_side or S, kind,
    min_area, max_area, templates_dir)``; mask i has seed ``[seed, i]``. Writes a compressed
    npz: ``masks`` (np.packbits of each [2S, 2S] mask, row-major), ``seeds`` int64 [N, 2] and
    ``config`` (JSON). Needs TensorFlow; several masks are drawn at once through tf.data.
    """
    import tensorflow as tf  # the one TF import of this module: only where TF exists

    from hifill_tf.data.masks import MaskGenerator

    size, count = int(size), int(count)
    if size < 2 * CELL or size % CELL or count < 1:
        raise ValueError(f"need size a multiple of {CELL} (at least {2 * CELL}) and count >= 1; "
                         f"got size={size}, count={count}")
    generator = MaskGenerator(2 * size, 2 * size, kind=kind, min_area=min_area, max_area=max_area,
                              templates_dir=templates_dir, max_render_side=render_side or size)
    seeds = np.stack([np.full(count, seed), np.arange(count)], axis=1).astype(np.int64)
    draw = tf.autograph.experimental.do_not_convert(
        lambda s: tf.reshape(generator(s), [2 * size, 2 * size]) > 0.5)
    masks = tf.data.Dataset.from_tensor_slices(seeds).map(
        draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    packed = np.empty((count, (2 * size) ** 2 // 8), np.uint8)
    start = time.perf_counter()
    for i, mask in enumerate(masks.as_numpy_iterator()):
        packed[i] = np.packbits(mask)
        if (i + 1) % 500 == 0 or i + 1 == count:
            print(f"  {i + 1}/{count} masks, {time.perf_counter() - start:.0f} s", flush=True)
    config = dict(generator.get_config(), format=POOL_FORMAT, size=size, seed=int(seed))
    with atomic_file(out) as file:
        np.savez_compressed(file, masks=packed, seeds=seeds, config=np.array(json.dumps(config)))
    return out


def stand_in_pool(size, count=64, min_area=0.02, max_area=0.25, seed=0):
    """A pool of random discs (NumPy only) for timing where no rendered pool is at hand.

    A view's cost does not depend on the shape of its hole (only on the window), so ``bench``
    uses this when no ``--holes`` file is given. Not for training: use ``render_holes``.
    """
    rng = np.random.default_rng(seed)
    side = 2 * size
    yy, xx = np.mgrid[:side, :side]
    packed = np.empty((count, side * side // 8), np.uint8)
    for i in range(count):
        area = rng.uniform(min_area, max_area) * side * side
        radius = math.sqrt(area / math.pi)
        cy, cx = rng.uniform(radius, side - radius, 2)
        packed[i] = np.packbits((yy - cy) ** 2 + (xx - cx) ** 2 <= radius * radius)
    config = {"format": POOL_FORMAT, "height": side, "width": side, "kind": "stand-in discs",
              "min_area": min_area, "max_area": max_area, "size": size, "seed": seed}
    return HolePool(packed, np.stack([np.full(count, seed), np.arange(count)], 1), config)


# ----- photos --------------------------------------------------------------------------------


def _load_photo(path, size):
    try:
        image, _ = read_image(path)
    except InputError as error:
        return None, str(error)
    return np.ascontiguousarray(scale_up(image, size)), None


def load_photos(paths, size, threads=4):
    """Decode every photo once: (photos uint8 [H, W, 3], their paths, skipped [(path, reason)]).

    Photos with a short side below ``size`` are scaled up (``scale_up``). Pillow releases the
    GIL while decoding, so a few threads overlap the files.
    """
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results = list(pool.map(lambda p: _load_photo(p, size), paths))
    photos, good, skipped = [], [], []
    for path, (photo, reason) in zip(paths, results):
        if photo is None:
            skipped.append((path, reason))
        else:
            photos.append(photo)
            good.append(path)
    return photos, good, skipped


# ----- views and batches -----------------------------------------------------------------------


class _Source:
    """What a worker needs to make any view: inherited by forked workers, never pickled."""

    def __init__(self, photos, pool, size, batch_size, factor_range, seed, color_augment):
        self.photos = photos
        self.pool = pool
        self.size = size
        self.batch_size = batch_size
        self.factor_range = factor_range
        self.seed = seed
        self.color_augment = color_augment

    def view(self, number, image_out, mask_out):
        """Write view ``number`` of the stream: image [S, S, 3] in [-1, 1], mask [S, S, 1].

        Returns its factor f. The draws come in the order photo, window, flip, hole, colour,
        so turning colour on leaves windows, flips and holes as they were.
        """
        rng = np.random.default_rng([self.seed, number])
        photo = self.photos[int(rng.integers(len(self.photos)))]
        top, left, h, w, factor = view_window(photo.shape[0], photo.shape[1], self.size,
                                              self.factor_range, rng)
        window = photo[top:top + h, left:left + w]
        flip = rng.random() < 0.5
        canvas = self.pool.mask(int(rng.integers(len(self.pool))))
        mask_out[...] = low_hole_from_canvas(canvas, h, w, factor, self.size, int(rng.integers(8)))
        low = reduce_image(window, factor, self.size, flip)
        if self.color_augment:
            low = recolour(low, int(rng.integers(len(PERMUTATIONS))), rng.random() < GREY_PROBABILITY)
        # cra.to_network in float32, then the clip make_dataset applies.
        np.divide(low, np.float32(127.5), out=image_out)
        np.subtract(image_out, np.float32(1.0), out=image_out)
        np.clip(image_out, -1.0, 1.0, out=image_out)
        return factor

    def batch(self, index, images, masks):
        first = index * self.batch_size
        for i in range(self.batch_size):
            self.view(first + i, images[i], masks[i])


def _worker(source, images, masks, tasks, done, parent):
    """Make the batches asked for in ``tasks`` into their slots; report on ``done``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the training process died without closing the feed
                return
            continue
        if task is None:
            return
        index, slot = task
        try:
            source.batch(index, images[slot], masks[slot])
            done.put((index, slot, None))
        except Exception:  # reported to the training process, which raises it
            done.put((index, slot, traceback.format_exc()))


def _shutdown(processes, tasks, memory):
    """Stop the workers and free the shared memory (also run by the finalizer at exit)."""
    for _ in processes:
        tasks.put(None)
    for process in processes:
        process.join(timeout=5)
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
    if memory is not None:
        try:
            memory.close()
        except BufferError:  # the caller still holds arrays of it (copy=False): freed with them
            pass
        memory.unlink()


def _check_shm_space(nbytes):
    """Fail clearly if /dev/shm cannot hold the slots: a write past its end is a SIGBUS."""
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return
    free = stat.f_bavail * stat.f_frsize
    if nbytes > free:
        raise MemoryError(f"the feed's {nbytes / 2**20:.0f} MiB of batch slots do not fit in "
                          f"/dev/shm ({free / 2**20:.0f} MiB free); use fewer slots or workers, "
                          "or a larger /dev/shm (docker: --shm-size)")


class ViewFeed:
    """Training batches of crop-mode views, made by worker processes, without TensorFlow.

    Args:
        photos: a directory (searched recursively, as ``make_dataset``) or a list of files.
            Each is decoded once, in this process (``hifill_tf.io.read_image``); unreadable
            ones are skipped, logged and listed in ``skipped`` as (path, reason).
        size: S, the side of the network input (a multiple of 16).
        batch_size: views per batch.
        factor_range: ``(lo, hi)`` integer factors to draw f from, ``hi=None``: as large as
            the photo allows (``view_window``).
        holes: a pool file written by ``render_holes`` for this S (canvas 2S), or a HolePool.
        seed: a non-negative integer; batch ``i`` depends only on ``seed`` and ``i``.
        workers: worker processes (forked, so the photos are shared copy-on-write); 0 makes
            the views in this process; default: one less than the CPU count.
        color_augment: ``pipeline.recolour``'s channel permutations and grey views.
        slots: batches in flight or ready (shared memory ring); default ``2 * workers + 2``.
        copy: True: each batch is a fresh array. False: views into the ring, valid until the
            next batch is asked for, when a worker may start overwriting them; saves a copy of
            every batch in this process (at S = 256, B = 16: 5.6 ms a batch here), but a
            device transfer of them must have finished before then (JAX: block on it).

    Iterating gives ``{"image": float32 [B, S, S, 3] in [-1, 1], "mask": float32 [B, S, S, 1]}``
    (1 = hole), forever. ``close()`` (or leaving a ``with`` block) stops the workers. Create
    the feed before JAX starts its threads: forking a process that runs threads is unsafe, and
    the workers are forked here, once.
    """

    def __init__(self, photos, size, batch_size, factor_range=(1, None), holes=None, seed=0,
                 workers=None, color_augment=False, slots=None, copy=True):
        size, batch_size = _check_arguments(size, batch_size, factor_range, seed)
        if holes is None:
            raise ValueError("holes: give a pool file from render-holes (or a HolePool)")
        pool = holes if isinstance(holes, HolePool) else HolePool.load(holes)
        if pool.side != 2 * size:
            raise ValueError(f"the hole pool has {pool.side}x{pool.side} canvases; size {size} "
                             f"needs {2 * size}x{2 * size} (render-holes --size {size})")
        if workers is None:
            workers = max(1, (os.cpu_count() or 2) - 1)
        if int(workers) != workers or workers < 0:
            raise ValueError(f"workers must be a non-negative integer; got {workers!r}")
        self.size, self.batch_size, self.workers, self.copy = size, batch_size, int(workers), copy
        self.closed = False

        if isinstance(photos, (str, os.PathLike)):
            paths = list_image_files(os.fspath(photos))
        else:
            paths = [os.fspath(p) for p in photos]
        decoded, self.paths, self.skipped = load_photos(paths, size, threads=max(self.workers, 2))
        if self.skipped:
            shown = "; ".join(reason for _, reason in self.skipped[:10])
            more = f"; and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            logger.warning("skipped %d unreadable image file(s) of %d: %s%s",
                           len(self.skipped), len(paths), shown, more)
        if not decoded:
            raise ValueError(f"none of the {len(paths)} image files can be decoded")
        self._source = _Source(decoded, pool, size, batch_size, tuple(factor_range), int(seed),
                               bool(color_augment))
        self._start(slots)

    def _start(self, slots):
        shape = (self.batch_size, self.size, self.size)
        self._next = 0
        self._processes = []
        self._memory = None
        if self.workers == 0:
            self._slots = 1
            self._images = np.empty((1, *shape, 3), np.float32)
            self._masks = np.empty((1, *shape, 1), np.float32)
            self._finalizer = None
            return
        self._slots = int(slots) if slots else 2 * self.workers + 2
        if self._slots < 1:
            raise ValueError(f"slots must be positive; got {slots!r}")
        per_slot = self.batch_size * self.size * self.size * 4  # float32 values per channel
        nbytes = self._slots * per_slot * 4
        _check_shm_space(nbytes)
        self._memory = shared_memory.SharedMemory(create=True, size=nbytes)
        images = np.ndarray((self._slots, *shape, 3), np.float32, self._memory.buf)
        masks = np.ndarray((self._slots, *shape, 1), np.float32, self._memory.buf,
                           offset=images.nbytes)
        self._images, self._masks = images, masks
        context = _fork_context()
        self._tasks, self._done = context.Queue(), context.Queue()
        for _ in range(self.workers):
            process = context.Process(target=_worker, daemon=True,
                                      args=(self._source, images, masks, self._tasks, self._done,
                                            os.getpid()))
            process.start()
            self._processes.append(process)
        self._finalizer = weakref.finalize(self, _shutdown, self._processes, self._tasks,
                                           self._memory)
        self._ready = {}
        self._released = 0  # batches below this index no longer need their slot
        self._holding = False
        self._dispatched = 0
        self._dispatch()

    def _dispatch(self):
        while self._dispatched < self._released + self._slots:
            self._tasks.put((self._dispatched, self._dispatched % self._slots))
            self._dispatched += 1

    def _wait(self, index):
        while index not in self._ready:
            try:
                done, slot, error = self._done.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in self._processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"a view worker died (exit code {dead[0].exitcode})") from None
                continue
            if error is not None:
                raise RuntimeError(f"a view worker failed on batch {done}:\n{error}")
            self._ready[done] = slot
        return self._ready.pop(index)

    def __iter__(self):
        return self

    def __next__(self):
        if self.closed:
            raise RuntimeError("the feed is closed")
        index = self._next
        self._next += 1
        if self.workers == 0:
            self._source.batch(index, self._images[0], self._masks[0])
            slot = 0
        else:
            if self._holding:  # the caller is done with the batch before this one
                self._released += 1
                self._holding = False
                self._dispatch()
            slot = self._wait(index)
        batch = {"image": self._images[slot], "mask": self._masks[slot]}
        if self.copy:
            batch = {key: value.copy() for key, value in batch.items()}
            if self.workers:
                self._released += 1
                self._dispatch()
        elif self.workers:
            self._holding = True
        return batch

    def close(self):
        """Stop the workers and free the shared memory; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._images = self._masks = None
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fork_context():
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        raise RuntimeError("ViewFeed's workers need the 'fork' start method (Linux)")
    return multiprocessing.get_context("fork")


def check_view_arguments(size, batch_size, factor_range, size_name="size"):
    """ValueError for a view size, batch size or factor range no feed can make (also
    ``pipeline.make_dataset``'s check)."""
    if int(size) != size or size < 2 * CELL or size % CELL:
        raise ValueError(f"{size_name} must be a multiple of {CELL}, at least {2 * CELL}; "
                         f"got {size!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    lo, hi = factor_range
    if int(lo) != lo or lo < 1 or (hi is not None and (int(hi) != hi or hi < lo)):
        raise ValueError(f"factor_range must be (lo, hi) integers with 1 <= lo <= hi "
                         f"(hi None: no limit); got {factor_range!r}")


def _check_arguments(size, batch_size, factor_range, seed):
    check_view_arguments(size, batch_size, factor_range)
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return int(size), int(batch_size)


# ----- command line ----------------------------------------------------------------------------


def bench(photos, sizes=(256, 512), workers=(1, 2), batch_size=16, batches=20, holes=None,
          cores=16, views_per_size=200):
    """Views per second: in-process by factor, then ``ViewFeed`` with each worker count.

    Prints tables and returns {size: {"by_factor": {f: (views, ms)}, "cpu_ms": CPU ms per view,
    "feed": {workers: views/s}, "copy_ms": ms per batch}}.
    """
    results = {}
    for size in sizes:
        pool = HolePool.load(holes) if holes else stand_in_pool(size)
        paths = list_image_files(photos) if isinstance(photos, str) else list(photos)
        decoded, _, skipped = load_photos(paths, size)
        source = _Source(decoded, pool, size, 1, (1, None), 0, False)
        image = np.empty((size, size, 3), np.float32)
        mask = np.empty((size, size, 1), np.float32)
        times, cpu = {}, {}
        for n in range(views_per_size):
            start, start_cpu = time.perf_counter(), time.process_time()
            factor = source.view(n, image, mask)
            times.setdefault(factor, []).append(time.perf_counter() - start)
            cpu.setdefault(factor, []).append(time.process_time() - start_cpu)
        total, total_cpu = sum(map(sum, times.values())), sum(map(sum, cpu.values()))
        print(f"\nS={size}: {len(decoded)} photos ({len(skipped)} skipped), hole pool: "
              f"{holes or 'stand-in discs (a view costs the same for any hole shape)'}")
        print("  one process, by factor f (f uniform over what each photo allows); CPU time is")
        print("  what a core of its own would take on a machine shared with other work:")
        print("     f  views   ms/view  ms CPU/view  share of time")
        for factor in sorted(times):
            t = times[factor]
            print(f"  {factor:4d}  {len(t):5d}  {1e3 * np.mean(t):8.2f}  {1e3 * np.mean(cpu[factor]):11.2f}"
                  f"  {100 * sum(t) / total:6.1f}%")
        mean_ms, mean_cpu = 1e3 * total / views_per_size, 1e3 * total_cpu / views_per_size
        print(f"  all   {views_per_size:5d}  {mean_ms:8.2f}  {mean_cpu:11.2f}  -> {1e3 / mean_ms:.0f} "
              f"views/s per core ({1e3 / mean_cpu:.0f} by CPU time)")
        feed_rates = {}
        copy_ms = None
        for count in workers:
            with ViewFeed(paths, size, batch_size, holes=pool, workers=count, seed=1) as feed:
                for _ in range(min(2, batches)):  # the workers' first batches: start-up
                    next(feed)
                start = time.perf_counter()
                for _ in range(batches):
                    batch = next(feed)
                seconds = time.perf_counter() - start
                copy_start = time.perf_counter()
                for _ in range(5):
                    {key: value.copy() for key, value in batch.items()}
                copy_ms = 1e3 * (time.perf_counter() - copy_start) / 5
            feed_rates[count] = batches * batch_size / seconds
            print(f"  ViewFeed, {count} worker(s): {feed_rates[count]:7.0f} views/s "
                  f"({feed_rates[count] / max(count, 1):.0f} per worker)")
        one = feed_rates.get(1, 1e3 / mean_ms)
        consumer = batch_size / (copy_ms / 1e3)
        print(f"  {cores} cores, extrapolated: {cores - 1} workers x {one:.0f} = "
              f"{(cores - 1) * one:.0f} views/s (linear scaling assumed"
              + (f"; here 2 workers gave {feed_rates[2] / one:.2f}x one" if 2 in feed_rates else "")
              + f"); the training process copies a batch in {copy_ms:.1f} ms "
              f"(copy=True: at most {consumer:.0f} views/s; copy=False skips it)")
        results[size] = {"by_factor": {f: (len(t), 1e3 * float(np.mean(t))) for f, t in times.items()},
                         "cpu_ms": mean_cpu, "feed": feed_rates, "copy_ms": copy_ms}
    return results


def _ints(text):
    return tuple(int(v) for v in text.split(",") if v)


def main(argv=None):
    # argparse, not absl: this runs on training machines that have only NumPy and Pillow.
    parser = argparse.ArgumentParser(prog="python -m hifill_tf.data.numpy_feed",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render-holes", help="draw a hole pool with the TF MaskGenerator")
    render.add_argument("--size", type=int, required=True, help="S, the network input side")
    render.add_argument("--count", type=int, required=True, help="masks in the pool")
    render.add_argument("--out", required=True, help="the .npz file to write")
    render.add_argument("--kind", default="mixed", help="MaskGenerator kind")
    render.add_argument("--min_area", type=float, default=0.02, help="smallest hole fraction")
    render.add_argument("--max_area", type=float, default=0.25, help="largest hole fraction")
    render.add_argument("--seed", type=int, default=0, help="mask i has seed [seed, i]")
    render.add_argument("--templates_dir", default=None, help="PNG object templates (optional)")
    render.add_argument("--render_side", type=int, default=None,
                        help="max_render_side of the generator (default S, as make_dataset)")
    timing = commands.add_parser("bench", help="views per second on this machine")
    timing.add_argument("--photos", required=True, help="a directory of photos")
    timing.add_argument("--sizes", type=_ints, default=(256, 512), help="S values, e.g. 256,512")
    timing.add_argument("--workers", type=_ints, default=(1, 2), help="worker counts, e.g. 1,2")
    timing.add_argument("--batch_size", type=int, default=16)
    timing.add_argument("--batches", type=int, default=20, help="batches timed per worker count")
    timing.add_argument("--views", type=int, default=200, help="views timed in one process")
    timing.add_argument("--holes", default=None,
                        help="a pool file (one size only); default: stand-in discs")
    timing.add_argument("--cores", type=int, default=16, help="cores to extrapolate to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.command == "render-holes":
        start = time.perf_counter()
        render_holes(args.size, args.count, args.out, kind=args.kind, min_area=args.min_area,
                     max_area=args.max_area, seed=args.seed, templates_dir=args.templates_dir,
                     render_side=args.render_side)
        areas = HolePool.load(args.out).areas()
        print(f"wrote {args.out}: {args.count} masks of {2 * args.size}x{2 * args.size}, "
              f"{os.path.getsize(args.out) / 2**20:.2f} MiB, hole fraction {areas.min():.3f}.."
              f"{areas.max():.3f} (mean {areas.mean():.3f}), {time.perf_counter() - start:.0f} s")
    else:
        if args.holes and len(args.sizes) != 1:
            parser.error("--holes fits one size: give --sizes with one value")
        bench(args.photos, args.sizes, args.workers, args.batch_size, args.batches, args.holes,
              args.cores, args.views)
    return 0


if __name__ == "__main__":
    sys.exit(main())
