"""Tests for hifill_tf.data.numpy_feed: the TF-free crop-mode views against the TF pipeline."""

import functools
import glob
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from hifill_tf import cra
from hifill_tf.data import numpy_feed as nf
from hifill_tf.data import pipeline
from hifill_tf.data.masks import MaskGenerator

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTO = os.path.join(HERE, "data", "volna-640x360.jpg")  # real, in the repository
SHARED_PHOTOS = sorted(glob.glob(os.path.join(HERE, "..", "..", "shared", "data", "photos", "*.jpg")))
SIZE = 64  # network side of the feed tests; canvases are 2 S = 128
AREAS = (0.02, 0.25)


def _photo():
    with Image.open(PHOTO) as image:
        return np.asarray(image.convert("RGB"))


@functools.lru_cache(maxsize=None)
def _generator(side, min_area=0.02, max_area=0.25):
    return MaskGenerator(side, side, max_render_side=side // 2, min_area=min_area, max_area=max_area)


def _canvas(side, seed, **kwargs):
    """A MaskGenerator hole canvas, uint8 [side, side] (1 = hole), as make_dataset draws it."""
    return _generator(side, **kwargs)(tf.constant(seed, tf.int64)).numpy()[..., 0].astype(np.uint8)


def _tf_view(window, canvas, factor, size):
    """make_dataset's augment for a given window, canvas and factor: the TF reference."""
    hole = tf.image.resize(tf.constant(canvas[..., None], tf.float32), window.shape[:2],
                           method="nearest") > 0.5
    low, low_hole = pipeline.training_view(tf.constant(window), hole, tf.constant(factor), size)
    image = tf.clip_by_value(cra.to_network(low), -1.0, 1.0)
    return low.numpy(), image.numpy(), low_hole.numpy(), hole.numpy()


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory):
    """A pool for S = 64 drawn by render_holes itself (TF MaskGenerator, 128 x 128 canvases)."""
    path = str(tmp_path_factory.mktemp("pool") / "holes.npz")
    nf.render_holes(SIZE, 48, path, min_area=AREAS[0], max_area=AREAS[1], seed=5)
    return path


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Two real photos, a coded PNG smaller than S (scaled up), a corrupt and a truncated JPEG."""
    root = tmp_path_factory.mktemp("photos")
    photo = Image.open(PHOTO).convert("RGB")
    photo.save(root / "a_volna.jpg", quality=95)
    photo.crop((100, 40, 500, 340)).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "b_crop.png")
    yy, xx = np.mgrid[:40, :50]
    coded = np.stack([(5 * xx) % 256, (6 * yy) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
    Image.fromarray(coded).save(root / "c_small.png")
    (root / "d_corrupt.jpg").write_bytes(b"not a jpeg at all " * 10)
    data = (root / "a_volna.jpg").read_bytes()
    (root / "e_truncated.jpg").write_bytes(data[: len(data) // 3])
    return root


# ----- one view against the TF path ---------------------------------------------------------


@pytest.mark.parametrize("factor", [1, 2, 3, 5])
@pytest.mark.parametrize("padded", ["both", "none", "rows"])
def test_reduce_view_is_training_view(factor, padded):
    # Sums of integer pixels are exact in float32 in any order and both divide once by f^2,
    # so the inputs are equal bit for bit (the brief allows 1e-3; none is needed).
    photo = _photo()
    low_side, full = (SIZE - 16) * factor + 1, SIZE * factor
    h, w = {"both": (low_side, full - 5), "none": (full, full), "rows": (low_side + 7, full)}[padded]
    top, left = 13 * factor % (photo.shape[0] - h + 1), 29 * factor % (photo.shape[1] - w + 1)
    window = photo[top:top + h, left:left + w]
    canvas = _canvas(2 * SIZE, [factor, 11], min_area=0.1, max_area=0.2)
    low_tf, image_tf, hole_tf, hole_full = _tf_view(window, canvas, factor, SIZE)
    low, low_hole = nf.reduce_view(window, hole_full, factor, SIZE)
    assert low.dtype == np.float32 and low.shape == (SIZE, SIZE, 3) and low_hole.shape == (SIZE, SIZE, 1)
    assert np.abs(low - low_tf).max() < 1e-3
    np.testing.assert_array_equal(low, low_tf)
    np.testing.assert_array_equal(np.clip(low / np.float32(127.5) - np.float32(1), -1, 1), image_tf)
    np.testing.assert_array_equal(low_hole, hole_tf)
    assert 0.02 < low_hole.mean() < 0.6  # a real hole went through the any-pixel rule
    # The feed's path: the canvas straight to the low-resolution hole, and the flip taken on
    # the row sums, give the same as the window-sized hole and a flipped copy of the window.
    np.testing.assert_array_equal(nf.low_hole_from_canvas(canvas, h, w, factor, SIZE), hole_tf)
    np.testing.assert_array_equal(nf.reduce_image(window, factor, SIZE, flip=True),
                                  _tf_view(window[:, ::-1].copy(), canvas, factor, SIZE)[0])


def test_reduce_view_is_training_view_above_uint16_sums():
    # f = 17: a block's sum (255 f^2) no longer fits 16 bits.
    photo, size, factor = _photo(), 32, 17
    window = photo[20:20 + 16 * factor + 3, 50:50 + 32 * factor - 40]
    canvas = _canvas(2 * size, [1, 17])
    low_tf, _, hole_tf, hole_full = _tf_view(window, canvas, factor, size)
    low, low_hole = nf.reduce_view(window, hole_full, factor, size)
    assert (low * factor**2).max() >= 2**16  # some block sums do not fit 16 bits
    np.testing.assert_array_equal(low, low_tf)
    np.testing.assert_array_equal(low_hole, hole_tf)


@pytest.mark.skipif(not SHARED_PHOTOS, reason="../shared/data/photos not present")
def test_reduce_view_is_training_view_on_a_full_size_photo():
    with Image.open(SHARED_PHOTOS[0]) as image:
        photo = np.asarray(image.convert("RGB"))
    size, factor = 256, 5
    h, w = 240 * factor + 1, 256 * factor - 9  # mirror padding on both axes
    window = photo[200:200 + h, 700:700 + w]
    canvas = _canvas(2 * size, [3, 3])
    low_tf, _, hole_tf, hole_full = _tf_view(window, canvas, factor, size)
    low, low_hole = nf.reduce_view(window, hole_full[..., 0], factor, size)
    np.testing.assert_array_equal(low, low_tf)
    np.testing.assert_array_equal(low_hole, hole_tf)


def test_low_hole_from_canvas_in_every_orientation():
    # Scaling the canvas down (f = 1, 2) and up (f >= 3: the run shortcut) on windows with
    # and without padding, for each of the 8 orientations the pool uses.
    canvas = _canvas(2 * SIZE, [8, 1], min_area=0.05, max_area=0.1)
    window = np.zeros((SIZE * 7, SIZE * 7, 3), np.uint8)
    for orientation in range(8):
        turned = np.ascontiguousarray(nf.orient(canvas, orientation))
        for factor, h, w in [(1, 49, 64), (2, 128, 97), (3, 145, 190), (7, 7 * 48 + 1, 7 * 64)]:
            expected = _tf_view(window[:h, :w], turned, factor, SIZE)[2]
            got = nf.low_hole_from_canvas(canvas, h, w, factor, SIZE, orientation)
            np.testing.assert_array_equal(got, expected, err_msg=f"{orientation} {factor}")
    # The orientations are the 8 distinct symmetries of the square: quarter turns among them.
    turns = {nf.orient(canvas, o).tobytes() for o in range(8)}
    assert len(turns) == 8 and {np.rot90(canvas, k).tobytes() for k in range(4)} <= turns


def test_reduce_view_checks_its_window():
    with pytest.raises(ValueError, match=r"\(96, 128\]; got 96x100"):
        nf.reduce_view(np.zeros((96, 100, 3), np.uint8), np.zeros((96, 100), bool), 2, SIZE)
    with pytest.raises(ValueError, match="uint8"):
        nf.reduce_view(np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), bool), 1, SIZE)


def test_scale_up_is_decode_views_resize():
    yy, xx = np.mgrid[:37, :53]
    image = np.stack([(7 * xx) % 256, (5 * yy) % 256, (xx * yy) % 256], -1).astype(np.uint8)
    for size in (64, 80):
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        target = tf.cast(tf.math.ceil(shape * size / tf.reduce_min(shape)), tf.int32)
        expected = tf.image.resize(image, target, method="bilinear")
        expected = tf.cast(tf.clip_by_value(tf.round(expected), 0, 255), tf.uint8).numpy()
        got = nf.scale_up(image, size)
        assert got.shape == expected.shape and min(got.shape[:2]) == size
        np.testing.assert_array_equal(got, expected)
    assert nf.scale_up(image, 32) is image


def test_view_window_draws_as_the_pipeline():
    rng = np.random.default_rng(0)
    draws = np.array([nf.view_window(1600, 2560, 256, (1, None), rng) for _ in range(600)])
    top, left, h, w, f = draws.T
    reference = np.array([[int(v) for v in pipeline._view_window(1600, 2560, 256, (1, None),
                                                                 tf.constant([i, 5], tf.int64))]
                          for i in range(600)])
    assert set(f) == set(reference[:, 4]) == {1, 2, 3, 4, 5, 6}
    counts = np.bincount(f, minlength=7)[1:]
    assert counts.min() > 600 / 6 * 0.7  # uniform over the factors
    assert np.all(h > 240 * f) and np.all(h <= 256 * f) and np.all(w > 240 * f) and np.all(w <= 256 * f)
    assert np.all(top + h <= 1600) and np.all(left + w <= 2560) and top.min() >= 0 and left.min() >= 0
    # Sides uniform over the 16 f values: their mean offset into the range is about 8 f.
    np.testing.assert_allclose(np.mean((h - 240 * f) / f), np.mean((reference[:, 2] - 240 * reference[:, 4])
                                                                  / reference[:, 4]), atol=1.0)
    assert set(nf.view_window(300, 500, 256, (3, 5), rng)[4] for _ in range(20)) == {1}
    assert {nf.view_window(1600, 2560, 256, (2, 4), rng)[4] for _ in range(100)} == {2, 3, 4}


def test_recolour_is_one_of_the_pipelines_colourings():
    image = np.random.default_rng(1).uniform(0, 255, (5, 6, 3)).astype(np.float32)
    candidates = [nf.recolour(image, which, False) for which in range(6)]
    candidates.append(nf.recolour(image, 0, True))
    seen = set()
    for s in range(60):
        out = pipeline.recolour(tf.constant(image), tf.constant([s, 2], tf.int64)).numpy()
        matches = [i for i, c in enumerate(candidates) if np.allclose(out, c, atol=1e-4, rtol=0)]
        assert matches, f"TF recolour with seed {s} is none of the NumPy colourings"
        seen.add(matches[0])
    assert seen == set(range(7))


# ----- the hole pool --------------------------------------------------------------------------


def test_pool_masks_are_the_generators(pool_file):
    pool = nf.HolePool.load(pool_file)
    assert len(pool) == 48 and pool.side == 2 * SIZE
    assert pool.config["max_render_side"] == SIZE and pool.config["kind"] == "mixed"
    np.testing.assert_array_equal(pool.seeds[:3], [[5, 0], [5, 1], [5, 2]])
    generator = MaskGenerator.from_config({k: v for k, v in pool.config.items()
                                           if k not in ("format", "size", "seed")})
    for index in (0, 1, 17, 47):
        fresh = generator(tf.constant(pool.seeds[index], tf.int64)).numpy()[..., 0]
        np.testing.assert_array_equal(pool.mask(index), fresh.astype(np.uint8))


def test_pool_areas_match_fresh_draws(pool_file):
    pool = nf.HolePool.load(pool_file)
    areas = pool.areas()
    # MaskGenerator's bound is exact on the 2S canvas.
    assert areas.min() >= AREAS[0] and areas.max() <= AREAS[1]
    fresh = np.array([_canvas(2 * SIZE, [99, i], min_area=AREAS[0], max_area=AREAS[1]).mean()
                      for i in range(48)])
    # Targets are uniform on [0.02, 0.25]: sd 0.066, so 3 standard errors of the difference of
    # two means of 48 are 0.04.
    assert abs(areas.mean() - fresh.mean()) < 0.04
    assert abs(areas.mean() - np.mean(AREAS)) < 0.03
    for orientation in (1, 2, 7):  # a symmetry of the square keeps every area
        assert pool.mask(5, orientation).mean() == pytest.approx(areas[5])


def test_generator_has_no_preferred_orientation():
    # Why the pool may use the 8 orientations of a canvas: MaskGenerator draws centres, angles
    # and headings uniformly. Orientation-sensitive statistics of fresh masks average to zero:
    # top minus bottom and left minus right hole share, and the spread along y minus along x
    # (strokes all horizontal would make that last one clearly negative).
    side = 96
    generator = MaskGenerator(side, side, max_render_side=side // 2, min_area=0.05, max_area=0.25)
    stats = []
    for i in range(60):
        mask = generator(tf.constant([i, 77], tf.int64)).numpy()[..., 0]
        ys, xs = np.nonzero(mask)
        stats.append([mask[: side // 2].mean() - mask[side // 2:].mean(),
                      mask[:, : side // 2].mean() - mask[:, side // 2:].mean(),
                      (ys.var() - xs.var()) / side**2])
    stats = np.array(stats)
    mean, error = stats.mean(axis=0), stats.std(axis=0) / np.sqrt(len(stats))
    assert np.all(np.abs(mean) < 3.5 * error), (mean, error)
    assert np.all(error < 0.03)  # the test can see a bias of a few percent


def test_pool_format_is_checked(tmp_path, pool_file):
    path = tmp_path / "old.npz"
    with np.load(pool_file) as data:
        np.savez(path, masks=data["masks"], seeds=data["seeds"], config=np.array('{"format": 0}'))
    with pytest.raises(ValueError, match="format"):
        nf.HolePool.load(path)


# ----- the feed -------------------------------------------------------------------------------


def _take(feed, count):
    return [next(feed) for _ in range(count)]


def test_feed_batches(photo_dir, pool_file, caplog):
    with caplog.at_level(logging.WARNING, logger=nf.__name__):
        feed = nf.ViewFeed(str(photo_dir), SIZE, 4, holes=pool_file, workers=2, seed=3)
    with feed:
        # Unreadable files are skipped, named and given a reason, as make_dataset does.
        skipped = {os.path.basename(path): reason for path, reason in feed.skipped}
        assert set(skipped) == {"d_corrupt.jpg", "e_truncated.jpg"}
        assert "not an image" in skipped["d_corrupt.jpg"] and "truncated" in skipped["e_truncated.jpg"]
        assert "d_corrupt.jpg" in caplog.text and "e_truncated.jpg" in caplog.text
        assert [os.path.basename(p) for p in feed.paths] == ["a_volna.jpg", "b_crop.png", "c_small.png"]
        batches = _take(feed, 6)
    assert feed.closed and not any(p.is_alive() for p in feed._processes)
    for batch in batches:
        assert batch["image"].shape == (4, SIZE, SIZE, 3) and batch["image"].dtype == np.float32
        assert batch["mask"].shape == (4, SIZE, SIZE, 1) and batch["mask"].dtype == np.float32
        assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
        assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
    images = np.concatenate([b["image"] for b in batches])
    fractions = np.concatenate([b["mask"] for b in batches]).mean(axis=(1, 2, 3))
    # Canvas holes of 2-25%, a bit more after the any-pixel rule.
    assert fractions.min() >= 0.015 and fractions.max() < 0.45 and 0.08 < fractions.mean() < 0.3
    assert np.all(images.std(axis=(1, 2, 3)) > 0.02)  # photos, not blank
    assert len({img.tobytes() for img in images}) == len(images)


def test_feed_is_the_same_for_any_worker_count(photo_dir, pool_file):
    runs = {}
    for workers in (0, 1, 3):
        with nf.ViewFeed(str(photo_dir), SIZE, 3, holes=pool_file, workers=workers, seed=9,
                         color_augment=True, slots=2) as feed:
            runs[workers] = _take(feed, 5)
    for workers in (1, 3):
        for a, b in zip(runs[0], runs[workers]):
            np.testing.assert_array_equal(a["image"], b["image"])
            np.testing.assert_array_equal(a["mask"], b["mask"])
    with nf.ViewFeed(str(photo_dir), SIZE, 3, holes=pool_file, workers=0, seed=10) as feed:
        other = next(feed)
    assert not np.array_equal(other["image"], runs[0][0]["image"])


def test_feed_view_is_the_tf_view_of_its_draws(photo_dir, pool_file):
    # Redraw view n's choices from its documented generator and make it the TF way.
    feed = nf.ViewFeed(str(photo_dir), SIZE, 2, holes=pool_file, workers=0, seed=4)
    pool = nf.HolePool.load(pool_file)
    batches = _take(feed, 4)
    for n in range(8):
        rng = np.random.default_rng([4, n])
        photo = feed._source.photos[int(rng.integers(3))]
        top, left, h, w, factor = nf.view_window(*photo.shape[:2], SIZE, (1, None), rng)
        window = photo[top:top + h, left:left + w]
        if rng.random() < 0.5:
            window = window[:, ::-1].copy()
        canvas = np.ascontiguousarray(pool.mask(int(rng.integers(len(pool))), int(rng.integers(8))))
        _, image, hole, _ = _tf_view(window, canvas, factor, SIZE)
        np.testing.assert_array_equal(batches[n // 2]["image"][n % 2], image)
        np.testing.assert_array_equal(batches[n // 2]["mask"][n % 2], hole)
    # The small PNG was scaled up to a short side of S on loading.
    assert min(feed._source.photos[2].shape[:2]) == SIZE
    feed.close()


def test_feed_views_are_distributed_as_make_datasets(photo_dir, pool_file):
    # The same photos and hole settings through the TF pipeline: the share of hole pixels and
    # the colour statistics of the views agree within sampling error (96 views each).
    dataset, _ = pipeline.make_dataset(str(photo_dir), SIZE, 8, seed=1,
                                       mask_kwargs={"min_area": AREAS[0], "max_area": AREAS[1]})
    reference = [{k: v.numpy() for k, v in b.items()} for b in dataset.take(12)]
    with nf.ViewFeed(str(photo_dir), SIZE, 8, holes=pool_file, workers=2, seed=1) as feed:
        ours = _take(feed, 12)

    def stats(batches):
        holes = np.concatenate([b["mask"] for b in batches]).mean(axis=(1, 2, 3))
        images = np.concatenate([b["image"] for b in batches])
        return holes, images.mean(axis=(1, 2)), images.std(axis=(1, 2))

    (h_ref, m_ref, s_ref), (h, m, s) = stats(reference), stats(ours)
    for ref, got, name in [(h_ref, h, "hole share"), (m_ref, m, "channel means"),
                           (s_ref, s, "channel spreads")]:
        error = np.sqrt(ref.var(axis=0) / len(ref) + got.var(axis=0) / len(got))
        assert np.all(np.abs(ref.mean(axis=0) - got.mean(axis=0)) < 4 * error + 1e-3), name


def test_feed_without_copies_and_close(photo_dir, pool_file):
    with nf.ViewFeed(str(photo_dir), SIZE, 2, holes=pool_file, workers=1, seed=2) as feed:
        copied = _take(feed, 3)
    feed = nf.ViewFeed(str(photo_dir), SIZE, 2, holes=pool_file, workers=1, seed=2, copy=False)
    name = feed._memory.name
    assert os.path.exists(f"/dev/shm/{name}")
    for expected in copied:
        batch = next(feed)
        assert not batch["image"].flags.owndata  # a view of the ring
        np.testing.assert_array_equal(batch["image"], expected["image"])
    del batch
    feed.close()
    feed.close()  # twice is fine
    assert not os.path.exists(f"/dev/shm/{name}")
    with pytest.raises(RuntimeError, match="closed"):
        next(feed)


def test_worker_errors_reach_the_training_process(photo_dir, pool_file, monkeypatch):
    def broken(self, number, image_out, mask_out):
        raise ArithmeticError(f"view {number} broke")

    monkeypatch.setattr(nf._Source, "view", broken)  # before the fork: the workers inherit it
    with nf.ViewFeed(str(photo_dir), SIZE, 2, holes=pool_file, workers=1) as feed:
        with pytest.raises(RuntimeError, match="ArithmeticError: view 0 broke"):
            next(feed)


def test_feed_argument_errors(photo_dir, pool_file, tmp_path):
    with pytest.raises(ValueError, match="size 96 needs 192x192"):
        nf.ViewFeed(str(photo_dir), 96, 2, holes=pool_file, workers=0)
    with pytest.raises(ValueError, match="holes"):
        nf.ViewFeed(str(photo_dir), SIZE, 2, workers=0)
    with pytest.raises(ValueError, match="factor_range"):
        nf.ViewFeed(str(photo_dir), SIZE, 2, holes=pool_file, factor_range=(3, 2))
    (tmp_path / "bad.jpg").write_bytes(b"nothing")
    with pytest.raises(ValueError, match="none of the 1 image files"):
        nf.ViewFeed(str(tmp_path), SIZE, 2, holes=pool_file, workers=0)


def test_runs_without_tensorflow(photo_dir):
    # The training machine has no TensorFlow: importing it (or Keras) fails there, as here.
    code = f"""
import sys
class NoTF:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError("no " + name)
sys.meta_path.insert(0, NoTF())
from hifill_tf.data import numpy_feed as nf
with nf.ViewFeed({str(photo_dir)!r}, 32, 2, holes=nf.stand_in_pool(32), workers=1) as feed:
    batch = next(feed)
assert batch["image"].shape == (2, 32, 32, 3), batch["image"].shape
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=os.path.dirname(HERE))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_bench_prints_rates(photo_dir, capsys):
    nf.main(["bench", "--photos", str(photo_dir), "--sizes", "32", "--workers", "1",
             "--batches", "2", "--batch_size", "2", "--views", "10", "--cores", "16"])
    out = capsys.readouterr().out
    assert "ViewFeed, 1 worker(s)" in out and "16 cores, extrapolated: 15 workers" in out
