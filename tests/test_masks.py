"""Tests for hifill_tf.data.masks: area bound, determinism, kinds, templates."""

import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from hifill_tf.data import masks
from hifill_tf.data.masks import MaskGenerator, place_template, sample_mask, signed_distance

SIZE = 128
NUM_SEEDS = 50


def _batch(generator, seeds, parts=False):
    """Masks for seeds [i, 7] through a tf.data map, as numpy [N, H, W]."""
    fn = generator.sample_parts if parts else generator
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(seeds, np.int64))
    ds = ds.map(lambda i: fn(tf.stack([i, tf.constant(7, tf.int64)])))
    out = list(ds.as_numpy_iterator())
    if parts:
        return {key: np.stack([o[key][..., 0] for o in out]) for key in out[0]}
    return np.stack([o[..., 0] for o in out])


def _enclosed_background(mask):
    """True if some background pixels cannot reach the border (a hole in a hole)."""
    background = mask == 0
    reach = np.zeros_like(background)
    reach[0, :], reach[-1, :], reach[:, 0], reach[:, -1] = (
        background[0, :], background[-1, :], background[:, 0], background[:, -1]
    )
    while True:
        grown = reach.copy()
        grown[1:] |= reach[:-1]
        grown[:-1] |= reach[1:]
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown &= background
        if (grown == reach).all():
            return bool((background & ~reach).any())
        reach = grown


@pytest.mark.parametrize("kind", ["free_form", "object", "mixed", "either"])
def test_area_within_bounds_binary_and_spread(kind):
    generator = MaskGenerator(SIZE, SIZE, kind=kind, min_area=0.02, max_area=0.25)
    batch = _batch(generator, range(NUM_SEEDS))
    assert batch.dtype == np.float32 and batch.shape == (NUM_SEEDS, SIZE, SIZE)
    assert set(np.unique(batch)) <= {0.0, 1.0}
    counts = batch.reshape(NUM_SEEDS, -1).sum(axis=1)
    lo, hi = math.ceil(0.02 * SIZE * SIZE), math.floor(0.25 * SIZE * SIZE)
    assert counts.min() >= lo and counts.max() <= hi, (counts.min(), counts.max())
    # The target is uniform on [0.02, 0.25]: areas must cover the range, not pile up at a bound.
    areas = counts / (SIZE * SIZE)
    assert areas.min() < 0.07 and areas.max() > 0.20
    assert 0.09 < areas.mean() < 0.18


def test_area_bound_exact_when_min_equals_max():
    generator = MaskGenerator(100, 60, kind="mixed", min_area=0.1, max_area=0.1)
    batch = _batch(generator, range(5))
    np.testing.assert_array_equal(batch.reshape(5, -1).sum(axis=1), [600] * 5)


def test_same_seed_same_mask_and_different_seeds_differ():
    generator = MaskGenerator(96, 80, kind="mixed")
    first = generator(tf.constant([3, 9], tf.int64)).numpy()
    again = generator(tf.constant([3, 9], tf.int32)).numpy()
    fresh = MaskGenerator.from_config(generator.get_config())([3, 9]).numpy()
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)
    assert first.shape == (96, 80, 1)
    others = [generator([3, 10]).numpy(), generator([4, 9]).numpy()]
    for other in others:
        assert np.abs(first - other).sum() > 50
    # Eager calls and a tf.data map agree.
    np.testing.assert_array_equal(_batch(generator, [5])[0], generator([5, 7]).numpy()[..., 0])


def test_parts_of_each_kind():
    seeds = range(20)
    obj = _batch(MaskGenerator(SIZE, SIZE, kind="object"), seeds, parts=True)
    free = _batch(MaskGenerator(SIZE, SIZE, kind="free_form"), seeds, parts=True)
    assert obj["object"].reshape(20, -1).sum(1).min() > 0 and obj["free_form"].max() == 0
    assert free["free_form"].reshape(20, -1).sum(1).min() > 0 and free["object"].max() == 0

    mixed = _batch(MaskGenerator(SIZE, SIZE, kind="mixed"), seeds, parts=True)
    np.testing.assert_array_equal(mixed["object"] + mixed["free_form"], mixed["mask"])
    assert (mixed["object"] * mixed["free_form"]).max() == 0
    object_px = mixed["object"].reshape(20, -1).sum(1)
    free_px = mixed["free_form"].reshape(20, -1).sum(1)
    assert object_px.min() > 0 and free_px.min() > 0
    # Objects take round(q * k) pixels with q ~ U[0.3, 0.7].
    share = object_px / (object_px + free_px)
    assert share.min() >= 0.3 - 1e-3 and share.max() <= 0.7 + 1e-3

    either = _batch(MaskGenerator(SIZE, SIZE, kind="either"), range(30), parts=True)
    has_object = either["object"].reshape(30, -1).sum(1) > 0
    has_free = either["free_form"].reshape(30, -1).sum(1) > 0
    assert (has_object ^ has_free).all()
    assert 5 <= has_object.sum() <= 25


def test_signed_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    binary = rng.random((13, 17)) < 0.2
    sdf = signed_distance(binary)
    yy, xx = np.mgrid[:13, :17]
    points = np.stack([yy.ravel(), xx.ravel()], 1).astype(float)
    pairwise = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    inside = binary.ravel()
    to_in = np.where(inside[None, :], pairwise, np.inf).min(1)
    to_out = np.where(~inside[None, :], pairwise, np.inf).min(1)
    expected = np.where(inside, 0.5 - to_out, to_in - 0.5).reshape(13, 17)
    np.testing.assert_allclose(sdf, expected, atol=1e-5)


def test_place_template_rotates_flips_and_scales():
    canvas = np.zeros((16, 16), bool)
    canvas[3:13, 4:7] = True  # an L: vertical bar ...
    canvas[10:13, 4:12] = True  # ... and a foot to the right
    sdf = signed_distance(canvas)
    mid = (7.5, 7.5)

    def place(angle=0.0, scale=1.0, flip=False, size=16, center=mid):
        field = place_template(sdf, size, size, center, tf.constant(angle), tf.constant(scale), 1.0, tf.constant(flip))
        return field.numpy().reshape(size, size) <= 0

    np.testing.assert_array_equal(place(), canvas)
    np.testing.assert_array_equal(place(angle=math.pi / 2), np.rot90(canvas))  # counter-clockwise
    np.testing.assert_array_equal(place(angle=math.pi), np.rot90(canvas, 2))
    np.testing.assert_array_equal(place(flip=True), np.fliplr(canvas))
    doubled = place(scale=2.0, size=32, center=(15.5, 15.5))
    expected = np.kron(canvas, np.ones((2, 2), bool))
    assert abs(doubled.sum() / canvas.sum() - 4.0) < 0.3
    assert (doubled & expected).sum() / (doubled | expected).sum() > 0.9
    # Far from the canvas the field keeps growing instead of plateauing.
    far = place_template(sdf, 64, 64, (7.5, 7.5), tf.constant(0.0), tf.constant(1.0), 1.0, tf.constant(False))
    far = far.numpy().reshape(64, 64)
    assert far[63, 63] > far[40, 40] > far[20, 20] > 0


def _write_png(path, array):
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_templates_from_directory_are_used(tmp_path):
    yy, xx = np.mgrid[:90, :120]
    radius = np.hypot(yy - 45, xx - 60)
    ring = ((radius < 40) & (radius > 22)) * 255
    _write_png(tmp_path / "ring.png", ring)
    generator = MaskGenerator(SIZE, SIZE, kind="object", templates_dir=str(tmp_path), max_objects=1)
    assert generator.num_templates == 1
    batch = _batch(generator, range(20))
    counts = batch.reshape(20, -1).sum(1)
    assert counts.min() >= math.ceil(0.02 * SIZE * SIZE) and counts.max() <= math.floor(0.25 * SIZE * SIZE)
    # A ring keeps its inner hole under rotation, flip and scale; star-shaped
    # built-in silhouettes never have one.
    with_hole = sum(_enclosed_background(m) for m in batch)
    assert with_hole >= 12, with_hole
    builtin = _batch(MaskGenerator(SIZE, SIZE, kind="object", max_objects=1), range(20))
    assert sum(_enclosed_background(m) for m in builtin) == 0

    # Several templates, 0/1-valued and RGB files included, all load.
    _write_png(tmp_path / "bar.png", np.pad(np.ones((10, 40)), 5))  # 0/1 values
    (tmp_path / "sub").mkdir()
    _write_png(tmp_path / "sub" / "ring_rgb.PNG", np.stack([ring] * 3, axis=-1))
    generator = MaskGenerator(64, 64, kind="mixed", templates_dir=str(tmp_path))
    assert generator.num_templates == 3
    assert 0 < generator([1, 2]).numpy().sum() <= 0.25 * 64 * 64


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="'blobs'"):
        MaskGenerator(64, 64, kind="blobs")
    with pytest.raises(ValueError, match="min_area=0.5"):
        MaskGenerator(64, 64, min_area=0.5, max_area=0.25)
    with pytest.raises(ValueError, match="no pixel count"):
        MaskGenerator(4, 4, min_area=0.1, max_area=0.11)
    (tmp_path / "notes.txt").write_text("not a template")
    with pytest.raises(ValueError, match="holds no .png"):
        MaskGenerator(64, 64, templates_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing"):
        MaskGenerator(64, 64, templates_dir=str(tmp_path / "missing"))
    _write_png(tmp_path / "empty.png", np.zeros((8, 8)))
    with pytest.raises(ValueError, match="empty.png"):
        MaskGenerator(64, 64, templates_dir=str(tmp_path))
    with pytest.raises(ValueError, match="shape"):
        MaskGenerator(32, 32)([1, 2, 3])


def test_sample_mask_any_size_is_seeded_and_bounded():
    first = sample_mask(600, 1000, seed=11, max_render_side=256)
    assert first.shape == (600, 1000) and first.dtype == np.uint8
    assert set(np.unique(first)) <= {0, 255}
    area = (first == 255).mean()
    assert 0.02 <= area <= 0.25
    np.testing.assert_array_equal(first, sample_mask(600, 1000, seed=11, max_render_side=256))
    assert (first != sample_mask(600, 1000, seed=12, max_render_side=256)).any()
    # Rendering the fields coarser changes edges only: the masks nearly coincide.
    fine = sample_mask(600, 1000, seed=11, max_render_side=1000)
    iou = ((first > 0) & (fine > 0)).sum() / ((first > 0) | (fine > 0)).sum()
    assert iou > 0.85, iou
    assert len(masks._SAMPLE_CACHE) >= 2


@pytest.mark.parametrize("k", [0, 1, 37, 500, 999, 1000])
def test_select_lowest_matches_stable_argsort(k):
    rng = np.random.default_rng(k)
    # Rounded values give many exact ties; ties must go in raster order.
    field = np.round(rng.normal(size=1000) * 3.0).astype(np.float32)
    field[:100] = rng.normal(size=100) * 1e-3  # a narrow cluster inside one histogram bin
    mask, threshold = masks.select_lowest(tf.constant(field), k)
    expected = np.zeros(1000, bool)
    expected[np.argsort(field, kind="stable")[:k]] = True
    np.testing.assert_array_equal(mask.numpy(), expected)
    if k:
        assert field[expected].max() <= threshold.numpy()
