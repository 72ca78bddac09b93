"""Pictures for humans: `side_by_side` (the demo picture), `comparison_picture` (methods in
columns, for evaluation) and the crop windows they show at 1:1 (`crop_boxes`)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hifill_tf.io.errors import InputError
from hifill_tf.io.masks import _check_mask

_GAP = 8
_LABEL_H = 20
_BACKGROUND = (32, 32, 32)
_RED = np.array([255, 0, 0], np.float32)
_BOX_COLOUR = (255, 220, 0)


def crop_boxes(mask: np.ndarray, count: int, size: int) -> list[tuple[int, int, int, int]]:
    """Up to `count` size x size windows (left, top, right, bottom) showing the most hole.

    Greedy: each window is placed where it covers the most hole pixels not yet shown (counted
    on a grid of size/8 cells), centred on those pixels. Stops early when all hole is shown,
    so a small hole gets one window, not `count` copies of it.
    """
    mask = _check_mask(mask)
    height, width = mask.shape
    size = min(int(size), height, width)
    if count <= 0 or size <= 0:
        return []
    cell = max(1, size // 8)
    k = max(1, size // cell)  # window side, in cells
    starts_y, starts_x = np.arange(0, height, cell), np.arange(0, width, cell)
    counts = np.add.reduceat(mask != 0, starts_y, axis=0, dtype=np.int64)
    counts = np.add.reduceat(counts, starts_x, axis=1)
    grid_h, grid_w = counts.shape
    centres_y = (starts_y + np.minimum(starts_y + cell, height)) / 2
    centres_x = (starts_x + np.minimum(starts_x + cell, width)) / 2
    boxes = []
    for _ in range(count):
        if not counts.any():
            break
        integral = np.pad(counts.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        kh, kw = min(k, grid_h), min(k, grid_w)
        sums = (
            integral[kh:, kw:] - integral[:-kh, kw:] - integral[kh:, :-kw] + integral[:-kh, :-kw]
        )
        i, j = np.unravel_index(np.argmax(sums), sums.shape)
        window = counts[i : i + kh, j : j + kw]
        total = window.sum()
        cy = (window.sum(1) * centres_y[i : i + kh]).sum() / total
        cx = (window.sum(0) * centres_x[j : j + kw]).sum() / total
        top = int(np.clip(round(cy - size / 2), 0, height - size))
        left = int(np.clip(round(cx - size / 2), 0, width - size))
        boxes.append((left, top, left + size, top + size))
        # Cells whose centre the window shows count as shown.
        shown_y = (centres_y >= top) & (centres_y < top + size)
        shown_x = (centres_x >= left) & (centres_x < left + size)
        counts[np.ix_(shown_y, shown_x)] = 0
    return boxes


def _overlay(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Blends red over the hole; `hole` in [0, 1] (fractional on downscaled panels)."""
    a = (0.5 * hole.astype(np.float32))[..., None]
    return (rgb * (1.0 - a) + _RED * a + 0.5).astype(np.uint8)


def _scaled(array: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A whole-picture panel: ``array`` resized to ``size`` (width, height) if it differs."""
    pil = Image.fromarray(array)
    if pil.size != tuple(size):
        pil = pil.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return pil


def _outline(pil: Image.Image, boxes, scale: float, font=None) -> Image.Image:
    """Draws the crop windows (full-resolution boxes) on a panel scaled by ``scale``;
    numbered when a font is given."""
    draw = ImageDraw.Draw(pil)
    for n, (left, top, right, bottom) in enumerate(boxes, 1):
        box = [left * scale, top * scale, right * scale - 1, bottom * scale - 1]
        draw.rectangle(box, outline=_BOX_COLOUR, width=2)
        if font is not None:
            draw.text((box[0] + 4, box[1] + 2), str(n), fill=_BOX_COLOUR, font=font)
    return pil


def _font():
    try:
        return ImageFont.load_default(size=14)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: bitmap font
        return ImageFont.load_default()


def side_by_side(
    image: np.ndarray,
    mask: np.ndarray,
    output: np.ndarray,
    crops: int = 2,
    max_width: int = 2048,
    crop_size: int = 512,
) -> np.ndarray:
    """A picture for humans: input with the hole in red | output, then 1:1 crops below.

    The top row shows both whole images, downscaled to fit `max_width` (the crop windows are
    outlined and numbered). Each following row shows one window (see `crop_boxes`) of the
    input-with-hole and of the output at 1:1, unscaled, so fine detail can be judged.
    Returns uint8 [H', W', 3] with W' <= max_width; crops are at most crop_size and shrink to
    fit max_width.
    """
    image, output = np.asarray(image), np.asarray(output)
    mask = _check_mask(mask)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"image must be uint8 [H, W, 3]; got {image.dtype} {image.shape}")
    if output.shape != image.shape or output.dtype != np.uint8:
        raise InputError(f"output must be uint8 {image.shape}; got {output.dtype} {output.shape}")
    if mask.shape != image.shape[:2]:
        raise InputError(f"mask is {mask.shape} but the image is {image.shape[:2]}")
    height, width = mask.shape
    panel = (int(max_width) - 3 * _GAP) // 2
    if panel < 16:
        raise ValueError(f"max_width must be at least {3 * _GAP + 32}; got {max_width}")

    size = min(int(crop_size), panel, height, width)
    boxes = crop_boxes(mask, crops, size)
    scale = min(1.0, panel / width)
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    column = max(small[0], size if boxes else 0)

    def overview(array, with_hole):
        pil = _scaled(array, small)
        if with_hole:
            hole = Image.fromarray(mask != 0).convert("L")  # 0/255
            if small != (width, height):
                hole = hole.resize(small, Image.Resampling.BOX)
            pil = Image.fromarray(_overlay(np.asarray(pil), np.asarray(hole) / 255.0))
        return _outline(pil, boxes, scale, font)

    font = _font()
    canvas_h = _LABEL_H + small[1] + _GAP + len(boxes) * (_LABEL_H + size + _GAP)
    canvas = Image.new("RGB", (2 * column + 3 * _GAP, canvas_h), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x_in, x_out = _GAP, 2 * _GAP + column
    zoom = f" (shown at {100 * scale:.0f}%)" if scale < 1 else ""
    draw.text((x_in, 3), f"input + hole{zoom}", fill=(230, 230, 230), font=font)
    draw.text((x_out, 3), f"output{zoom}", fill=(230, 230, 230), font=font)
    canvas.paste(overview(image, True), (x_in, _LABEL_H))
    canvas.paste(overview(output, False), (x_out, _LABEL_H))

    y = _LABEL_H + small[1] + _GAP
    for n, (left, top, right, bottom) in enumerate(boxes, 1):
        where = f"{n}: x {left}-{right}, y {top}-{bottom}, 1:1"
        draw.text((x_in, y + 3), f"input {where}", fill=(230, 230, 230), font=font)
        draw.text((x_out, y + 3), f"output {where}", fill=(230, 230, 230), font=font)
        hole = mask[top:bottom, left:right] != 0
        crop_in = _overlay(image[top:bottom, left:right], hole)
        canvas.paste(Image.fromarray(crop_in), (x_in, y + _LABEL_H))
        canvas.paste(Image.fromarray(output[top:bottom, left:right]), (x_out, y + _LABEL_H))
        y += _LABEL_H + size + _GAP
    return np.asarray(canvas).copy()


def comparison_picture(
    truth: np.ndarray,
    mask: np.ndarray,
    results: list[tuple[str, np.ndarray]],
    max_width: int = 2048,
    crop_size: int = 384,
) -> np.ndarray:
    """Methods side by side: 'input + hole', each result, then 'truth', in columns.

    The top row shows every panel whole, downscaled to the column width; the second row shows
    one window of each at 1:1 (the window of ``crop_boxes`` with the most hole, outlined in
    the top row), so blur and texture can be compared pixel for pixel.
    Returns uint8 [H', W', 3] with W' <= max_width.
    """
    truth = np.asarray(truth)
    mask = _check_mask(mask)
    if truth.ndim != 3 or truth.shape[2] != 3 or truth.dtype != np.uint8:
        raise InputError(f"truth must be uint8 [H, W, 3]; got {truth.dtype} {truth.shape}")
    if mask.shape != truth.shape[:2]:
        raise InputError(f"mask is {mask.shape} but the image is {truth.shape[:2]}")
    for label, result in results:
        if np.shape(result) != truth.shape:
            raise InputError(f"{label}: result is {np.shape(result)}, expected {truth.shape}")
    hole = mask != 0
    panels = ([("input + hole", _overlay(np.where(hole[..., None], 0, truth), hole))]
              + [(label, np.asarray(result)) for label, result in results]
              + [("truth", truth)])
    height, width = mask.shape
    column = (int(max_width) - (len(panels) + 1) * _GAP) // len(panels)
    if column < 16:
        raise ValueError(f"max_width {max_width} is too small for {len(panels)} panels")
    size = min(int(crop_size), column, height, width)
    boxes = crop_boxes(mask, 1, size)
    scale = min(1.0, column / width)
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    font = _font()
    rows_h = _LABEL_H + small[1] + _GAP + (_LABEL_H + size + _GAP if boxes else 0)
    canvas = Image.new("RGB", (len(panels) * (column + _GAP) + _GAP, rows_h), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    zoom = f" (shown at {100 * scale:.0f}%)" if scale < 1 else ""
    for n, (label, array) in enumerate(panels):
        x = _GAP + n * (column + _GAP)
        draw.text((x, 3), f"{label}{zoom}", fill=(230, 230, 230), font=font)
        canvas.paste(_outline(_scaled(array, small), boxes, scale), (x, _LABEL_H))
        for left, top, right, bottom in boxes:
            y = _LABEL_H + small[1] + _GAP
            draw.text((x, y + 3), f"{label}, 1:1", fill=(230, 230, 230), font=font)
            canvas.paste(Image.fromarray(np.ascontiguousarray(array[top:bottom, left:right])),
                         (x, y + _LABEL_H))
    return np.asarray(canvas).copy()
