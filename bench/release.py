"""``release_numpy``: the authors' release-style CRA post-processing in NumPy, the
reference of ``cra_bench.py --mode=users``.

HiFill's release runs the generator on the photo resized to 512 x 512 (aspect not kept)
and does the rest at full resolution on dense arrays. This module follows that
description (it is not their code):

1. the photo is mirror-padded by less than one cell so that 32 x 32 cells tile it exactly
   (the release resized it to 512 m x 512 m instead), then resized to 512 x 512 with PIL's
   bilinear filter; the hole too, with the box filter, so that a network pixel is hole
   if any of its photo pixels is (thin scratches survive, as in ``cra.reduce_photo``);
2. ``network`` fills the 512 x 512 image and returns its attention scores
   S [source, target] over the 32 x 32 grid (in the benchmark: ``cra.run_network``);
3. bilinear up-sampling (half-pixel centres, clamped edges: ``tf.image.resize``'s) of the
   network input and of its output to full size; residual R = photo - up(input) (§3.1);
4. Eq. (4) for every cell at once, R'_j = sum_i s_ij R_i: the residual cut into the
   32 x 32 cells of (H / 32) x (W / 32) pixels, one dense product S^T @ R (1024 x 1024
   by 1024 x H W 3 / 1024), folded back and added to up(output);
5. pasted into the photo by the full-resolution hole.

Unlike the release, only two full-size float32 arrays are alive at once (the cells and
their product): the up-sampling, the residual and the paste run one row of cells at a time.
"""

import numpy as np
from PIL import Image

from hifill_tf.io import hole_mask

NETWORK_SIZE = 512
CELL = 16  # network pixels per attention cell (cra.CELL): a 32 x 32 grid at 512 x 512


def release_inpaint(image, mask, network, size=NETWORK_SIZE):
    """Fill the hole of ``image`` (uint8 [H, W, 3]) given by ``mask`` ([H, W], 255 = hole).

    ``network(small float32 [size, size, 3] in 0..255, hole float32 [size, size, 1])``
    returns (filled float32 [size, size, 3] in 0..255, scores [cells, cells] as
    [source, target]). Returns uint8 [H, W, 3]; pixels outside the hole are the input's.
    """
    hole = hole_mask(mask)
    height, width = hole.shape
    grid = size // CELL
    pad = ((0, -height % grid), (0, -width % grid))
    if pad[0][1] or pad[1][1]:
        image = np.pad(image, pad + ((0, 0),), mode="symmetric")
        hole = np.pad(hole, pad, mode="symmetric")
    small_in, small_hole = network_input(image, hole, size)
    small_out, scores = network(small_in, small_hole)
    out = aggregate(image, hole, small_in, np.asarray(small_out, np.float32),
                    np.asarray(scores, np.float32))
    return out[:height, :width]


def network_input(image, hole, size=NETWORK_SIZE):
    """(photo resized to size x size, bilinear, float32 0..255; hole float32 [size, size, 1])."""
    small = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    small_hole = Image.fromarray(hole.view(np.uint8) * np.uint8(255))
    small_hole = np.asarray(small_hole.resize((size, size), Image.Resampling.BOX)) > 0
    return np.asarray(small, np.float32), small_hole[..., None].astype(np.float32)


def aggregate(image, hole, small_in, small_out, scores):
    """Steps 3-5 of the module doc: uint8 [H, W, 3] with the hole filled.

    ``image`` uint8 [H, W, 3] and ``hole`` bool [H, W], H and W multiples of the grid
    (``small_in.shape[:2] / CELL``); ``small_in`` (the network input) and ``small_out``
    (its output) float32 [h, w, 3]; ``scores`` [gh gw, gh gw], [source, target].
    """
    height, width = image.shape[:2]
    gh, gw = small_in.shape[0] // CELL, small_in.shape[1] // CELL
    if height % gh or width % gw:
        raise ValueError(f"the photo ({width}x{height}) must be a multiple of the {gw}x{gh} grid")
    ch, cw = height // gh, width // gw
    rows, columns = bilinear_taps(small_in.shape[0], height), bilinear_taps(small_in.shape[1], width)
    cells = np.empty((gh, gw, ch, cw, 3), np.float32)
    for a in range(gh):
        band = slice(a * ch, (a + 1) * ch)
        up = upsample(small_in, rows, columns, band)
        residual = np.subtract(image[band], up, out=up)
        cells[a] = residual.reshape(ch, gw, cw, 3).transpose(1, 0, 2, 3)
    # Eq. (4) for every cell: [target, pixels] = S^T [target, source] @ R [source, pixels].
    mixed = (scores.T @ cells.reshape(gh * gw, -1)).reshape(gh, gw, ch, cw, 3)
    del cells
    out = np.empty_like(image)
    for a in range(gh):
        band = slice(a * ch, (a + 1) * ch)
        up = upsample(small_out, rows, columns, band)
        up += mixed[a].transpose(1, 0, 2, 3).reshape(ch, width, 3)
        up += 0.5  # then truncation rounds
        filled = np.clip(up, 0.0, 255.0, out=up).astype(np.uint8)
        out[band] = np.where(hole[band, :, None], filled, image[band])
    return out


def bilinear_taps(n_in, n_out):
    """(lower index, upper index, weight of the upper) of each of ``n_out`` outputs."""
    x = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    lower = np.floor(x).astype(np.intp)
    return lower, np.minimum(lower + 1, n_in - 1), (x - lower).astype(np.float32)


def upsample(small, rows, columns, band=slice(None)):
    """Rows ``band`` of ``small`` [h, w, C] bilinearly resized by the taps ``rows``, ``columns``."""
    y0, y1, wy = (t[band] for t in rows)
    x0, x1, wx = columns
    lines = small[y0] + (small[y1] - small[y0]) * wy[:, None, None]  # [band, w, C]
    out = np.take(lines, x0, axis=1)
    step = np.take(lines, x1, axis=1)
    step -= out
    step *= wx[:, None]
    out += step
    return out


def resize_bilinear(small, height, width):
    """``small`` [h, w, C] float32 resized to [height, width, C] (as ``tf.image.resize``)."""
    return upsample(small, bilinear_taps(small.shape[0], height), bilinear_taps(small.shape[1], width))
