"""Quantitative evaluation at several photo sizes: HiFill + CRA against its own baselines.

    python -m hifill_tf.evaluate --data_dir photos/ --sizes 512x512,2048x1280,native
        --weights hifill.npz --output results.md --json results.json

Every photo is resized to each size (``WxH``, width first; ``native`` = as is), given
``--holes`` seeded irregular holes (``hifill_tf.data.masks.sample_mask``; hole ``j`` of photo ``k``
uses seed ``seed + k * holes + j``, so a hole is the same for every method and, up to scale, for
every size) and filled by each method; each (photo, hole) pair is scored as one image.
``--pictures DIR`` writes one comparison picture per photo and size.
A photo up-scaled to a size has little fine detail for the sharpness figure to measure; the
progress line says so.

- ``hifill``: the model with Contextual Residual Aggregation, exactly ``hifill_tf.inpaint``.
- ``bicubic``: the same network output, without CRA: the generator runs on the same averaged-down
  input CRA uses (``cra.plan`` / mirror padding / ``cra.reduce_photo``), and its low-resolution
  ``inpainted`` image is up-sampled bicubically to full size and pasted into the hole (the
  "Bicubic" baseline of §4.4). Where the plan's factor is 1 this is ``hifill`` without residuals,
  and the two agree.
- ``telea``: OpenCV's ``cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA)``, a classic non-learned
  fill (needs ``opencv-python-headless``).

Every method receives the photo with the hole blanked to black, so none can see the truth it is
scored against, and every result is pasted: pixels outside the hole are the input's.

Metrics, per image, then averaged over the images of a size (each image weighs the same):

- **L1**: mean absolute error on the 0-255 scale over all pixels and channels of the pasted
  result. (Table 2 of the paper does not give its scale; its values look like percent of the
  0-1 range, which is this number / 2.55.) **Hole L1**: the same over hole pixels only.
- **PSNR**: ``10 log10(255^2 / MSE)`` in dB, whole image and over hole pixels only; an exact fill
  gives +inf (shown as ``inf``; ``null`` in JSON).
- **MS-SSIM**: ``tf.image.ssim_multiscale`` (max_val 255, 11x11 Gaussian window), whole image
  only. It needs ``ceil(side / 2^(s-1)) >= 11`` at the coarsest of ``s`` scales, i.e. a short side
  of 161 px for the standard 5 scales; smaller images use as many scales as fit, with the first
  ``s`` standard weights renormalised to sum to 1 (marked ``*`` in the table). No in-hole
  variant: an SSIM window needs a rectangle, and the bounding box of an irregular hole is mostly
  known pixels shared by every method, which would only dilute the differences.
- **Sharpness**: ``E_hf(result) / E_hf(truth)``, where ``E_hf`` is the mean squared 4-neighbour
  Laplacian of the luma (BT.601, 0-255) over the hole eroded by 2 px (3x3 square, twice), so no
  Laplacian stencil touches the seam or the known pixels; when erosion leaves nothing the whole
  hole is used. Per size and method it is pooled: mean ``E_hf`` of the results over mean ``E_hf``
  of the truths, so nearly flat holes do not dominate. 1.0 = as much fine detail as the truth,
  below 1 blurrier (up-sampling loses it: the point of §4.4), above 1 noisier.
- **Time**: wall-clock seconds per image of the method alone (each method is run once on a small
  image first, so graph tracing is not counted).

The code lives in: ``metrics`` (the numbers of one image), ``baselines`` (the methods,
`run_method`), ``report`` (Markdown and JSON); the evaluation loop (`evaluate`) is here, the
command line in ``__main__``.
"""

import math
import os
import time

import numpy as np
from PIL import Image

from hifill_tf.console import format_seconds
from hifill_tf.evaluate.baselines import (
    METHODS,
    _import_cv2,
    bicubic,
    bicubic_function,
    hifill,
    run_method,
    telea,
)
from hifill_tf.evaluate.metrics import (
    MS_SSIM_WEIGHTS,
    SSIM_FILTER,
    erode,
    error_sums,
    high_frequency_energy,
    image_metrics,
    l1_error,
    laplacian,
    ms_ssim,
    ms_ssim_scales,
    psnr,
    psnr_from_mse,
    sharpness,
    sharpness_region,
)
from hifill_tf.evaluate.report import FOOTNOTE, markdown_table, to_json, write_atomic
from hifill_tf.io import InputError, comparison_picture, write_image_atomic

NATIVE = "native"
MIN_SIDE = 16  # hifill_tf.api.MIN_SIDE, without importing TensorFlow for the flag checks
RESAMPLING = {"lanczos": Image.Resampling.LANCZOS, "area": Image.Resampling.BOX}

__all__ = [
    "FOOTNOTE",
    "InputError",
    "METHODS",
    "MIN_SIDE",
    "MS_SSIM_WEIGHTS",
    "NATIVE",
    "RESAMPLING",
    "SSIM_FILTER",
    "bicubic",
    "bicubic_function",
    "erode",
    "error_sums",
    "evaluate",
    "hifill",
    "high_frequency_energy",
    "image_metrics",
    "l1_error",
    "laplacian",
    "markdown_table",
    "ms_ssim",
    "ms_ssim_scales",
    "parse_methods",
    "parse_sizes",
    "psnr",
    "psnr_from_mse",
    "resize",
    "run_method",
    "sharpness",
    "sharpness_region",
    "size_label",
    "telea",
    "to_json",
    "write_atomic",
]


def parse_sizes(text):
    """'512x512,2048x1280,native' -> [(512, 512), (2048, 1280), 'native'] as (width, height)."""
    sizes = []
    for item in (s.strip().lower() for s in str(text).split(",")):
        if not item:
            continue
        if item == NATIVE:
            sizes.append(NATIVE)
            continue
        try:
            width, height = (int(v) for v in item.split("x"))
        except ValueError:
            raise ValueError(
                f"size must be WIDTHxHEIGHT (e.g. 2048x1280) or 'native'; got {item!r}") from None
        if min(width, height) < MIN_SIDE:
            raise ValueError(f"size {item}: both sides must be at least {MIN_SIDE} pixels")
        sizes.append((width, height))
    if not sizes:
        raise ValueError(f"no sizes given in {text!r}")
    return sizes


def size_label(size):
    return NATIVE if size == NATIVE else f"{size[0]}x{size[1]}"


def parse_methods(text):
    """'hifill,telea' (or a list) -> ['hifill', 'telea'], checked, duplicates dropped."""
    if isinstance(text, str):
        methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    else:
        methods = list(text)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be some of {', '.join(METHODS)}; got {text!r}")
    return list(dict.fromkeys(methods))


def resize(image, size, resample="lanczos"):
    """A photo at ``size`` ((width, height) or 'native', which returns it as is)."""
    if size == NATIVE or (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize(tuple(size), RESAMPLING[resample]))


def _load(photo, index):
    """(name, uint8 [H, W, 3]) from a path, an array, or a (name, array) pair."""
    from hifill_tf.io import read_image

    if isinstance(photo, tuple):
        name, array = photo
    elif isinstance(photo, (str, os.PathLike)):
        return os.path.basename(os.fspath(photo)), read_image(photo)[0]
    else:
        name, array = f"photo{index}", photo
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"{name}: expected uint8 [H, W, 3], got {array.dtype} {list(array.shape)}")
    return name, array


def _warm_up(methods, generator, max_pixels):
    """Trace the TensorFlow functions on a small photo, so timings measure the work only."""
    image = np.full((64, 64, 3), 128, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 20:44] = 255
    for method in methods:
        run_method(method, image, mask, generator, max_pixels)


def _mean(values):
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def evaluate(photos, sizes=((512, 512),), methods=METHODS, generator=None, seed=0,
             min_area=0.10, max_area=0.25, mask_kind="mixed", max_pixels=None,
             resample="lanczos", with_ms_ssim=True, warm_up=True, progress=None, holes=1,
             pictures=None):
    """Score methods on seeded holes in photos at several sizes.

    Args:
        photos: paths, uint8 [H, W, 3] arrays, or (name, array) pairs; read one at a time.
        sizes: (width, height) pairs and/or 'native' (or a string for ``parse_sizes``).
        methods: some of METHODS (or a comma-separated string).
        generator: the model for 'hifill' and 'bicubic'; None = the bundled weights.
        seed: hole j of photo k uses seed ``seed + k * holes + j`` (seed + k for one hole).
        min_area, max_area, mask_kind: passed to ``sample_mask`` (hole fraction and kind).
        max_pixels: network pixel budget of CRA (default ``cra.network_pixels``: the one
            stored with the weights, else 512 * 512).
        resample: 'lanczos' or 'area' (PIL BOX), for resizing photos to a size.
        with_ms_ssim: False skips MS-SSIM (the slowest metric at 4K and up).
        warm_up: run each method once on a small image first, so times exclude tracing.
        progress: callable taking one line of text per photo and size (e.g. print to stderr).
        holes: holes per photo and size; each is scored as one image (more holes, less noise).
        pictures: folder to write one comparison picture per photo and size into
            (``io.comparison_picture`` of the first hole: every method and the truth, whole
            and at 1:1), named ``<photo stem>-<size>.jpg``; None writes none.
    Returns one dict per size x method, in that order, with the means over photos (``l1``,
    ``psnr``, ``ms_ssim``, ``hole_l1``, ``hole_psnr``, ``sharpness`` pooled as in the module
    docstring, ``seconds`` per image, ``hole_fraction``, ``ms_ssim_scales`` = fewest scales
    used) and the per-photo numbers under ``per_image``.
    """
    from hifill_tf.data.masks import sample_mask

    sizes, methods, holes = _checked(sizes, methods, min_area, max_area, resample, holes,
                                     pictures)
    if generator is None and {"hifill", "bicubic"} & set(methods):
        from hifill_tf.api import default_generator

        generator = default_generator()
    photos = list(photos)
    if not photos:
        raise InputError("no photos to evaluate")
    if warm_up:
        _warm_up(methods, generator, max_pixels)

    def run(method, image, mask):
        return run_method(method, image, mask, generator, max_pixels)

    records = {(size_label(s), m): [] for s in sizes for m in methods}
    total, done, start = len(photos) * len(sizes) * holes, 0, time.monotonic()
    for index, photo in enumerate(photos):
        name, original = _load(photo, index)
        for size in sizes:
            truth = _sized(name, original, size, resample)
            for hole_index in range(holes):
                mask = sample_mask(*truth.shape[:2], seed + index * holes + hole_index,
                                   kind=mask_kind, min_area=min_area, max_area=max_area)
                scored = _score_hole(truth, mask, methods, run, with_ms_ssim, name, hole_index)
                for method, _, metrics in scored:
                    records[(size_label(size), method)].append(metrics)
                outputs = [(method, output) for method, output, _ in scored]
                times = [f"{method} {metrics['seconds']:.2f}s" for method, _, metrics in scored]
                if pictures is not None and hole_index == 0:
                    stem = os.path.splitext(name)[0]
                    write_image_atomic(os.path.join(pictures, f"{stem}-{size_label(size)}.jpg"),
                                       comparison_picture(truth, mask, outputs), quality=92)
                done += 1
                if progress:
                    elapsed = time.monotonic() - start
                    progress(f"[{done}/{total}] {_describe(name, truth, original, size)}"
                             f"{f' hole {hole_index + 1}/{holes}' if holes > 1 else ''}: "
                             f"{', '.join(times)} | elapsed {format_seconds(elapsed)}, "
                             f"ETA {format_seconds(elapsed / done * (total - done))}")
    results = [_summary(label, method, rows) for (label, method), rows in records.items()]
    if progress:
        progress(f"evaluated {len(photos)} photos x {holes} holes x {len(sizes)} sizes x "
                 f"{len(methods)} methods "
                 f"in {format_seconds(time.monotonic() - start)}")
    return results


def _checked(sizes, methods, min_area, max_area, resample, holes, pictures):
    """The arguments of `evaluate`, checked before any work: (sizes, methods, holes)."""
    sizes = parse_sizes(sizes) if isinstance(sizes, str) else list(sizes)
    sizes = list({size_label(s): s for s in sizes}.values())  # a size given twice counts once
    methods = parse_methods(methods)
    if not 0.0 < min_area <= max_area < 1.0:
        raise ValueError(f"need 0 < min_area <= max_area < 1; got {min_area!r}, {max_area!r}")
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLING)}; got {resample!r}")
    if "telea" in methods:
        _import_cv2()  # fail before any work, not after the first model run
    if int(holes) < 1:
        raise ValueError(f"holes must be at least 1; got {holes!r}")
    if pictures is not None and not os.path.isdir(pictures):
        raise InputError(f"{pictures}: pictures folder does not exist")
    return sizes, methods, int(holes)


def _sized(name, original, size, resample):
    """The photo at ``size``, the ground truth its holes are scored against."""
    truth = resize(original, size, resample)
    height, width = truth.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise InputError(f"{name}: {width}x{height} is too small; both sides must be at "
                         f"least {MIN_SIDE} pixels")
    return truth


def _score_hole(truth, mask, methods, run, with_ms_ssim, name, hole_index):
    """Runs every method on one hole of ``truth``: [(method, output, metrics)]."""
    hole = mask != 0
    blanked = np.where(hole[..., None], np.uint8(0), truth)
    height, width = truth.shape[:2]
    scored = []
    for method in methods:
        tic = time.perf_counter()
        output = run(method, blanked, mask)
        seconds = time.perf_counter() - tic
        metrics = image_metrics(output, truth, mask, with_ms_ssim)
        metrics.update(name=name, width=width, height=height, seconds=seconds,
                       hole_fraction=float(hole.mean()), hole_index=hole_index)
        scored.append((method, output, metrics))
    return scored


def _describe(name, truth, original, size):
    """'photo.jpg 512x512 (512x512, up-scaled x1.3: little true detail)'."""
    height, width = truth.shape[:2]
    scale = max(width / original.shape[1], height / original.shape[0])
    upscaled = f", up-scaled x{scale:.1f}: little true detail" if scale > 1.01 else ""
    return f"{name} {width}x{height} ({size_label(size)}{upscaled})"


def _summary(label, method, rows):
    hf_truth = _mean([r["hf_truth"] for r in rows])
    hf_output = _mean([r["hf_output"] for r in rows])
    scales = [r["ms_ssim_scales"] for r in rows]
    return {
        "size": label,
        "method": method,
        "images": len(rows),
        "l1": _mean([r["l1"] for r in rows]),
        "psnr": float(np.mean([r["psnr"] for r in rows])),  # inf if any fill is exact
        "ms_ssim": _mean([r["ms_ssim"] for r in rows]),
        "ms_ssim_scales": min(scales) if scales else 0,
        "hole_l1": _mean([r["hole_l1"] for r in rows]),
        "hole_psnr": float(np.mean([r["hole_psnr"] for r in rows])),
        "sharpness": hf_output / hf_truth if hf_truth > 0 else math.nan,
        "seconds": _mean([r["seconds"] for r in rows]),
        "hole_fraction": _mean([r["hole_fraction"] for r in rows]),
        "per_image": rows,
    }


# The photos of --data_dir / --images: here rather than in __main__, which only runs as a program.
def _photo_paths(data_dir, images, max_images):
    from hifill_tf.io import find_images

    if bool(data_dir) == bool(images):
        raise InputError("give exactly one of --data_dir or --images")
    paths = find_images(data_dir) if data_dir else list(images)
    if data_dir and not paths:
        raise InputError(f"{data_dir}: no image files found")
    if max_images > 0:
        paths = paths[:max_images]
    for path in paths:
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file")
    return paths
