"""Masks as arrays: the one mask rule (`hole_mask`, `mask_from_alpha`), checks, dilation.

Masks are uint8 [H, W] with 255 = hole and 0 = known pixels, the convention of the paper
(Sec. 4.1, "1 indicates the hole").
"""

from __future__ import annotations

import math
import operator

import numpy as np

from hifill_tf.io.errors import EmptyMaskError, InputError, _err


def mask_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Alpha channel -> mask: transparent pixels (alpha < 128) are the hole (255)."""
    alpha = np.asarray(alpha)
    if alpha.ndim != 2:
        raise InputError(f"alpha must be [H, W]; got shape {alpha.shape}")
    return np.where(alpha < 128, np.uint8(255), np.uint8(0))


HOLE_THRESHOLD = 127  # integer masks: values above this are hole


def hole_mask(mask, name=None) -> np.ndarray:
    """The one mask rule of every entry point: array -> bool [H, W] (or the input's shape), True = hole.

    - bool: as given;
    - integers: above 127 (``HOLE_THRESHOLD``; a white-on-black mask, JPEG noise and all),
      except that a mask whose values are only 0 and 1 is a 0/1 mask (1 = hole), never
      silently an empty one;
    - floats: above 0.5 (a 0..1 mask).

    ``hifill_tf.export.saved_model`` applies the same rule inside the graph (``hole_tensor``).
    """
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if np.issubdtype(mask.dtype, np.integer):
        if mask.size and mask.max() <= 1 and mask.min() >= 0:
            return mask == 1
        return mask > HOLE_THRESHOLD
    if np.issubdtype(mask.dtype, np.floating):
        return mask > 0.5
    raise InputError(f"{name or 'mask'}: masks must be bool, integer or float arrays; "
                     f"got {mask.dtype}")


def _check_mask(mask, path=None) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise _err(path, f"mask must be [H, W]; got shape {mask.shape}")
    return mask


def mask_coverage(mask: np.ndarray) -> float:
    """Fraction of the pixels that are hole (nonzero), in [0, 1]."""
    mask = _check_mask(mask)
    return np.count_nonzero(mask) / mask.size if mask.size else 0.0


def validate_mask(mask: np.ndarray, path=None) -> float:
    """Checks that there is something to fill and something to fill it from; returns coverage.

    Raises EmptyMaskError when the mask has no hole, InputError when the hole is the whole image.
    """
    coverage = mask_coverage(_check_mask(mask, path))
    if coverage == 0.0:
        raise _err(path, "mask is empty: nothing to fill", EmptyMaskError)
    if coverage == 1.0:
        raise _err(path, "mask covers the whole image: nothing to borrow from")
    return coverage


def _dilate_rows(words: np.ndarray, half_widths: dict[int, list[int]]) -> np.ndarray:
    """Dilates bit-packed rows (uint64 [h, n], pixel x at bit x % 64 of word x // 64).

    `half_widths` maps each run half-width w to the row offsets dy >= 0 whose run it is.
    """
    h, n = words.shape
    run, wider, shifted = words.copy(), np.empty_like(words), np.empty_like(words)
    grown = np.zeros_like(words)
    width_now = 0
    for w in sorted(half_widths):
        while width_now < w:
            # Widen every run by d on both sides: run | run >> d | run << d (in pixels). With
            # d <= 2 * width + 1 the three windows overlap, so the result is again a run.
            d = min(w - width_now, 2 * width_now + 1)
            q, s = divmod(d, 64)
            np.copyto(wider, run)
            if q < n:
                a, b = wider[:, q:], wider[:, : n - q]  # destinations: pixels moved up, down
                if s == 0:
                    a |= run[:, : n - q]
                    b |= run[:, q:]
                else:
                    # Moving pixels to higher x is a left shift of the little-endian word, with
                    # the bits that fall off carried into the next word.
                    t = shifted[:, : n - q]
                    a |= np.left_shift(run[:, : n - q], s, out=t)
                    a[:, 1:] |= np.right_shift(run[:, : n - q - 1], 64 - s, out=t[:, 1:])
                    b |= np.right_shift(run[:, q:], s, out=t)
                    b[:, :-1] |= np.left_shift(run[:, q + 1 :], 64 - s, out=t[:, :-1])
            run, wider = wider, run
            width_now += d
        for dy in half_widths[w]:
            if dy >= h:
                break
            grown[dy:] |= run[: h - dy]
            if dy:
                grown[: h - dy] |= run[dy:]
    return grown


_STRIP_WORDS = 65_536  # 512 KB of uint64 per working array


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grows the hole by `pixels`: binary dilation with the disk dx^2 + dy^2 <= pixels^2.

    Returns a new uint8 mask in {0, 255}; any nonzero input pixel is hole; 0 copies the mask.

    Exact and fast at 16K: the disk is the union over dy of horizontal runs of half-width
    floor(sqrt(r^2 - dy^2)), so the dilation is an OR of row-shifted horizontal maxima. Rows
    are bit-packed into 64-bit words, which makes a row shift a slice and a horizontal max a few
    word shifts (1/64 of the bytes); only the hole's bounding box, grown by r, is processed.
    """
    mask = _check_mask(mask)
    r = operator.index(pixels)
    if r < 0:
        raise ValueError(f"pixels must be >= 0; got {pixels}")
    height, width = mask.shape
    out = np.zeros((height, width), np.uint8)
    if mask.size == 0:
        return out
    if r == 0:
        np.copyto(out, 255, where=mask != 0)
        return out

    packed = np.packbits(mask != 0 if mask.dtype != np.uint8 else mask, axis=1, bitorder="little")
    hole_rows = np.flatnonzero(packed.any(axis=1))
    if hole_rows.size == 0:
        return out
    first, last = hole_rows[0], hole_rows[-1]
    cols = np.flatnonzero(packed[first : last + 1].any(axis=0))
    y0, y1 = max(0, first - r), min(height, last + 1 + r)
    # Columns in whole bytes so the block is a slice of `packed`; the extra pixels are zeros.
    b0, b1 = max(0, cols[0] - (r + 7) // 8), min(packed.shape[1], cols[-1] + 1 + (r + 7) // 8)
    x0, x1 = 8 * b0, min(width, 8 * b1)
    block = packed[y0:y1, b0:b1]
    pad = -block.shape[1] % 8
    block = np.pad(block, ((0, 0), (0, pad))) if pad else np.ascontiguousarray(block)
    # Zero padding past the right edge stays exact: padded bits only ever hold maxima of
    # windows that also hold real pixels, and they are dropped by unpackbits(count=...).
    words = block.view("<u8")
    half_widths = {}
    for dy in range(r + 1):
        half_widths.setdefault(math.isqrt(r * r - dy * dy), []).append(dy)
    # Strips of rows (plus r rows of context on each side) keep the working set in cache:
    # ~2x faster at 16K than whole-block passes, which are bound by memory bandwidth.
    strip = max(4 * r, _STRIP_WORDS // words.shape[1])
    for top in range(0, words.shape[0], strip):
        lo, hi = max(0, top - r), min(words.shape[0], top + strip + r)
        rows = _dilate_rows(words[lo:hi], half_widths)[top - lo : top - lo + strip]
        bits = np.unpackbits(rows.view(np.uint8), axis=1, count=x1 - x0, bitorder="little")
        np.multiply(bits, 255, out=out[y0 + top : y0 + top + len(rows), x0:x1])
    return out
