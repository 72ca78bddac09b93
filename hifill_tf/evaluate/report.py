"""The report of an evaluation: Markdown table (`markdown_table`), JSON (`to_json`), and
`write_atomic` for both."""

import json
import math

import numpy as np

from hifill_tf.evaluate.metrics import MS_SSIM_WEIGHTS
from hifill_tf.io import atomic_file


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
