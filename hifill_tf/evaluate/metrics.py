"""The metrics of the quality report, per image: L1, PSNR, MS-SSIM, sharpness (E_hf).

NumPy, except MS-SSIM (``tf.image.ssim_multiscale``, TensorFlow imported on first use). The
definitions, and why they are these, are in the ``hifill_tf.evaluate`` docstring.
"""

import math

import numpy as np

# Standard MS-SSIM weights (Wang et al. 2003), as tf.image.ssim_multiscale's default.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_FILTER = 11
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)



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

    Below 161 px per side fewer scales are used (see the ``hifill_tf.evaluate`` docstring); (nan, 0) below 11.
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
