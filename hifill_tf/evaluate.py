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
"""

import json
import math
import os
import sys
import time

import numpy as np
from PIL import Image

from hifill_tf.cli_util import format_seconds
from hifill_tf.io import InputError, atomic_file, comparison_picture, write_image_atomic

METHODS = ("hifill", "bicubic", "telea")
NATIVE = "native"
MIN_SIDE = 16  # hifill_tf.api.MIN_SIDE, without importing TensorFlow for the flag checks
RESAMPLING = {"lanczos": Image.Resampling.LANCZOS, "area": Image.Resampling.BOX}

# Standard MS-SSIM weights (Wang et al. 2003), as tf.image.ssim_multiscale's default.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_FILTER = 11
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# ---------------------------------------------------------------------------------------------
# Metrics (NumPy, except MS-SSIM)
# ---------------------------------------------------------------------------------------------


def _check_pair(output, truth, mask=None):
    output, truth = np.asarray(output), np.asarray(truth)
    if output.shape != truth.shape or output.ndim != 3 or output.shape[2] != 3:
        raise ValueError(f"expected two [H, W, 3] images of one shape; got {output.shape} and {truth.shape}")
    if mask is None:
        return output, truth, None
    hole = np.asarray(mask)
    if hole.ndim == 3 and hole.shape[2] == 1:
        hole = hole[..., 0]
    if hole.shape != truth.shape[:2]:
        raise ValueError(f"mask is {hole.shape}, the images are {truth.shape[:2]}")
    return output, truth, hole != 0


def error_sums(output, truth, mask=None):
    """(sum |d|, sum d^2, values counted) of d = output - truth, exact integers for uint8 input.

    With ``mask`` only pixels where it is non-zero count. One channel at a time, in int64 sums,
    so an 8K photo needs no float copy.
    """
    output, truth, hole = _check_pair(output, truth, mask)
    abs_sum = sq_sum = 0
    for c in range(3):
        d = output[..., c].astype(np.int32) - truth[..., c].astype(np.int32)
        if hole is not None:
            d = d[hole]
        abs_sum += int(np.abs(d).sum(dtype=np.int64))
        sq_sum += int(np.square(d, dtype=np.int64).sum())
    count = 3 * (int(hole.sum()) if hole is not None else truth.shape[0] * truth.shape[1])
    return abs_sum, sq_sum, count


def l1_error(output, truth, mask=None):
    """Mean absolute error on the 0-255 scale (over the hole's pixels if ``mask`` is given)."""
    abs_sum, _, count = error_sums(output, truth, mask)
    return abs_sum / count if count else math.nan


def psnr_from_mse(mse, max_val=255.0):
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10.0 * math.log10(max_val * max_val / mse)


def psnr(output, truth, mask=None):
    """PSNR in dB for 0-255 images; +inf when identical (over the hole if ``mask`` is given)."""
    _, sq_sum, count = error_sums(output, truth, mask)
    return psnr_from_mse(sq_sum / count if count else math.nan)


def ms_ssim_scales(height, width, filter_size=SSIM_FILTER, max_scales=len(MS_SSIM_WEIGHTS)):
    """How many MS-SSIM scales an image this size allows (0 if even one does not fit).

    tf.image.ssim_multiscale halves the image (rounding up) between scales and its SSIM needs
    at least ``filter_size`` pixels per side at every scale.
    """
    side, scales = min(height, width), 0
    while scales < max_scales and side >= filter_size:
        scales += 1
        side = (side + 1) // 2
    return scales


_ms_ssim_functions = {}


def _ms_ssim_function(scales):
    """Graph-mode ``tf.image.ssim_multiscale`` on one channel, traced once per scale count."""
    import tensorflow as tf

    if scales not in _ms_ssim_functions:
        weights = np.array(MS_SSIM_WEIGHTS[:scales], np.float64)
        weights = tuple(float(w) for w in weights / weights.sum())
        _ms_ssim_functions[scales] = tf.function(
            lambda a, b: tf.image.ssim_multiscale(
                tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=255.0,
                power_factors=weights, filter_size=SSIM_FILTER)[0],
            input_signature=[tf.TensorSpec([1, None, None, 1], tf.uint8)] * 2)
    return _ms_ssim_functions[scales]


def ms_ssim(output, truth):
    """(MS-SSIM, scales used) of two uint8 [H, W, 3] images, as ``tf.image.ssim_multiscale``.

    Below 161 px per side fewer scales are used (see the module docstring); (nan, 0) below 11.
    One channel at a time (MS-SSIM is a per-channel product averaged over channels, so this is
    the same number) to keep TensorFlow's float copies of a large photo small.
    """
    output, truth, _ = _check_pair(output, truth)
    if output.dtype != np.uint8 or truth.dtype != np.uint8:
        raise ValueError(f"ms_ssim expects uint8 images; got {output.dtype} and {truth.dtype}")
    scales = ms_ssim_scales(*truth.shape[:2])
    if scales == 0:
        return math.nan, 0
    function = _ms_ssim_function(scales)
    values = [float(function(output[None, :, :, c:c + 1], truth[None, :, :, c:c + 1]))
              for c in range(3)]
    return float(np.mean(values)), scales


def erode(hole, pixels=2):
    """Binary erosion by a (2 pixels + 1) square; outside the image counts as not hole."""
    hole = np.asarray(hole) != 0
    for _ in range(pixels):
        padded = np.pad(hole, 1)
        eroded = padded[1:-1, 1:-1].copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                eroded &= padded[dy:dy + hole.shape[0], dx:dx + hole.shape[1]]
        hole = eroded
    return hole


def laplacian(image):
    """4-neighbour Laplacian of the luma of a [H, W, 3] image (edges replicated), float32."""
    luma = np.asarray(image, np.float32) @ _LUMA
    p = np.pad(luma, 1, mode="edge")
    return 4.0 * luma - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]


def sharpness_region(mask, erosion=2):
    """The pixels the sharpness figure counts: the hole eroded by ``erosion`` px, or the hole."""
    hole = np.asarray(mask) != 0
    if hole.ndim == 3:
        hole = hole[..., 0]
    inner = erode(hole, erosion)
    return inner if inner.any() else hole


def high_frequency_energy(image, region):
    """E_hf: mean squared Laplacian of the luma over ``region`` (bool [H, W])."""
    if not region.any():
        return math.nan
    return float(np.mean(np.square(laplacian(image)[region], dtype=np.float64)))


def sharpness(output, truth, mask, erosion=2):
    """E_hf(output) / E_hf(truth) over the eroded hole: 1 = as sharp as the truth, < 1 blurrier."""
    output, truth, hole = _check_pair(output, truth, mask)
    region = sharpness_region(hole, erosion)
    reference = high_frequency_energy(truth, region)
    value = high_frequency_energy(output, region)
    return value / reference if reference > 0 else math.nan


def image_metrics(output, truth, mask, with_ms_ssim=True):
    """All per-image numbers: whole-image and in-hole L1 / PSNR, MS-SSIM, E_hf of both."""
    output, truth, hole = _check_pair(output, truth, mask)
    whole = error_sums(output, truth)
    inside = error_sums(output, truth, hole)
    region = sharpness_region(hole)
    result = {
        "l1": whole[0] / whole[2],
        "psnr": psnr_from_mse(whole[1] / whole[2]),
        "hole_l1": inside[0] / inside[2] if inside[2] else math.nan,
        "hole_psnr": psnr_from_mse(inside[1] / inside[2] if inside[2] else math.nan),
        "hf_output": high_frequency_energy(output, region),
        "hf_truth": high_frequency_energy(truth, region),
        "ms_ssim": math.nan,
        "ms_ssim_scales": 0,
    }
    if with_ms_ssim:
        result["ms_ssim"], result["ms_ssim_scales"] = ms_ssim(output, truth)
    h_out, h_truth = result["hf_output"], result["hf_truth"]
    result["sharpness"] = h_out / h_truth if h_truth > 0 else math.nan
    return result


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------


def _paste(filled, image, hole):
    return np.where(hole[..., None], filled, image)


def telea(image, mask, radius=3):
    """OpenCV Telea inpainting, pasted into the hole (outside pixels are ``image``'s)."""
    cv2 = _import_cv2()
    hole = np.asarray(mask) != 0
    filled = cv2.inpaint(np.ascontiguousarray(image), hole.astype(np.uint8) * 255, radius,
                         cv2.INPAINT_TELEA)
    return _paste(filled, image, hole)


def _import_cv2():
    try:
        import cv2
    except ImportError as e:
        raise ImportError("the 'telea' method needs OpenCV: pip install opencv-python-headless "
                          f"(or leave telea out of the methods); import failed: {e}") from e
    return cv2


_low_functions = {}


def bicubic_function(generator, max_pixels=None):
    """``tf.function`` (uint8 [H, W, 3], uint8 [H, W]) -> uint8 [H, W, 3]: the §4.4 baseline.

    The network input is built as in ``cra.inpaint_tensor`` (same plan, mirror padding,
    averaging, hole of the low-resolution pixels); the low-resolution ``inpainted`` output is
    up-sampled bicubically over the padded grid, cropped and pasted into the hole.
    """
    import tensorflow as tf

    from hifill_tf import cra

    max_pixels = cra.network_pixels(generator, max_pixels)
    key = (id(generator), max_pixels)
    if key in _low_functions:
        return _low_functions[key][1]

    def run(image, mask):
        hole = (mask > 0)[..., None]
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        # The same network input as CRA, so the two methods differ only in up-sampling.
        padded, _, low, low_hole, _ = cra.network_input(image, hole, max_pixels)
        inpainted, _ = cra.run_network(generator, low[None], low_hole[None])
        up = tf.image.resize(inpainted, tf.shape(padded)[:2], method="bicubic")
        up = tf.cast(tf.clip_by_value(tf.round(up[0, :height, :width]), 0.0, 255.0), tf.uint8)
        return tf.where(hole, up, image)

    function = tf.function(run, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                                 tf.TensorSpec([None, None], tf.uint8)])
    _low_functions[key] = (generator, function)  # the generator keeps id(generator) unique
    return function


def bicubic(image, mask, generator, max_pixels=None):
    """The model's low-resolution fill up-sampled bicubically and pasted (no CRA), uint8 [H, W, 3]."""
    hole = (np.asarray(mask) != 0).astype(np.uint8)
    return bicubic_function(generator, max_pixels)(image, hole).numpy()


def hifill(image, mask, generator, max_pixels=None):
    """``hifill_tf.inpaint``: the model with CRA."""
    from hifill_tf import api

    return api.inpaint(image, mask, generator=generator, max_pixels=max_pixels)


def run_method(method, image, mask, generator=None, max_pixels=None):
    """Fill ``image``'s hole with one of METHODS; returns uint8 [H, W, 3]."""
    if method == "hifill":
        return hifill(image, mask, generator, max_pixels)
    if method == "bicubic":
        return bicubic(image, mask, generator, max_pixels)
    if method == "telea":
        return telea(image, mask)
    raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


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

    sizes = parse_sizes(sizes) if isinstance(sizes, str) else list(sizes)
    sizes = list({size_label(s): s for s in sizes}.values())  # a size given twice counts once
    methods = parse_methods(methods)
    if not 0.0 < min_area <= max_area < 1.0:
        raise ValueError(f"need 0 < min_area <= max_area < 1; got {min_area!r}, {max_area!r}")
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLING)}; got {resample!r}")
    if "telea" in methods:
        _import_cv2()  # fail before any work, not after the first model run
    if generator is None and {"hifill", "bicubic"} & set(methods):
        from hifill_tf.api import default_generator

        generator = default_generator()
    photos = list(photos)
    if not photos:
        raise InputError("no photos to evaluate")
    if int(holes) < 1:
        raise ValueError(f"holes must be at least 1; got {holes!r}")
    holes = int(holes)
    if pictures is not None and not os.path.isdir(pictures):
        raise InputError(f"{pictures}: pictures folder does not exist")
    if warm_up:
        _warm_up(methods, generator, max_pixels)

    records = {(size_label(s), m): [] for s in sizes for m in methods}
    total, done, start = len(photos) * len(sizes) * holes, 0, time.monotonic()
    for index, photo in enumerate(photos):
        name, original = _load(photo, index)
        for size in sizes:
            truth = resize(original, size, resample)
            height, width = truth.shape[:2]
            scale = max(width / original.shape[1], height / original.shape[0])
            if min(height, width) < MIN_SIDE:
                raise InputError(f"{name}: {width}x{height} is too small; both sides must be at "
                                 f"least {MIN_SIDE} pixels")
            for hole_index in range(holes):
                mask = sample_mask(height, width, seed + index * holes + hole_index,
                                   kind=mask_kind, min_area=min_area, max_area=max_area)
                hole = mask != 0
                blanked = np.where(hole[..., None], np.uint8(0), truth)
                times, outputs = [], []
                for method in methods:
                    tic = time.perf_counter()
                    output = run_method(method, blanked, mask, generator, max_pixels)
                    seconds = time.perf_counter() - tic
                    metrics = image_metrics(output, truth, mask, with_ms_ssim)
                    metrics.update(name=name, width=width, height=height, seconds=seconds,
                                   hole_fraction=float(hole.mean()), hole_index=hole_index)
                    records[(size_label(size), method)].append(metrics)
                    times.append(f"{method} {seconds:.2f}s")
                    outputs.append((method, output))
                if pictures is not None and hole_index == 0:
                    stem = os.path.splitext(name)[0]
                    write_image_atomic(os.path.join(pictures, f"{stem}-{size_label(size)}.jpg"),
                                       comparison_picture(truth, mask, outputs), quality=92)
                done += 1
                elapsed = time.monotonic() - start
                if progress:
                    upscaled = (f", up-scaled x{scale:.1f}: little true detail"
                                if scale > 1.01 else "")
                    which = f" hole {hole_index + 1}/{holes}" if holes > 1 else ""
                    progress(f"[{done}/{total}] {name} {width}x{height} ({size_label(size)}"
                             f"{upscaled}){which}: {', '.join(times)} | elapsed "
                             f"{format_seconds(elapsed)}, "
                             f"ETA {format_seconds(elapsed / done * (total - done))}")
    results = [_summary(label, method, rows) for (label, method), rows in records.items()]
    if progress:
        progress(f"evaluated {len(photos)} photos x {holes} holes x {len(sizes)} sizes x "
                 f"{len(methods)} methods "
                 f"in {format_seconds(time.monotonic() - start)}")
    return results


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


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


def _number(value, digits):
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def _duration(seconds):
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


FOOTNOTE = """\
L1: mean absolute error on the 0-255 scale (paper's Table 2 L1 in percent = this / 2.55), whole \
image and over hole pixels only. PSNR in dB (255 peak), whole image and hole pixels only; each \
the mean over images. MS-SSIM: tf.image.ssim_multiscale on the whole pasted image (max_val 255, \
5 scales; `*` = some images smaller than 161 px per side, scored with fewer scales and \
renormalised weights). Sharpness: mean over images of E_hf(result) / mean of E_hf(truth), where \
E_hf is the mean squared 4-neighbour Laplacian of the luma over the hole eroded by 2 px; \
1.0 = as much fine detail as the truth, < 1 blurrier. Time: seconds per image for the method \
alone, after warm-up. hifill = the model with CRA; bicubic = its low-resolution output \
up-sampled bicubically and pasted (§4.4); telea = OpenCV cv2.INPAINT_TELEA, radius 3."""


def markdown_table(results, title=None, footnote=True):
    """The results of ``evaluate`` as a Markdown table (one row per size x method)."""
    lines = [f"**{title}**", ""] if title else []
    lines += ["| Size | Method | Images | Hole | L1 | PSNR (dB) | MS-SSIM | Hole L1 | Hole PSNR (dB) "
              "| Sharpness | Time / image |",
              "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        ssim = _number(r["ms_ssim"], 4)
        if 0 < r.get("ms_ssim_scales", len(MS_SSIM_WEIGHTS)) < len(MS_SSIM_WEIGHTS):
            ssim += "*"
        lines.append(
            f"| {r['size']} | {r['method']} | {r['images']} | {100 * r['hole_fraction']:.1f}% "
            f"| {_number(r['l1'], 3)} | {_number(r['psnr'], 2)} | {ssim} "
            f"| {_number(r['hole_l1'], 2)} | {_number(r['hole_psnr'], 2)} "
            f"| {_number(r['sharpness'], 3)} | {_duration(r['seconds'])} |")
    if footnote:
        lines += ["", FOOTNOTE]
    return "\n".join(lines) + "\n"


def _json_safe(value):
    """Strict JSON: non-finite floats become null."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def to_json(results, config=None):
    return json.dumps(_json_safe({"config": config or {}, "results": results}), indent=2,
                      allow_nan=False) + "\n"


def write_atomic(path, text):
    with atomic_file(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _define_flags():
    # Defined only when run as a program, so importing the library never collides with the
    # flags of another front end (train.py has --seed, --min_area, ...).
    from absl import flags

    flags.DEFINE_string("data_dir", None, "Folder of photos to evaluate on (jpg, png, webp, tif, bmp; not recursive).")
    flags.DEFINE_list("images", None, "Instead of --data_dir: comma-separated photo files.")
    flags.DEFINE_integer("max_images", 0, "Use only the first N photos (sorted by name); 0 = all.")
    flags.DEFINE_list("sizes", ["512x512", "2048x1280", "native"], "Sizes WIDTHxHEIGHT to resize every photo to, or 'native' (as is).")
    flags.DEFINE_list("methods", list(METHODS), "Methods to compare: hifill (model + CRA), bicubic (model output up-sampled bicubically, §4.4), telea (OpenCV).")
    flags.DEFINE_string("weights", None, "Generator weights .npz (hifill_tf.weights); default: the bundled weights.")
    flags.DEFINE_string("checkpoint", None, "Instead of --weights: a training --model_dir; its latest checkpoint is used.")
    flags.DEFINE_integer("seed", 0, "Mask seed: photo k gets the hole of seed + k, the same for every method and size.")
    flags.DEFINE_float("min_area", 0.10, "Smallest hole, as a fraction of the image.")
    flags.DEFINE_float("max_area", 0.25, "Largest hole, as a fraction of the image (paper: up to 25%).")
    flags.DEFINE_enum("mask_kind", "mixed", ["free_form", "object", "mixed", "either"], "Hole shapes (hifill_tf.data.masks): strokes, object silhouettes, both, or one of them.")
    flags.DEFINE_enum("resample", "lanczos", list(RESAMPLING), "Filter for resizing photos to --sizes: lanczos, or area (box) averaging.")
    flags.DEFINE_integer("max_pixels", None, "Pixel budget of the network input under CRA; default: the one stored with the weights (bundled model: 65536 = 256x256), else 262144 (512x512, the paper's).")
    flags.DEFINE_bool("ms_ssim", True, "Compute MS-SSIM (--noms_ssim skips it: the slowest metric on large photos).")
    flags.DEFINE_string("output", None, "Also write the Markdown table to this file (atomically).")
    flags.DEFINE_string("json", None, "Also write all results, per image included, as JSON to this file.")
    flags.DEFINE_integer("holes", 1, "Holes per photo and size (seeds seed + k * holes + j); each counts as one image.")
    flags.DEFINE_string("pictures", None, "Folder for one comparison picture per photo and size (every method and the truth, whole and 1:1).")


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


def _network_pixels(generator, max_pixels):
    if generator is None:
        return max_pixels
    from hifill_tf import cra

    return cra.network_pixels(generator, max_pixels)


def _check_writable(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{path}: folder {folder} does not exist")


def main(argv):
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        sys.exit(f"evaluate: unexpected arguments {argv[1:]}")
    try:
        paths = _photo_paths(FLAGS.data_dir, FLAGS.images, FLAGS.max_images)
        sizes = parse_sizes(",".join(FLAGS.sizes))
        methods = parse_methods(",".join(FLAGS.methods))
        for path in (FLAGS.output, FLAGS.json):
            if path:
                _check_writable(path)
        if FLAGS.weights and FLAGS.checkpoint:
            raise InputError("give at most one of --weights and --checkpoint")
        generator, model = None, None
        if {"hifill", "bicubic"} & set(methods):
            if FLAGS.checkpoint:
                from hifill_tf.training.trainer import load_generator

                generator, model = load_generator(FLAGS.checkpoint)
            else:
                from hifill_tf.weights import DEFAULT_WEIGHTS, load_generator

                model = FLAGS.weights or DEFAULT_WEIGHTS
                try:
                    generator = load_generator(model)
                except FileNotFoundError:
                    hint = "" if FLAGS.weights else " (no bundled weights: pass --weights or --checkpoint)"
                    raise InputError(f"{model}: weights file not found{hint}") from None
        if "telea" in methods:
            _import_cv2()
        results = evaluate(paths, sizes, methods, generator, seed=FLAGS.seed,
                           min_area=FLAGS.min_area, max_area=FLAGS.max_area,
                           mask_kind=FLAGS.mask_kind, max_pixels=FLAGS.max_pixels,
                           resample=FLAGS.resample, with_ms_ssim=FLAGS.ms_ssim,
                           progress=lambda line: print(line, file=sys.stderr, flush=True),
                           holes=FLAGS.holes, pictures=FLAGS.pictures)
    except (InputError, ImportError, ValueError, FileNotFoundError) as error:
        sys.exit(f"evaluate: {error}")

    config = {"model": model, "photos": len(paths), "sizes": [size_label(s) for s in sizes],
              "methods": methods, "seed": FLAGS.seed, "min_area": FLAGS.min_area,
              "max_area": FLAGS.max_area, "mask_kind": FLAGS.mask_kind,
              "resample": FLAGS.resample, "holes": FLAGS.holes,
              "max_pixels": _network_pixels(generator, FLAGS.max_pixels)}
    per_photo = f"{FLAGS.holes} " if FLAGS.holes > 1 else ""
    budget = config["max_pixels"]
    network = f" (network input <= {budget} px)" if budget else ""
    title = (f"{len(paths)} photos, model {model or 'none'}{network}, {per_photo}{FLAGS.mask_kind} holes "
             f"of {100 * FLAGS.min_area:.0f}-{100 * FLAGS.max_area:.0f}%"
             f"{' per photo' if per_photo else ''}, seed {FLAGS.seed}")
    table = markdown_table(results, title=title)
    print(table)
    if FLAGS.output:
        write_atomic(FLAGS.output, table)
    if FLAGS.json:
        write_atomic(FLAGS.json, to_json(results, config))


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
