"""Tests for hifill_tf.io: reading photos and masks, mask operations, writing, batches, pictures."""

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from hifill_tf import io


def _blocks(height, width):
    """An RGB image of flat 8x8 blocks: survives JPEG nearly unchanged, every block distinct."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(colours, 8, axis=0), 8, axis=1)


def _gray_png(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


# ------------------------------------------------------------------------------------ read_image


@pytest.mark.parametrize("orientation, rotate", [(3, 2), (6, -1), (8, 1)])
def test_read_image_applies_exif_orientation(tmp_path, orientation, rotate):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_blocks(40, 64)).save(path, exif=exif, quality=95)
    stored = np.asarray(Image.open(path).convert("RGB"))  # raw decode, orientation ignored

    rgb, alpha = io.read_image(path)

    assert alpha is None
    np.testing.assert_array_equal(rgb, np.rot90(stored, k=rotate))  # k=-1: 90 deg clockwise
    assert rgb.shape == ((64, 40, 3) if orientation != 3 else (40, 64, 3))


def test_read_image_rgba_returns_alpha(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., :3] = _blocks(16, 16)[:10, :12]
    rgba[..., 3] = 255
    rgba[2:5, 3:7, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "a.png")

    rgb, alpha = io.read_image(tmp_path / "a.png")

    np.testing.assert_array_equal(rgb, rgba[..., :3])
    np.testing.assert_array_equal(alpha, rgba[..., 3])
    assert rgb.flags.c_contiguous and rgb.flags.writeable


def test_read_image_la_and_palette_with_transparency(tmp_path):
    la = Image.fromarray(np.dstack([np.full((4, 5), 90, np.uint8), np.full((4, 5), 7, np.uint8)]))
    la.save(tmp_path / "la.png")
    palette = Image.new("P", (5, 4), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "p.png", transparency=0)

    rgb, alpha = io.read_image(tmp_path / "la.png")
    assert (rgb == 90).all() and (alpha == 7).all()
    rgb, alpha = io.read_image(tmp_path / "p.png")
    assert tuple(rgb[1, 1]) == (200, 100, 50)
    assert alpha[0, 0] == 0 and alpha[1, 1] == 255


def test_read_image_16_bit_is_scaled_not_clipped(tmp_path):
    gray = np.array([[0, 257, 32768, 65535]], np.uint16)
    _gray_png(tmp_path / "g16.png", gray)
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    rgb, _ = io.read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])

    colour = np.zeros((2, 3, 3), np.uint16)
    colour[0, 0] = [65535, 32768, 0]  # RGB
    cv2.imwrite(str(tmp_path / "c16.png"), colour[..., ::-1])  # cv2 writes BGR, 16-bit
    rgb, _ = io.read_image(tmp_path / "c16.png")
    assert rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], [255, 128, 0])


def test_read_image_grayscale_gives_three_equal_channels(tmp_path):
    gray = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    rgb, alpha = io.read_image(_gray_png(tmp_path / "g.png", gray))
    assert rgb.shape == (6, 10, 3) and alpha is None
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)


def test_read_image_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    rgb, _ = io.read_image(tmp_path / "cmyk.jpg")
    assert rgb.shape == (16, 16, 3)
    np.testing.assert_allclose(rgb[8, 8], [255, 0, 0], atol=3)  # no cyan, full magenta + yellow


def test_read_image_bad_files_name_the_file(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    good = tmp_path / "good.jpg"
    Image.fromarray(_blocks(256, 256)).save(good, quality=95)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])

    for path, words in [
        (text, "not an image"),
        (truncated, "truncated"),
        (tmp_path / "missing.png", "no such file"),
        (tmp_path, "directory"),
    ]:
        with pytest.raises(io.InputError) as error:
            io.read_image(path)
        assert str(path) in str(error.value) and words in str(error.value)


def test_read_image_pixel_limit(tmp_path, monkeypatch):
    path = _gray_png(tmp_path / "big.png", np.zeros((20, 30), np.uint8))
    monkeypatch.setattr(io.limits, "MAX_PHOTO_PIXELS", 500)
    with pytest.raises(io.InputError, match=r"big\.png: image is 30x20 .*megapixel limit"):
        io.read_image(path)
    monkeypatch.setattr(io.limits, "MAX_PHOTO_PIXELS", 600)
    assert io.read_image(path)[0].shape == (20, 30, 3)


# ------------------------------------------------------------------------------------- read_mask


def test_read_mask_threshold(tmp_path):
    values = np.array([[0, 127, 128, 255]], np.uint8)
    mask = io.read_mask(_gray_png(tmp_path / "m.png", values))
    np.testing.assert_array_equal(mask, [[0, 0, 255, 255]])
    assert mask.dtype == np.uint8
    mask = io.read_mask(tmp_path / "m.png", threshold=200)
    np.testing.assert_array_equal(mask, [[0, 0, 0, 255]])


def test_read_mask_colour_uses_max_channel_and_rgba_composites_on_black(tmp_path):
    rgb = np.array([[[0, 200, 0], [100, 100, 100], [255, 255, 255]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(io.read_mask(tmp_path / "rgb.png"), [[255, 0, 255]])

    rgba = np.array([[[255, 255, 255, 0], [255, 255, 255, 255], [255, 255, 255, 100]]], np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(io.read_mask(tmp_path / "rgba.png"), [[0, 255, 0]])


def test_mask_from_alpha(tmp_path):
    alpha = np.array([[0, 127, 128, 255]], np.uint8)
    np.testing.assert_array_equal(io.mask_from_alpha(alpha), [[255, 255, 0, 0]])

    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[..., 3] = alpha
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    mask = io.read_mask(tmp_path / "cutout.png", from_alpha=True)
    np.testing.assert_array_equal(mask, [[255, 255, 0, 0]])
    with pytest.raises(io.InputError, match="no alpha"):
        io.read_mask(_gray_png(tmp_path / "gray.png", alpha), from_alpha=True)


def test_read_mask_size_mismatch_and_resize(tmp_path):
    small = np.zeros((4, 5), np.uint8)
    small[1:3, 2:4] = 255
    path = _gray_png(tmp_path / "mask.png", small)

    with pytest.raises(io.InputError) as error:
        io.read_mask(path, (8, 10, 3))
    assert str(path) in str(error.value)
    assert "mask is 5x4 but the image is 10x8" in str(error.value)
    with pytest.raises(io.InputError, match="rotated"):
        io.read_mask(path, (5, 4))

    mask = io.read_mask(path, (8, 10, 3), resize=True)
    np.testing.assert_array_equal(mask, np.repeat(np.repeat(small, 2, 0), 2, 1))
    assert io.read_mask(path, (4, 5)).shape == (4, 5)


def test_read_mask_applies_exif_orientation(tmp_path):
    stored = np.zeros((4, 6), np.uint8)
    stored[0, 0] = 255  # top-left as stored -> top-right once turned 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "m.png", exif=exif)
    mask = io.read_mask(tmp_path / "m.png", (6, 4))
    assert mask.shape == (6, 4) and mask[0, 3] == 255 and mask.sum() == 255


# ----------------------------------------------------------------------------------- mask ops


def _dilate_reference(mask, r):
    """Brute force: OR of the mask shifted by every (dy, dx) with dy^2 + dx^2 <= r^2."""
    h, w = mask.shape
    padded = np.pad(mask != 0, r)
    out = np.zeros((h, w), bool)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= r * r:
                out |= padded[r + dy : r + dy + h, r + dx : r + dx + w]
    return out.astype(np.uint8) * 255


@pytest.mark.parametrize("shape", [(37, 131), (70, 64), (5, 200), (150, 9)])
@pytest.mark.parametrize("strip_words", [io.masks._STRIP_WORDS, 1])  # 1: many strips of 4r rows
def test_dilate_mask_matches_brute_force(shape, strip_words, monkeypatch):
    monkeypatch.setattr(io.masks, "_STRIP_WORDS", strip_words)  # where dilate_mask reads it
    rng = np.random.default_rng(shape[0])
    for density in (0.003, 0.05, 0.4):
        mask = (rng.random(shape) < density).astype(np.uint8) * 255
        for r in (1, 2, 3, 6, 11, 40, 70):
            np.testing.assert_array_equal(
                io.dilate_mask(mask, r), _dilate_reference(mask, r), err_msg=f"{density=} {r=}"
            )


def test_dilate_mask_structuring_element_and_edge_cases():
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    disk = io.dilate_mask(mask, 5)
    yy, xx = np.mgrid[-10:11, -10:11]
    np.testing.assert_array_equal(disk, np.where(yy**2 + xx**2 <= 25, 255, 0))

    before = mask.copy()
    same = io.dilate_mask(mask, 0)
    np.testing.assert_array_equal(same, mask * 255)
    np.testing.assert_array_equal(mask, before)  # input untouched
    assert not io.dilate_mask(np.zeros((9, 300), np.uint8), 4).any()
    assert (io.dilate_mask(np.full((3, 4), 255, np.uint8), 2) == 255).all()
    with pytest.raises(ValueError):
        io.dilate_mask(mask, -1)


def test_validate_mask_empty_and_full():
    mask = np.zeros((4, 5), np.uint8)
    with pytest.raises(io.EmptyMaskError, match="m.png: mask is empty"):
        io.validate_mask(mask, "m.png")
    mask[:] = 255
    with pytest.raises(io.InputError, match="covers the whole image") as error:
        io.validate_mask(mask, "m.png")
    assert not isinstance(error.value, io.EmptyMaskError)
    mask[0, :2] = 0
    assert io.validate_mask(mask) == pytest.approx(0.9)
    assert io.mask_coverage(mask) == pytest.approx(0.9)
    assert issubclass(io.InputError, ValueError)


# ------------------------------------------------------------------------- write_image_atomic


def _entries(directory):
    return sorted(os.listdir(directory))


def test_write_image_atomic_round_trips(tmp_path):
    y, x = np.mgrid[0:48, 0:64]  # smooth, so lossy chroma subsampling costs little
    rgb = np.dstack([x * 4, y * 5, (x + y) * 2]).astype(np.uint8)
    for ext in (".png", ".bmp", ".tif", ".webp", ".jpg", ".JPEG"):
        path = io.write_image_atomic(tmp_path / "out" / f"result{ext}", rgb)  # creates out/
        back = np.asarray(Image.open(path))
        assert back.shape == rgb.shape
        error = np.abs(back.astype(int) - rgb).mean()
        assert error == 0 if ext in (".png", ".bmp", ".tif") else error < 4, ext
    assert Image.open(tmp_path / "out" / "result.jpg").format == "JPEG"
    assert Image.open(tmp_path / "out" / "result.webp").format == "WEBP"
    assert not [n for n in _entries(tmp_path / "out") if n.endswith(".tmp")]


def test_write_image_atomic_refuses_to_overwrite_inputs(tmp_path):
    source = tmp_path / "photo.png"
    Image.fromarray(_blocks(16, 16)).save(source)
    original = source.read_bytes()
    os.link(source, tmp_path / "hardlink.png")
    os.symlink(source, tmp_path / "symlink.png")

    for target in (source, tmp_path / "." / "photo.png", tmp_path / "hardlink.png",
                   tmp_path / "symlink.png"):
        with pytest.raises(io.InputError, match="refusing to overwrite"):
            io.write_image_atomic(target, np.zeros((16, 16, 3), np.uint8), protect=[source])
    assert source.read_bytes() == original
    assert _entries(tmp_path) == ["hardlink.png", "photo.png", "symlink.png"]


def test_write_image_atomic_bad_requests_leave_nothing_behind(tmp_path, monkeypatch):
    rgb = _blocks(16, 16)
    target = tmp_path / "out.png"
    io.write_image_atomic(target, rgb)
    before = target.read_bytes()

    with pytest.raises(io.InputError, match=r"out\.gif: unknown image extension"):
        io.write_image_atomic(tmp_path / "out.gif", rgb)
    with pytest.raises(io.InputError, match="uint8"):
        io.write_image_atomic(target, rgb.astype(np.float32))
    with pytest.raises(io.InputError, match="alpha"):
        io.write_image_atomic(tmp_path / "out.jpg", np.zeros((4, 4, 4), np.uint8))

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        io.write_image_atomic(target, rgb[::-1])
    assert target.read_bytes() == before  # the old file survives a failed write
    assert _entries(tmp_path) == ["out.png"]  # and no temporary file is left


def test_atomic_file_text_binary_failure_and_permissions(tmp_path):
    target = tmp_path / "deeper" / "table.md"
    with io.atomic_file(target, "w") as f:  # creates deeper/
        f.write("| a | é |\n")
    assert target.read_text(encoding="utf-8") == "| a | é |\n"
    os.chmod(target, 0o640)
    with io.atomic_file(target) as f:
        f.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert os.stat(target).st_mode & 0o777 == 0o640  # the replaced file's permissions are kept

    with pytest.raises(RuntimeError, match="interrupted"):
        with io.atomic_file(target) as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"\x00\x01"  # untouched
    assert _entries(tmp_path / "deeper") == ["table.md"]  # no temporary file left


def test_evaluate_write_atomic_keeps_the_old_table_on_failure(tmp_path, monkeypatch):
    from hifill_tf import evaluate

    table = tmp_path / "quality.md"
    evaluate.write_atomic(table, "old\n")
    real_replace = os.replace

    def failing_replace(src, dst):
        raise OSError("no space left")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="no space"):
        evaluate.write_atomic(table, "new\n")
    monkeypatch.setattr(os, "replace", real_replace)
    assert table.read_text() == "old\n" and _entries(tmp_path) == ["quality.md"]


# --------------------------------------------------------------------------------------- batches


def test_find_images_and_match_masks(tmp_path):
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for name in ("b.jpg", "a.png", "c.JPG", "d.tiff", "e.jpg", ".hidden.jpg", "notes.txt"):
        (photos / name).write_bytes(b"")
    for name in ("a.png", "b.png", "c_mask.png", "e.png", "e-mask.png", "readme.md"):
        (masks / name).write_bytes(b"")

    images = io.find_images(photos)
    assert [os.path.basename(p) for p in images] == ["a.png", "b.jpg", "c.JPG", "d.tiff", "e.jpg"]

    masks_by_image, errors = io.match_masks(images, masks)
    assert {os.path.basename(k): os.path.basename(v) for k, v in masks_by_image.items()} == {
        "a.png": "a.png",
        "b.jpg": "b.png",
        "c.JPG": "c_mask.png",
    }
    assert set(errors) == {str(photos / "d.tiff"), str(photos / "e.jpg")}
    assert "d.tiff: no mask" in errors[str(photos / "d.tiff")]
    assert "ambiguous" in errors[str(photos / "e.jpg")]
    with pytest.raises(io.InputError, match="no such directory"):
        io.find_images(tmp_path / "nowhere")


def test_match_masks_beside_the_photos(tmp_path):
    for name in ("p.jpg", "p_mask.png", "q.jpg"):
        (tmp_path / name).write_bytes(b"")
    masks, errors = io.match_masks([tmp_path / "p.jpg", tmp_path / "q.jpg"], tmp_path)
    assert masks == {tmp_path / "p.jpg": str(tmp_path / "p_mask.png")}
    assert list(errors) == [tmp_path / "q.jpg"]  # q.jpg is not its own mask


# ---------------------------------------------------------------------------------- side_by_side


def test_side_by_side_layout_and_one_to_one_crops():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8)
    output = rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8)
    mask = np.zeros((900, 1200), np.uint8)
    mask[100:160, 150:260] = 255  # larger hole: shown first
    mask[700:720, 1000:1030] = 255

    picture = io.side_by_side(image, mask, output, crops=2, max_width=800, crop_size=300)

    boxes = io.crop_boxes(mask, 2, 300)
    assert len(boxes) == 2
    (left, top, right, bottom) = boxes[0]
    assert left <= 150 and 260 <= right and top <= 100 and 160 <= bottom
    assert picture.dtype == np.uint8 and picture.shape[1] <= 800 and picture.shape[2] == 3
    # Top row: two panels (800 - 3 * 8) / 2 = 388 wide: the overview is scaled to 388x291.
    assert picture.shape[0] == 20 + 291 + 8 + 2 * (20 + 300 + 8)
    for left, top, right, bottom in boxes:  # each output window appears unscaled
        window = output[top:bottom, left:right]
        ys, xs = np.nonzero((picture == window[0, 0]).all(axis=2))
        assert any(
            np.array_equal(picture[y : y + 300, x : x + 300], window) for y, x in zip(ys, xs)
        )


def test_side_by_side_small_hole_one_crop_and_empty_mask():
    image = np.zeros((200, 300, 3), np.uint8)
    mask = np.zeros((200, 300), np.uint8)
    mask[50:60, 70:80] = 255
    [(left, top, right, bottom)] = io.crop_boxes(mask, 3, 128)
    assert left <= 70 and 80 <= right and top <= 50 and 60 <= bottom
    picture = io.side_by_side(image, mask, image, crops=3, max_width=1000, crop_size=128)
    assert picture.shape == (20 + 200 + 8 + 20 + 128 + 8, 2 * 300 + 24, 3)
    # In the 1:1 crop of the input the hole is tinted half red, its surroundings are not.
    crop = picture[20 + 200 + 8 + 20 :][:128, 8 : 8 + 128]
    assert tuple(crop[55 - top, 75 - left]) == (128, 0, 0)
    assert tuple(crop[45 - top, 75 - left]) == (0, 0, 0)
    assert io.side_by_side(image, mask * 0, image).shape == (20 + 200 + 8, 2 * 300 + 24, 3)


def test_comparison_picture_columns_and_one_to_one_window():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    results = [(f"m{k}", rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)) for k in range(3)]
    mask = np.zeros((300, 400), np.uint8)
    mask[120:180, 200:260] = 255
    picture = io.comparison_picture(truth, mask, results, max_width=1000, crop_size=100)
    # Five columns (input, three results, truth) of (1000 - 6 * 8) // 5 = 190 px; the overview
    # is scaled to 190x142 and one 100x100 window follows at 1:1.
    assert picture.shape == (20 + 142 + 8 + 20 + 100 + 8, 5 * (190 + 8) + 8, 3)
    [(left, top, right, bottom)] = io.crop_boxes(mask, 1, 100)
    y = 20 + 142 + 8 + 20
    for n, array in enumerate([a for _, a in results] + [truth], 1):
        x = 8 + n * (190 + 8)
        np.testing.assert_array_equal(picture[y : y + 100, x : x + 100], array[top:bottom, left:right])
    # The input column shows the hole blanked (black, tinted red), not the truth.
    crop_in = picture[y : y + 100, 8 : 8 + 100]
    assert tuple(crop_in[150 - top, 230 - left]) == (128, 0, 0)
    with pytest.raises(io.InputError, match="m1: result is"):
        io.comparison_picture(truth, mask, [("m1", truth[:10])])
