"""Tests for hifill_tf.data.pipeline: decoding, crops, skipped files, TFDS sources."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from hifill_tf.data import pipeline
from hifill_tf.data.masks import MaskGenerator
from hifill_tf.data.pipeline import list_image_files, make_dataset

# A real photo from the repository itself (tests must not need ../shared).
PHOTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "volna-640x360.jpg")


def _coded(height, width):
    """RGB image whose pixels encode their position: R = 2x, G = 3y, B = 128 (mod 256)."""
    yy, xx = np.mgrid[:height, :width]
    return np.stack([(2 * xx) % 256, (3 * yy) % 256, np.full_like(xx, 128)], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Three real images (jpg, PNG, webp in a subfolder), two broken ones, a text file."""
    root = tmp_path_factory.mktemp("images")
    with Image.open(PHOTO) as photo:
        photo.draft("RGB", (320, 200))
        photo.convert("RGB").resize((320, 200)).save(root / "a_photo.jpg", quality=90)
    Image.fromarray(_coded(90, 120)).save(root / "b_coded.PNG")
    (root / "sub").mkdir()
    Image.fromarray(_coded(100, 70)).save(root / "sub" / "c_coded.webp", lossless=True)
    (root / "bad.jpg").write_bytes(b"definitely not a jpeg " * 20)
    data = (root / "a_photo.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("ignored")
    return root


def _batches(dataset, count):
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(count)]


def test_list_image_files(image_dir, tmp_path):
    names = [os.path.relpath(p, image_dir) for p in list_image_files(str(image_dir))]
    assert names == ["a_photo.jpg", "b_coded.PNG", "bad.jpg", os.path.join("sub", "c_coded.webp"), "truncated.jpg"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_image_files(str(tmp_path / "nowhere"))
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(ValueError, match=str(tmp_path)):
        list_image_files(str(tmp_path))


def test_unreadable_files_are_skipped_and_counted(image_dir, caplog):
    with caplog.at_level(logging.WARNING, logger=pipeline.__name__):
        dataset, info = make_dataset(str(image_dir), 48, batch_size=4, seed=1)
    assert (info.num_files, info.num_skipped, info.num_usable) == (5, 2, 3)
    assert [os.path.basename(p) for p in info.skipped_files] == ["bad.jpg", "truncated.jpg"]
    assert "bad.jpg" in caplog.text and "truncated.jpg" in caplog.text
    for batch in _batches(dataset, 3):  # more examples than files: repeats, never fails
        assert batch["image"].shape == (4, 48, 48, 3) and batch["image"].dtype == np.float32
        assert batch["mask"].shape == (4, 48, 48, 1) and batch["mask"].dtype == np.float32
        assert batch["image"].min() >= -1.0 and batch["image"].max() <= 1.0
        assert set(np.unique(batch["mask"])) <= {0.0, 1.0}
        areas = batch["mask"].mean(axis=(1, 2, 3))
        # The area bound holds at photo resolution; the any-pixel rule (and the mirrored
        # padding) can only grow the network's hole.
        assert areas.min() >= 0.02 and areas.max() <= 0.5

    # Without validation the broken files still never stop training: the decode drops them.
    dataset, info = make_dataset(str(image_dir), 32, batch_size=3, validate=False, shuffle=False, repeat=False)
    assert info.num_skipped == 0
    assert len(_batches(dataset, 10)) == 1  # 3 readable files -> one batch of 3


def test_crop_is_an_exact_native_window_and_flips(tmp_path):
    source = _coded(90, 120)
    Image.fromarray(source).save(tmp_path / "coded.png")
    dataset, _ = make_dataset(str(tmp_path), 32, batch_size=8, mode="crop", seed=3,
                              factor_range=(1, 1))
    images = np.concatenate([b["image"] for b in _batches(dataset, 2)])
    flipped = 0
    for image in np.rint((images + 1.0) * 127.5).astype(np.uint8):
        # f = 1: a window of 17..32 pixels a side, mirror-padded to 32; its first 16 x 16
        # pixels are always photo pixels.
        image = image[:16]
        if image[0, 0, 0] > image[0, 15, 0]:  # R grows with x unless flipped (and no wrap here)
            image = image[:, ::-1]
            flipped += 1
            image = image[:, -16:]  # a flipped window's padding comes first
        else:
            image = image[:, :16]
        left, top = image[0, 0, 0] // 2, image[0, 0, 1] // 3
        np.testing.assert_array_equal(image, source[top:top + 16, left:left + 16])
    assert 2 <= flipped <= 14


def test_training_view_is_the_inference_network_input(tmp_path):
    # A photo of (S - 16) f + 1 pixels a side leaves the pipeline one window at factor f: the
    # whole photo. Inference (cra.network_input at an S x S budget) picks the same f for it,
    # so both paths must give the same network input and hole, bit for bit.
    size, factor = 64, 3
    side = (size - 16) * factor + 1
    with Image.open(PHOTO) as photo:
        photo.convert("RGB").crop((100, 50, 100 + side, 50 + side)).save(tmp_path / "p.png")
    canvas = MaskGenerator(2 * size, 2 * size, min_area=0.1, max_area=0.2)(tf.constant([4, 2], tf.int64))
    dataset, _ = make_dataset(str(tmp_path), size, batch_size=4, factor_range=(factor, factor),
                              mask_generator=lambda seed: canvas, seed=1)
    batch = _batches(dataset, 1)[0]
    photo = np.asarray(Image.open(tmp_path / "p.png"))
    hole = tf.image.resize(canvas, [side, side], method="nearest") > 0.5
    from hifill_tf import cra
    for image, mask in zip(batch["image"], batch["mask"]):
        matched = False
        for view in (photo, photo[:, ::-1]):  # the view may have been flipped
            _, _, low, low_hole, f = cra.network_input(tf.constant(view), hole, size * size)
            assert int(f) == factor and low.shape == (size, size, 3)
            if np.array_equal(np.clip(low.numpy() / 127.5 - 1.0, -1, 1), image):
                np.testing.assert_array_equal(low_hole.numpy(), mask)
                matched = True
        assert matched
    assert batch["mask"].mean() > 0.05  # the any-pixel rule was exercised on a real hole


def test_view_windows():
    def windows(height, width, size, factor_range, count=300):
        return np.array([
            [int(v) for v in pipeline._view_window(height, width, size, factor_range,
                                                   tf.constant([i, 5], tf.int64))]
            for i in range(count)])

    w = windows(1600, 2560, 256, (1, None))
    top, left, h, wd, f = w.T
    # f uniform over 1..6: the largest whose window, over 240 f pixels, fits 1600 rows.
    assert set(f) == {1, 2, 3, 4, 5, 6}
    assert np.all(h > 240 * f) and np.all(h <= 256 * f) and np.all(wd > 240 * f) and np.all(wd <= 256 * f)
    assert np.all(top + h <= 1600) and np.all(left + wd <= 2560) and top.min() >= 0
    assert len(set(h - 240 * f)) > 10  # sides (so aspect ratios) vary
    np.testing.assert_array_equal(windows(1600, 2560, 256, (2, 2), 5)[:, 4], [2] * 5)
    assert windows(1600, 2560, 256, (2, 4), 100)[:, 4].max() == 4
    # A factor range the photo cannot hold is capped at what it can.
    assert set(windows(300, 500, 256, (3, 5), 20)[:, 4]) == {1}


def test_small_images_are_scaled_up_in_crop_mode(tmp_path):
    Image.fromarray(_coded(30, 40)).save(tmp_path / "tiny.png")
    dataset, _ = make_dataset(str(tmp_path), 64, batch_size=2)
    image = _batches(dataset, 1)[0]["image"]
    assert image.shape == (2, 64, 64, 3)
    # Scaled to 64 rows, the window (49..64 of them) spans most of G (= 3y, 0..87).
    green = (image[..., 1] + 1.0) * 127.5
    assert np.all(green.max(axis=(1, 2)) - green.min(axis=(1, 2)) > 60)


def test_resize_mode_matches_reference(tmp_path):
    source = _coded(90, 120)
    Image.fromarray(source).save(tmp_path / "coded.png")
    dataset, _ = make_dataset(str(tmp_path), 48, batch_size=4, mode="resize", seed=0)
    expected = np.round(tf.image.resize(source, [48, 48], antialias=True).numpy()) / 127.5 - 1.0
    for image in _batches(dataset, 1)[0]["image"]:
        if not np.allclose(image, expected, atol=1e-5):
            np.testing.assert_allclose(image[:, ::-1], expected, atol=1e-5)


def test_resize_mode_large_jpeg_uses_scaled_decode_faithfully(tmp_path):
    with Image.open(PHOTO) as photo:
        photo.convert("RGB").resize((1280, 800)).save(tmp_path / "big.jpg", quality=95)
    dataset, _ = make_dataset(str(tmp_path), 128, batch_size=2, mode="resize", shuffle=False)
    full = tf.io.decode_jpeg(tf.io.read_file(str(tmp_path / "big.jpg")))
    expected = tf.image.resize(full, [128, 128], antialias=True).numpy() / 127.5 - 1.0
    for image in _batches(dataset, 1)[0]["image"]:
        error = min(np.abs(image - expected).mean(), np.abs(image[:, ::-1] - expected).mean())
        assert error < 0.02, error  # a 1/4-scale DCT decode, then resize


def test_same_seed_same_batches(image_dir):
    def first(seed):
        dataset, _ = make_dataset(str(image_dir), 48, batch_size=3, seed=seed, factor_range=(1, 3))
        return _batches(dataset, 2)

    a, b, c = first(5), first(5), first(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["mask"], y["mask"])
    assert not np.array_equal(a[0]["mask"], c[0]["mask"])
    assert not np.array_equal(a[1]["image"], c[1]["image"])


def test_color_augment_permutes_channels_or_greys_and_keeps_crops_and_masks(image_dir):
    def batches(color_augment):
        dataset, _ = make_dataset(str(image_dir), 48, batch_size=4, seed=3, factor_range=(1, 3),
                                  color_augment=color_augment)
        return _batches(dataset, 6)

    plain, recoloured = batches(False), batches(True)
    kinds = []
    for p, r in zip(plain, recoloured):
        np.testing.assert_array_equal(p["mask"], r["mask"])
        for x, y in zip(p["image"], r["image"]):
            grey = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2] + 1.0) * 127.5
            # (atol: the resize may overshoot 0-255 a little before the clip)
            if all(np.allclose(y[..., c], grey / 127.5 - 1.0, atol=0.02) for c in range(3)):
                kinds.append("grey")
                continue
            # Otherwise exactly one of the six channel orders of the same crop.
            matches = [perm for perm in pipeline._PERMUTATIONS
                       if np.array_equal(y, x[..., list(perm)])]
            assert matches, "recoloured crop is neither grey nor a channel permutation"
            kinds.append(matches[0])
    assert len(set(kinds)) >= 3  # 24 crops: several different colourings


def test_recolour_grey_uses_bt601_luma():
    image = tf.constant([[[200.0, 100.0, 50.0]]])
    outputs = [tuple(pipeline.recolour(image, tf.constant([s, 1], tf.int64)).numpy().ravel())
               for s in range(200)]
    luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    assert {(200.0, 100.0, 50.0), (50.0, 100.0, 200.0)} <= set(outputs)
    grey_share = sum(abs(o[0] - luma) < 1e-3 and o[0] == o[1] == o[2] for o in outputs) / 200
    assert 0.05 < grey_share < 0.3  # GREY_PROBABILITY = 0.15


def test_argument_errors(image_dir, tmp_path):
    with pytest.raises(ValueError, match="'zoom'"):
        make_dataset(str(image_dir), 32, 2, mode="zoom")
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        make_dataset(str(image_dir), 32, 2, factor_range=(0, 2))
    with pytest.raises(ValueError, match="multiple of 16"):
        make_dataset(str(image_dir), 40, 2)
    with pytest.raises(ValueError, match="32x32 masks.*needs 64x64"):
        make_dataset(str(image_dir), 32, 2, mask_generator=MaskGenerator(32, 32))
    with pytest.raises(ValueError, match="fewer than batch_size=8"):
        make_dataset(str(image_dir), 32, 8, repeat=False)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="none of its 1 image files"):
        make_dataset(str(tmp_path), 32, 1)


class TinyInpaintImages(tfds.core.GeneratorBasedBuilder):
    """A TFDS dataset built from local files (tensorflow-datasets cannot download here)."""

    VERSION = tfds.core.Version("1.0.0")
    # tests/ is not a package, so tell TFDS where the (absent) metadata files would be.
    pkg_dir_path = epath.Path(os.path.dirname(os.path.abspath(__file__)))
    source_dir = None  # set by the test before building

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"image": tfds.features.Image(), "label": tf.int64})
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0), "test": self._generate_examples(1)}

    def _generate_examples(self, parity):
        for i, name in enumerate(sorted(os.listdir(self.source_dir))):
            if i % 2 == parity or parity == 0:
                yield name, {"image": os.path.join(self.source_dir, name), "label": i}


def test_tfds_source(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_coded(80, 100)).save(images / "one.png")
    # High quality, no chroma subsampling: the check below allows a few levels, not edge ringing.
    Image.fromarray(_coded(70, 60)).save(images / "two.jpg", quality=95, subsampling=0)
    Image.fromarray(_coded(64, 64)).save(images / "three.png")
    TinyInpaintImages.source_dir = str(images)
    data_dir = str(tmp_path / "tfds")
    TinyInpaintImages(data_dir=data_dir).download_and_prepare()

    dataset, info = make_dataset("tfds:tiny_inpaint_images", 32, batch_size=2, tfds_data_dir=data_dir, seed=2)
    assert info.num_files == 3 and info.num_skipped == 0
    for batch in _batches(dataset, 3):
        assert batch["image"].shape == (2, 32, 32, 3) and batch["mask"].shape == (2, 32, 32, 1)
        assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
        # Coded pixels survive decoding: B is 128 everywhere (JPEG within a few levels).
        blue = (batch["image"][..., 2] + 1.0) * 127.5
        assert np.abs(blue - 128).max() < 6

    test_split, info = make_dataset(
        "tfds:tiny_inpaint_images:test", 32, batch_size=1, tfds_data_dir=data_dir, shuffle=False, repeat=False
    )
    assert info.num_files == 1 and len(_batches(test_split, 5)) == 1
    with pytest.raises(FileNotFoundError, match="not prepared"):
        make_dataset("tfds:tiny_inpaint_images", 32, 2, tfds_data_dir=str(tmp_path / "empty"))
