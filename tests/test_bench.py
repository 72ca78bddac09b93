"""bench/cra_bench.py --mode=users: its holes (bench/holes.py), its release_numpy reference
(bench/release.py) and a --quick run end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
sys.path.insert(0, BENCH)

import holes  # noqa: E402
import release  # noqa: E402

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


# ---------------------------------------------------------------- release_numpy

def test_release_aggregate_is_eq4_by_hand():
    """Eq. (4): a hole pixel is up(output) + sum_i s_ij R_i at the same place in source cell i.

    A 64x64 photo and the release's 512x512 network (32x32 cells of 2x2 px); the network
    images are constant, so their up-sampling is exact and R = photo - constant.
    """
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    hole = np.zeros((64, 64), bool)
    hole[20:31, 33:50] = True
    level_in, level_out = 110.0, 140.0
    small_in = np.full((512, 512, 3), level_in, np.float32)
    small_out = np.full((512, 512, 3), level_out, np.float32)
    cells = 32 * 32
    scores = np.zeros((cells, cells), np.float32)  # [source, target]
    for target in range(cells):
        scores[rng.choice(cells, 3, replace=False), target] = (0.5, 0.3, 0.2)

    out = release.aggregate(photo, hole, small_in, small_out, scores)

    residual = photo.astype(np.float64) - level_in
    expected = photo.copy()
    for y, x in zip(*np.nonzero(hole)):
        target = (y // 2) * 32 + x // 2
        value = level_out + sum(scores[i, target] * residual[(i // 32) * 2 + y % 2, (i % 32) * 2 + x % 2]
                                for i in np.nonzero(scores[:, target])[0])
        expected[y, x] = np.clip(np.round(value), 0, 255)
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    assert np.abs(out.astype(int) - expected).max() <= 1  # rounding of exact .5 only
    assert (out == expected).mean() > 0.99
    assert np.abs(out[hole].astype(int) - level_out).mean() > 10  # the residuals did arrive


def test_release_aggregate_matches_cra():
    """The dense NumPy product over all cells equals cra.aggregate's sparse one (TF)."""
    tf = pytest.importorskip("tensorflow")
    from hifill_tf import cra

    rng = np.random.default_rng(1)
    gh, gw, factor = 6, 8, 2
    height, width = gh * 16 * factor, gw * 16 * factor
    photo = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    hole = np.zeros((height, width), bool)
    hole[70:110, 100:170] = True
    hole[150:152, 10:200] = True
    low = rng.uniform(0, 255, (gh * 16, gw * 16, 3)).astype(np.float32)
    filled = rng.uniform(0, 255, (gh * 16, gw * 16, 3)).astype(np.float32)
    hole_cells = hole.reshape(gh, 16 * factor, gw, 16 * factor).any(axis=(1, 3))
    sources = cra.source_cells(tf.constant(hole_cells[..., None])).numpy()
    assert 0 < sources.sum() < gh * gw
    scores = rng.uniform(0, 1, (gh * gw, gh * gw)).astype(np.float32)
    scores[~sources] = 0.0  # as the generator's: only cells untouched by the hole are sources
    scores /= scores.sum(axis=0, keepdims=True)

    ours = release.aggregate(photo, hole, low, filled, scores)
    theirs = cra.aggregate(tf.constant(photo), tf.constant(hole[..., None]), tf.constant(low),
                           tf.constant(filled), tf.constant(scores), factor).numpy()
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
    np.testing.assert_array_equal(ours[~hole], photo[~hole])


@pytest.mark.parametrize("size", [(48, 80), (37, 101), (6, 9)])
def test_bilinear_matches_tf_image_resize(size):
    tf = pytest.importorskip("tensorflow")
    small = np.random.default_rng(2).uniform(0, 255, (12, 20, 3)).astype(np.float32)
    expected = tf.image.resize(small, size, "bilinear").numpy()
    np.testing.assert_allclose(release.resize_bilinear(small, *size), expected, atol=1e-3)


def test_release_inpaint_pads_and_keeps_thin_holes():
    """A photo that is no multiple of the grid is padded and cropped back; a 1-pixel
    scratch reaches the network's hole; pixels outside the hole are the input's."""
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (1030, 1100, 3), dtype=np.uint8)
    mask = np.zeros((1030, 1100), np.uint8)
    mask[501, 10:1090] = 255
    seen = {}

    def network(small, hole):
        seen.update(small=small, hole=hole)
        return np.full_like(small, 7.0), np.eye(32 * 32, dtype=np.float32)

    out = release.release_inpaint(photo, mask, network)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert seen["small"].shape == (512, 512, 3) and seen["hole"].shape == (512, 512, 1)
    assert seen["hole"][..., 0].any(axis=1).sum() >= 1  # the 1-px line survives the down-sizing
    assert seen["hole"][..., 0].any(axis=0).mean() > 0.95  # along its whole length
    hole = mask > 0
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    assert (out[hole] != photo[hole]).mean() > 0.5


# ---------------------------------------------------------------- the quick run

@pytest.mark.slow
def test_quick_users_run(tmp_path):
    md, js = tmp_path / "out" / "users.md", tmp_path / "users.json"
    command = [sys.executable, os.path.join(BENCH, "cra_bench.py"), "--mode=users", "--quick",
               "--sizes=512x288", f"--output={md}", f"--json={js}"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(js.read_text())
    assert data["config"]["mode"] == "users" and data["config"]["repeats"] == 1
    (record,) = data["records"]
    assert (record["width"], record["height"], record["photo"]) == (512, 288, "bridge-4352x2448.jpg")
    (case,) = record["cases"]
    assert case["kind"] == "strokes" and abs(case["fraction"] - 0.15) <= 0.01
    results = case["results"]
    assert sorted(results) == sorted(["hifill", "hifill_512", "release_numpy", "opencv"])
    for method, result in results.items():
        assert result["status"] == "ok", (method, result)
        assert result["runs"] == 1 and result["median"] > 0 and result["peak_rss"] > 0
    assert results["hifill"]["plan"]["budget"] == 256 * 256  # the bundled model's own
    assert results["hifill_512"]["plan"]["budget"] == 512 * 512
    assert results["hifill_512"]["plan"]["net"] == [512, 288]
    text = md.read_text()
    assert text.strip() in proc.stdout
    assert "| 512x288 | strokes | 15% (" in text
    assert "release_numpy ÷ hifill 256x256" in text and "Telea ÷ hifill 512x512" in text
    assert "[4/4] 512x288 strokes" in proc.stderr and "ETA" in proc.stderr
