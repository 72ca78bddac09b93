"""The table of masks that every entry point is tested with (README, "Masks"): one rule.

bool as given; integers > 127 are hole, except a mask of only 0 and 1 (1 = hole); floats > 0.5.
"""

import io

import numpy as np
from PIL import Image


def expected_hole(height, width):
    """A block and a thin stroke, bool [H, W]."""
    hole = np.zeros((height, width), bool)
    hole[height // 4:height // 2, width // 3:2 * width // 3] = True
    hole[3 * height // 4:3 * height // 4 + 3, 4:width - 4] = True
    return hole


def _jpeg(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def array_cases(height, width):
    """name -> mask array; each must select exactly ``expected_hole(height, width)``."""
    hole = expected_hole(height, width)
    noisy = np.asarray(Image.open(io.BytesIO(_jpeg(hole.astype(np.uint8) * 255))).convert("L"))
    assert len(np.unique(noisy)) > 10  # really noisy: JPEG ringing around the edges
    rng = np.random.default_rng(0)
    return {
        "0/1": hole.astype(np.uint8),
        "0/255": hole.astype(np.uint8) * 255,
        "noisy JPEG": noisy,
        "bool": hole,
        "float": (hole * 0.8 + 0.1 + rng.uniform(-0.05, 0.05, hole.shape)).astype(np.float32),
    }


def file_cases(height, width):
    """name -> encoded mask file bytes (the cases a file can hold)."""
    hole = expected_hole(height, width).astype(np.uint8)
    files = {}
    for name, values in (("0/1 PNG", hole), ("0/255 PNG", hole * 255)):
        buffer = io.BytesIO()
        Image.fromarray(values).save(buffer, "PNG")
        files[name] = buffer.getvalue()
    files["noisy JPEG"] = _jpeg(hole * 255)
    return files
