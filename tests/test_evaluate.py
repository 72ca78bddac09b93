import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageFilter

from hifill_tf import evaluate as ev
from hifill_tf.weights import save_generator_weights

# A small CRA budget: 256x256 runs the network at f = 2 and 200x300 at f = 3 (with mirror
# padding), so the bicubic baseline really up-samples; photos up to 128x128 run at f = 1.
MAX_PIXELS = 128 * 128
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def textured(height, width, seed=0):
    """A photo-like image: smooth shading plus fine texture plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(x / 37.0)[..., None] * np.cos(y / 23.0)[..., None] * np.array([1, 0.7, 0.4])
    texture = 25 * np.sign(np.sin(x / 2.3) * np.sin(y / 3.1))[..., None]
    return np.clip(base + texture + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)


def box_mask(height, width, top, left, bottom, right):
    mask = np.zeros((height, width), np.uint8)
    mask[top:bottom, left:right] = 255
    return mask


@pytest.fixture(scope="module")
def generator():
    """A random-weight generator whose API graph is traced once for the tests of its unit
    (shared.random_generator; conftest.py runs this file in that unit)."""
    from shared import random_generator

    return random_generator()


# --- metrics against hand-computed values --------------------------------------------------


def test_l1_and_psnr_hand_computed():
    truth = np.zeros((2, 2, 3), np.uint8)
    output = truth.copy()
    output[0, 0] = [3, 0, 0]   # |d| sum 3, d^2 sum 9
    output[1, 1] = [0, 6, 0]   # |d| sum 6, d^2 sum 36
    assert ev.error_sums(output, truth) == (9, 45, 12)
    assert ev.l1_error(output, truth) == pytest.approx(9 / 12)
    assert ev.psnr(output, truth) == pytest.approx(10 * math.log10(255 ** 2 / (45 / 12)))
    # uint8 wrap-around must not happen: 0 - 255 is -255, not 1.
    assert ev.l1_error(np.full((1, 1, 3), 255, np.uint8), np.zeros((1, 1, 3), np.uint8)) == 255


def test_in_hole_metrics_count_hole_pixels_only():
    truth = np.zeros((2, 2, 3), np.uint8)
    output = truth.copy()
    output[0, 0] = [3, 0, 0]
    output[1, 1] = [0, 6, 0]
    mask = np.array([[255, 0], [0, 0]], np.uint8)  # only the first error is in the hole
    assert ev.error_sums(output, truth, mask) == (3, 9, 3)
    assert ev.l1_error(output, truth, mask) == pytest.approx(1.0)
    assert ev.psnr(output, truth, mask) == pytest.approx(10 * math.log10(255 ** 2 / 3))
    # An error outside the hole, however large, does not count.
    output[0, 1] = 255
    assert ev.l1_error(output, truth, mask) == pytest.approx(1.0)


def test_psnr_of_identical_images_is_inf():
    image = textured(8, 8)
    assert ev.psnr(image, image) == math.inf
    assert ev.psnr(image, image, box_mask(8, 8, 2, 2, 5, 5)) == math.inf
    metrics = ev.image_metrics(image, image, box_mask(8, 8, 2, 2, 5, 5), with_ms_ssim=False)
    assert metrics["psnr"] == math.inf and metrics["hole_psnr"] == math.inf
    assert metrics["l1"] == 0 and metrics["hole_l1"] == 0
    row = ev._summary("8x8", "x", [dict(metrics, seconds=0.0, hole_fraction=0.1)])
    table = ev.markdown_table([row])
    assert "| inf |" in table
    assert json.loads(ev.to_json([row]))["results"][0]["psnr"] is None  # strict JSON


def test_ms_ssim_scales():
    # Side needed for s scales: ceil(side / 2^(s-1)) >= 11.
    assert ev.ms_ssim_scales(161, 2000) == 5
    assert ev.ms_ssim_scales(160, 160) == 4
    assert ev.ms_ssim_scales(81, 81) == 4
    assert ev.ms_ssim_scales(80, 300) == 3
    assert ev.ms_ssim_scales(11, 11) == 1
    assert ev.ms_ssim_scales(10, 500) == 0


def test_ms_ssim_matches_tensorflow_and_handles_small_images():
    truth = textured(176, 180)
    output = np.clip(truth.astype(int) + np.random.default_rng(1).integers(-20, 21, truth.shape), 0, 255).astype(np.uint8)
    value, scales = ev.ms_ssim(output, truth)
    expected = tf.image.ssim_multiscale(tf.constant(output[None], tf.float32),
                                        tf.constant(truth[None], tf.float32), max_val=255.0)[0]
    assert scales == 5
    assert value == pytest.approx(float(expected), abs=1e-5)
    assert 0.3 < value < 1.0
    small_value, small_scales = ev.ms_ssim(output[:64, :64], truth[:64, :64])
    assert small_scales == 3 and 0 < small_value < 1
    assert ev.ms_ssim(truth[:64, :64], truth[:64, :64])[0] == pytest.approx(1.0, abs=1e-5)
    assert math.isnan(ev.ms_ssim(truth[:8, :8], truth[:8, :8])[0])


def test_sharpness_is_one_for_truth_and_low_for_blur():
    truth = textured(96, 128)
    mask = box_mask(96, 128, 20, 30, 70, 100)
    assert ev.sharpness(truth, truth, mask) == pytest.approx(1.0)
    blurred = np.asarray(Image.fromarray(truth).filter(ImageFilter.GaussianBlur(2)))
    assert ev.sharpness(blurred, truth, mask) < 0.5
    # A flat fill has no fine detail at all.
    flat = np.where(mask[..., None] > 0, np.uint8(128), truth)
    assert ev.sharpness(flat, truth, mask) == pytest.approx(0.0)


def test_sharpness_region_excludes_the_seam():
    mask = box_mask(20, 20, 5, 5, 15, 15)
    region = ev.sharpness_region(mask)
    assert region.sum() == 6 * 6 and region[7:13, 7:13].all()
    # A stroke too thin to survive erosion falls back to the hole itself.
    thin = box_mask(20, 20, 5, 5, 8, 15)
    assert (ev.sharpness_region(thin) == (thin > 0)).all()
    # The seam (the hole's outer ring) and the outside do not count: no stencil reaches them.
    truth = textured(20, 20)
    output = truth.copy()
    output[~ev.erode(mask, 1)] = 0
    assert ev.sharpness(output, truth, mask) == pytest.approx(1.0)


# --- methods ---------------------------------------------------------------------------------


def test_telea_keeps_the_outside_bit_identical():
    pytest.importorskip("cv2")
    image = textured(64, 96)
    mask = box_mask(64, 96, 10, 20, 40, 60)
    out = ev.run_method("telea", image, mask)
    hole = mask > 0
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~hole], image[~hole])
    assert not np.array_equal(out[hole], image[hole])


def test_telea_without_opencv_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(ImportError, match="opencv-python-headless"):
        ev.telea(textured(16, 16), box_mask(16, 16, 4, 4, 8, 8))
    with pytest.raises(ImportError, match="opencv-python-headless"):
        ev.evaluate([textured(32, 32)], sizes="native", methods="telea", warm_up=False)


def test_bicubic_and_hifill_keep_the_outside_and_agree_at_factor_one(generator):
    # 256x200 runs at f = 2 under MAX_PIXELS, with 24 rows of padding; 112x96 at f = 1.
    image = textured(200, 256)
    mask = box_mask(200, 256, 60, 70, 150, 190)
    hole = mask > 0
    blanked = np.where(hole[..., None], np.uint8(0), image)
    results = {m: ev.run_method(m, blanked, mask, generator, MAX_PIXELS) for m in ("bicubic", "hifill")}
    for out in results.values():
        assert out.dtype == np.uint8 and out.shape == image.shape
        assert np.array_equal(out[~hole], image[~hole])
    assert not np.array_equal(results["bicubic"], results["hifill"])  # CRA adds residuals

    small = textured(96, 112)
    mask = box_mask(96, 112, 30, 30, 70, 80)
    bicubic = ev.run_method("bicubic", small, mask, generator, MAX_PIXELS).astype(int)
    hifill = ev.run_method("hifill", small, mask, generator, MAX_PIXELS).astype(int)
    assert np.abs(bicubic - hifill).max() <= 1  # f = 1: same network output, no residuals


def test_photo_paths(tmp_path):
    with pytest.raises(ev.InputError, match="exactly one"):
        ev._photo_paths(None, None, 0)
    with pytest.raises(ev.InputError, match="no image files"):
        ev._photo_paths(str(tmp_path), None, 0)
    with pytest.raises(ev.InputError, match="missing.jpg: no such file"):
        ev._photo_paths(None, [str(tmp_path / "missing.jpg")], 0)
    for name in ("b.png", "a.jpg", "c.png"):
        Image.fromarray(textured(16, 16)).save(tmp_path / name)
    assert [os.path.basename(p) for p in ev._photo_paths(str(tmp_path), None, 2)] == ["a.jpg", "b.png"]


def test_parse_sizes_and_methods():
    assert ev.parse_sizes("512x512, 2048x1280,native") == [(512, 512), (2048, 1280), "native"]
    for bad in ("512", "axb", "8x512", ""):
        with pytest.raises(ValueError):
            ev.parse_sizes(bad)
    assert ev.parse_methods("telea,hifill,telea") == ["telea", "hifill"]
    with pytest.raises(ValueError, match="srgan"):
        ev.parse_methods("hifill,srgan")


# --- end to end ------------------------------------------------------------------------------


def test_evaluate_end_to_end(generator):
    pytest.importorskip("cv2")
    photos = [("a", textured(176, 240, seed=1)), ("b", textured(200, 300, seed=2))]
    lines = []
    results = ev.evaluate(photos, sizes="256x256,native", generator=generator, seed=5,
                          max_pixels=MAX_PIXELS, progress=lines.append)
    assert [(r["size"], r["method"]) for r in results] == [
        (s, m) for s in ("256x256", "native") for m in ("hifill", "bicubic", "telea")]
    for r in results:
        assert r["images"] == 2 and len(r["per_image"]) == 2
        for key in ("l1", "psnr", "ms_ssim", "hole_l1", "hole_psnr", "sharpness", "seconds"):
            assert math.isfinite(r[key]), (r["size"], r["method"], key)
        assert 0.10 <= r["hole_fraction"] <= 0.25
        # Outside pixels are exact, so the whole-image L1 is the in-hole L1 diluted.
        for p in r["per_image"]:
            assert p["l1"] == pytest.approx(p["hole_l1"] * p["hole_fraction"], rel=1e-9)
        assert r["ms_ssim_scales"] == 5
    native = [p for p in results[3]["per_image"]]
    assert [(p["width"], p["height"]) for p in native] == [(240, 176), (300, 200)]
    # Same seed, same masks: the methods share holes, so their hole fractions agree.
    assert len({r["hole_fraction"] for r in results[:3]}) == 1
    assert len(lines) == 5 and "ETA" in lines[0] and lines[-1].startswith("evaluated 2 photos")

    table = ev.markdown_table(results, title="random weights")
    rows = [line for line in table.splitlines() if line.startswith("| 256x256") or line.startswith("| native")]
    assert len(rows) == 6 and "n/a" not in table
    assert "Sharpness" in table and "0-255 scale" in table
    data = json.loads(ev.to_json(results, {"seed": 5}))
    assert data["config"]["seed"] == 5 and len(data["results"]) == 6


@pytest.mark.slow
def test_cli_writes_markdown_and_json(tmp_path, generator):
    pytest.importorskip("cv2")
    weights = save_generator_weights(generator, str(tmp_path / "random.npz"))
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(textured(48, 64, seed=3)).save(photos / "one.png")
    Image.fromarray(textured(48, 64, seed=4)).save(photos / "two.png")
    (photos / "notes.txt").write_text("not an image")
    output, results_json = tmp_path / "table.md", tmp_path / "results.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="1")  # inference only
    proc = subprocess.run(
        [sys.executable, "-m", "hifill_tf.evaluate", f"--data_dir={photos}", "--sizes=64x48,native",
         "--methods=bicubic,telea", f"--weights={weights}", "--seed=2",
         f"--output={output}", f"--json={results_json}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = output.read_text()
    assert table in proc.stdout
    for row in ("| 64x48 | bicubic | 2 |", "| 64x48 | telea | 2 |", "| native | bicubic | 2 |",
                "| native | telea | 2 |"):
        assert row in table
    assert "random.npz" in table and "*" in table  # small images: fewer MS-SSIM scales, marked
    assert "[4/4]" in proc.stderr and "ETA" in proc.stderr
    data = json.loads(results_json.read_text())
    assert data["config"]["model"] == weights and len(data["results"]) == 4
    assert all(math.isfinite(r["l1"]) for r in data["results"])



def test_holes_per_photo_use_distinct_seeds_and_pictures_show_each_method(tmp_path, generator):
    pytest.importorskip("cv2")
    photos = [("a.png", textured(96, 128, seed=1)), ("b.png", textured(96, 128, seed=2))]
    lines = []
    results = ev.evaluate(photos, sizes="native", methods="hifill,telea", generator=generator,
                          seed=3, max_pixels=MAX_PIXELS, progress=lines.append, holes=3,
                          pictures=str(tmp_path))
    for r in results:
        assert r["images"] == 6
        assert [(p["name"], p["hole_index"]) for p in r["per_image"]] == [
            (n, j) for n in ("a.png", "b.png") for j in range(3)]
    # Hole j of photo k is sample_mask(seed + k * holes + j): six different holes.
    from hifill_tf.data.masks import sample_mask

    fractions = [p["hole_fraction"] for p in results[1]["per_image"]]
    expected = [float((sample_mask(96, 128, 3 + k * 3 + j, kind="mixed", min_area=0.1,
                                   max_area=0.25) != 0).mean()) for k in range(2) for j in range(3)]
    assert fractions == expected and len(set(fractions)) > 1
    assert "hole 3/3" in lines[5] and lines[-1].startswith("evaluated 2 photos x 3 holes")
    # One picture per photo and size, with the telea result visible at 1:1.
    assert sorted(os.listdir(tmp_path)) == ["a-native.jpg", "b-native.jpg"]
    picture = np.asarray(Image.open(tmp_path / "a-native.jpg"))
    assert picture.shape[1] <= 2048 and picture.shape[0] > 2 * 96
    with pytest.raises(ev.InputError, match="pictures folder"):
        ev.evaluate(photos, sizes="native", methods="telea", pictures=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="holes"):
        ev.evaluate(photos, sizes="native", methods="telea", holes=0)
