"""bench/cra_bench.py --mode=users: its holes (bench/holes.py)."""

import os
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)

import holes  # noqa: E402

FRACTIONS = (0.05, 0.15, 0.25, 0.40)


# ---------------------------------------------------------------- holes

@pytest.mark.parametrize("kind", holes.KINDS)
@pytest.mark.parametrize("size", [(512, 288), (3840, 2160)])  # drawn at full size; upscaled x1.875
def test_hole_fraction(kind, size):
    width, height = size
    for target in FRACTIONS:
        mask, fraction, params = holes.make_hole(width, height, kind, target, seed=3)
        assert mask.shape == (height, width) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 255}
        assert fraction == np.count_nonzero(mask) / mask.size
        assert abs(fraction - target) <= 0.01, (kind, size, target, fraction, params)


def test_holes_are_seeded():
    a, _, _ = holes.make_hole(640, 360, "strokes", 0.15, seed=1)
    b, _, _ = holes.make_hole(640, 360, "strokes", 0.15, seed=1)
    c, _, _ = holes.make_hole(640, 360, "strokes", 0.15, seed=2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.05


def test_hole_shapes():
    """blob: one solid piece; strokes: several pieces over the whole image; scratch: one thin line."""
    cv2 = pytest.importorskip("cv2")
    width, height = 1024, 576

    def pieces(mask):
        return cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)[0] - 1

    def eroded_share(mask, radius):  # share of the hole left after eroding it by `radius` px
        kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        return np.count_nonzero(cv2.erode(mask, kernel)) / np.count_nonzero(mask)

    def quadrants(mask):
        h, w = mask.shape[0] // 2, mask.shape[1] // 2
        return [mask[:h, :w].any(), mask[:h, w:].any(), mask[h:, :w].any(), mask[h:, w:].any()]

    line_width = max(2, round(height / 256))
    for target in (0.05, 0.25):
        blob = holes.make_hole(width, height, "blob", target)[0]
        strokes = holes.make_hole(width, height, "strokes", target)[0]
        scratch = holes.make_hole(width, height, "scratch", target)[0]
        assert pieces(blob) == 1 and eroded_share(blob, 3) > 0.9
        assert pieces(scratch) == 1 and eroded_share(scratch, line_width) < 0.05
        assert all(quadrants(strokes)) and all(quadrants(scratch))
        assert eroded_share(strokes, line_width) > 0.5  # brush strokes, not lines
    assert pieces(holes.make_hole(width, height, "strokes", 0.05)[0]) >= 3


def test_hole_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        holes.make_hole(64, 64, "circle", 0.1)
    with pytest.raises(ValueError, match="fraction"):
        holes.make_hole(64, 64, "blob", 40)
