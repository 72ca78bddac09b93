"""One mask rule at every entry point: io, the API, infer.py and both SavedModel signatures,
each checked with the same table of cases (tests/mask_cases.py)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import hifill_tf
from hifill_tf import io
from mask_cases import array_cases, expected_hole, file_cases
from shared import INFER, PHOTO, loaded_saved_model, random_generator, random_weights

HEIGHT, WIDTH = 72, 112
EXTENSIONS = {"0/1 PNG": ".png", "0/255 PNG": ".png", "noisy JPEG": ".jpg"}


def _photo():
    return io.read_image(PHOTO)[0][100:100 + HEIGHT, 200:200 + WIDTH].copy()


def _assert_fills_exactly(result, image, hole):
    assert result.shape == image.shape
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert np.mean(np.any(result[hole] != image[hole], axis=-1)) > 0.5  # filled, not copied


@pytest.mark.parametrize("name", list(array_cases(HEIGHT, WIDTH)))
def test_hole_mask(name):
    mask = array_cases(HEIGHT, WIDTH)[name]
    np.testing.assert_array_equal(io.hole_mask(mask), expected_hole(HEIGHT, WIDTH))


@pytest.mark.parametrize("name", list(file_cases(HEIGHT, WIDTH)))
def test_read_mask(name, tmp_path):
    path = tmp_path / f"mask{EXTENSIONS[name]}"
    path.write_bytes(file_cases(HEIGHT, WIDTH)[name])
    np.testing.assert_array_equal(io.read_mask(path) == 255, expected_hole(HEIGHT, WIDTH))


def test_api_inpaint():
    generator = random_generator()
    image, hole = _photo(), expected_hole(HEIGHT, WIDTH)
    for name, mask in array_cases(HEIGHT, WIDTH).items():
        _assert_fills_exactly(hifill_tf.inpaint(image, mask, generator=generator), image, hole)


def test_saved_model_signatures():
    loaded = loaded_saved_model()
    image, hole = _photo(), expected_hole(HEIGHT, WIDTH)
    serve = loaded.signatures["serving_default"]
    for name, mask in array_cases(HEIGHT, WIDTH).items():
        if mask.dtype == np.uint8:  # the signature takes uint8 masks
            result = serve(image=image[None], mask=mask[None, ..., None])["inpainted"][0].numpy()
            _assert_fills_exactly(result, image, hole)
    png = tf.io.encode_png(image).numpy()
    inpaint_bytes = loaded.signatures["inpaint_bytes"]
    for name, data in file_cases(HEIGHT, WIDTH).items():
        out = inpaint_bytes(image_bytes=tf.constant(png), mask_bytes=tf.constant(data))
        result = tf.io.decode_png(out["png_bytes"][0]).numpy()
        _assert_fills_exactly(result, image, hole)


def test_infer_py(tmp_path):
    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    photos.mkdir(), masks.mkdir()
    image = _photo()
    stems = {}
    for k, (name, data) in enumerate(file_cases(HEIGHT, WIDTH).items()):
        stems[name] = f"p{k}"
        io.write_image_atomic(str(photos / f"p{k}.png"), image)
        (masks / f"p{k}{EXTENSIONS[name]}").write_bytes(data)
    result = subprocess.run([sys.executable, INFER, "--input_dir", str(photos), "--mask_dir",
                             str(masks), "--output_dir", str(out), "--weights", random_weights()],
                            capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stdout + result.stderr
    for name, stem in stems.items():
        _assert_fills_exactly(io.read_image(str(out / f"{stem}.png"))[0], image,
                              expected_hole(HEIGHT, WIDTH))
