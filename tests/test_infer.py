"""End-to-end tests of infer.py, run as a user runs it (a subprocess), on small photos.

Each run pays for importing TensorFlow and, when it fills a hole, for tracing the graph, so
every run checks several things at once. The model has random weights: these tests check the
front end (files, masks, errors, what is written where), not the quality of the fill.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hifill_tf import io
from shared import INFER, PHOTO, REPO, WITHOUT_TENSORFLOW, random_saved_model, random_weights

MAX_PIXELS = "16384"  # network input 128x80 for 256x144 photos: CRA up-samples by 2


def _infer(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, INFER, *map(str, args)], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=600)
    print(result.stdout, result.stderr)  # shown when a test fails
    return result


def _photo(left, top, width=256, height=144):
    """A crop of the bundled test photo, uint8 [height, width, 3]."""
    with Image.open(PHOTO) as image:
        return np.asarray(image.convert("RGB").crop((left, top, left + width, top + height)))


def _blob(height, width, cy, cx, ry, rx):
    """An elliptical hole mask, uint8 [height, width], 255 = hole."""
    y, x = np.mgrid[:height, :width]
    return np.where(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1, np.uint8(255), np.uint8(0))


def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def _assert_filled(output_path, image, hole):
    """Outside the hole the output is the input, bit for bit; inside, something changed."""
    output, _ = io.read_image(output_path)
    assert output.shape == image.shape
    keep = hole == 0
    np.testing.assert_array_equal(output[keep], image[keep])
    assert np.any(output[~keep] != image[~keep])


@pytest.fixture
def weights():
    return random_weights()


def test_batch_goes_on_past_bad_files_and_lists_them(tmp_path, weights):
    photos, masks, out, pictures = (tmp_path / d for d in ("photos", "masks", "out", "pictures"))
    for d in (photos, masks, out):
        d.mkdir()
    good = _photo(300, 0)
    good_hole = _blob(144, 256, 60, 150, 30, 60)
    _save(photos / "good.png", good)
    _save(masks / "good.png", good_hole)
    # Stored landscape, displayed portrait (EXIF 6 = rotate 90 degrees clockwise): the mask is
    # drawn on the displayed photo, so it only fits if infer.py applies the orientation.
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(photos / "rotated.jpg", _photo(0, 100), exif=exif, quality=95)
    rotated_hole = _blob(256, 144, 120, 70, 40, 30)
    _save(masks / "rotated-mask.png", rotated_hole)
    # A mask at half the photo's size, fixed by --resize_mask.
    small = _photo(100, 200)
    _save(photos / "small.png", small)
    _save(masks / "small.png", _blob(72, 128, 36, 64, 15, 30))
    empty = _photo(380, 200)
    _save(photos / "empty.png", empty)
    _save(masks / "empty.png", np.zeros((144, 256), np.uint8))
    # Bad ones: a truncated JPEG, a photo without mask, an output that already exists.
    _save(photos / "whole.jpg", _photo(0, 0), quality=95)
    (photos / "corrupt.jpg").write_bytes((photos / "whole.jpg").read_bytes()[:3000])
    (photos / "whole.jpg").unlink()
    _save(masks / "corrupt.png", good_hole)
    _save(photos / "nomask.png", _photo(50, 50))
    _save(photos / "exists.png", _photo(60, 60))
    _save(masks / "exists.png", good_hole)
    (out / "exists.png").write_bytes(b"old")

    result = _infer("--input_dir", photos, "--mask_dir", masks, "--output_dir", out,
                    "--side_by_side_dir", pictures, "--resize_mask", "--weights", weights,
                    "--max_pixels", MAX_PIXELS)

    assert result.returncode == 1
    assert sorted(os.listdir(out)) == ["empty.png", "exists.png", "good.png", "rotated.jpg",
                                       "small.png"]
    assert sorted(os.listdir(pictures)) == ["empty.jpg", "good.jpg", "rotated.jpg", "small.jpg"]
    _assert_filled(out / "good.png", good, good_hole)
    small_hole = io.read_mask(masks / "small.png", small.shape, resize=True)
    _assert_filled(out / "small.png", small, small_hole)
    np.testing.assert_array_equal(io.read_image(out / "empty.png")[0], empty)
    assert (out / "exists.png").read_bytes() == b"old"
    rotated, _ = io.read_image(photos / "rotated.jpg")
    rotated_out, _ = io.read_image(out / "rotated.jpg")
    assert rotated.shape == rotated_out.shape == (256, 144, 3)
    keep = rotated_hole == 0
    assert np.abs(rotated_out[keep].astype(int) - rotated[keep]).mean() < 3  # JPEG re-encoded
    # Per-photo lines with timings, the empty mask said, one progress line per photo (no TTY).
    assert "inpaint" in result.stdout and "empty.png" in result.stdout
    assert "mask is empty" in result.stdout and "unchanged" in result.stdout
    assert "[1/6" in result.stderr and "[6/6 100%" in result.stderr  # nomask.png never starts
    # The summary lists each failure, with its file and reason, then the counts.
    failures = result.stderr[result.stderr.index("3 failed:"):]
    assert "corrupt.jpg" in failures and "corrupt" in failures.split("corrupt.jpg", 1)[1]
    assert "nomask.png: no mask" in failures
    assert "exists.png: exists; pass --overwrite" in failures
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("3 done, 1 unchanged (empty mask), 3 failed in ")


def test_rgba_photo_with_mask_from_alpha_through_a_saved_model(tmp_path):
    model = random_saved_model()
    # 768x432 is above the export's 512x512 budget: the network runs at 384x224 (f = 2) and
    # CRA up-samples its fill.
    rgb = np.asarray(Image.fromarray(_photo(0, 0, 640, 360)).resize((768, 432)))
    hole = _blob(432, 768, 210, 360, 75, 150)
    _save(tmp_path / "cutout.png", np.dstack([rgb, 255 - hole]))  # transparent = hole
    output = tmp_path / "out" / "filled.png"

    result = _infer("--image", tmp_path / "cutout.png", "--mask_from_alpha", "--dilate", 3,
                    "--output", output, "--side_by_side", tmp_path / "pair.png",
                    "--saved_model", model)

    assert result.returncode == 0
    assert "SavedModel" in result.stdout and "inpaint" in result.stdout
    _assert_filled(output, rgb, io.dilate_mask(hole, 3))
    assert Image.open(output).mode == "RGB"
    assert Image.open(tmp_path / "pair.png").size[0] > 768  # two panels


def test_refuses_to_overwrite_its_input(tmp_path, weights):
    photo = _save(tmp_path / "photo.png", _photo(0, 0))
    mask = _save(tmp_path / "mask.png", _blob(144, 256, 70, 120, 25, 50))
    before = open(photo, "rb").read()

    result = _infer("--image", photo, "--mask", mask, "--output", photo, "--overwrite",
                    "--weights", weights)

    assert result.returncode == 1
    assert f"refusing to overwrite the input {photo}" in result.stderr
    assert open(photo, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["mask.png", "photo.png"]  # no temporary files


def test_mask_of_another_size_names_the_mask_and_the_fix(tmp_path, weights):
    photo = _save(tmp_path / "photo.png", _photo(0, 0))
    mask = _save(tmp_path / "mask.png", _blob(72, 128, 36, 64, 15, 30))

    result = _infer("--image", photo, "--mask", mask, "--output", tmp_path / "out.png",
                    "--weights", weights)

    assert result.returncode == 1
    assert f"{mask}: mask is 128x72 but the image is 256x144" in result.stderr
    assert "--resize_mask" in result.stderr
    assert not (tmp_path / "out.png").exists()


# absl exits 1 after --help and on an unknown flag; infer.py's own flag checks exit 2.
@pytest.mark.parametrize("args,code", [(["--help"], 1), (["--image", "a.jpg"], 2), (["--bogus"], 1)])
def test_help_and_flag_errors_answer_without_tensorflow(args, code):
    # Cold start: --help and bad flags must not pay for importing TensorFlow (seconds).
    result = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, INFER, *args],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert f"exit {code} tensorflow imported: False" in result.stdout, result.stdout + result.stderr
