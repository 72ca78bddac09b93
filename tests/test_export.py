"""Tests for hifill_tf.export and export.py: the SavedModel for TensorFlow Serving.

One export of a random-weight generator by export.py (shared.random_export) is shared by
the tests of a SavedModel (tracing the generator and the CRA graph takes ~15 s); its signatures are checked against
hifill_tf.api.inpaint and the generator itself, bit for bit.
"""

import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from hifill_tf import api
from hifill_tf import io as hio
from hifill_tf.export import saved_model
from hifill_tf.export.saved_model import export_saved_model
from hifill_tf.models.generator import Generator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A real photo: the shared 2560x1600 one, else the small one in the repo; else synthetic texture.
PHOTOS = ["/work/shared/data/photos/kite.jpg", os.path.join(REPO, "tests", "data", "volna-640x360.jpg")]


def _photo(height, width):
    """A real photo resized to ``width`` and cropped to ``height``; synthetic texture without one."""
    found = [path for path in PHOTOS if os.path.exists(path)]
    if found:
        with Image.open(found[0]) as photo:
            photo.draft("RGB", (width, width))
            photo = photo.convert("RGB")
            resized = photo.resize((width, max(height, round(photo.height * width / photo.width))))
        return np.asarray(resized)[:height].copy()
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    rng = np.random.default_rng(height * width)
    texture = np.stack([np.sin(xx / 7) + np.cos(yy / 11), np.sin((xx + yy) / 13), np.cos(xx * yy / 900)], -1)
    noise = rng.normal(0, 0.15, texture.shape)
    return np.clip((texture + noise + 2) * 60, 0, 255).astype(np.uint8)


def _mask(height, width):
    """uint8 [H, W]: a rectangle and a stroke of 255 and 128 (holes) on 0, with a band of 127 (kept)."""
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3:height // 2, width // 4:width // 2] = 255
    mask[height // 3:height // 2, width // 2:width // 2 + 20] = 128
    rows = np.arange(height)
    cols = (rows * width // (2 * height) + width // 2).clip(0, width - 1)
    for d in range(-4, 5):
        mask[rows[height // 2:], (cols[height // 2:] + d).clip(0, width - 1)] = 255
    mask[5:25, :] = 127  # just below the threshold: not a hole
    return mask


@pytest.fixture(scope="module")
def exported():
    """export.py --weights on a random generator (shared.random_export, the one SavedModel
    of the tests, shared with test_infer, test_mask_rule and test_notebook in one unit).

    The export is the command a user runs (one trace of the generator and the CRA graph, the
    slow part); the in-process generator has the same float16 weights.
    """
    from shared import loaded_saved_model, random_export, random_generator

    export = random_export()
    return types.SimpleNamespace(weights=export.weights, generator=random_generator(),
                                 path=pathlib.Path(export.path), command=export.command,
                                 stdout=export.stdout, loaded=loaded_saved_model())


def _serve(exported, image, mask):
    out = exported.loaded.signatures["serving_default"](
        image=tf.constant(image[None]), mask=tf.constant(mask[None, ..., None]))
    assert set(out) == {"inpainted"}
    return out["inpainted"].numpy()[0]


def _run(command, **kwargs):
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, **kwargs)


def _saved_model_cli(*args):
    """`saved_model_cli ARGS` as its console script runs it (the module's main(), under absl's
    app.run), in this process: the same code without a second TensorFlow start (~6 s each).
    Returns (exit code, stdout)."""
    from absl import flags, logging
    from tensorflow.python.tools import saved_model_cli

    argv, verbosity, out = sys.argv, logging.get_verbosity(), io.StringIO()
    sys.argv = ["saved_model_cli", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
            saved_model_cli.main()
    finally:  # leave absl's global state as it was for the next test of this worker
        sys.argv = argv
        flags.FLAGS.unparse_flags()
        logging.set_verbosity(verbosity)
    return exited.value.code or 0, out.getvalue()


@pytest.mark.parametrize("height,width", [(300, 517), (560, 620)])
def test_serving_default_matches_api(exported, height, width):
    # 300x517 runs the network at native size (f = 1); 560x620 is above 512*512 pixels, so the
    # network sees it averaged down by f = 2 and CRA adds the residuals back (Eq. 4).
    image, mask = _photo(height, width), _mask(height, width)
    result = _serve(exported, image, mask)
    assert result.shape == image.shape and result.dtype == np.uint8
    hole = mask > 127
    expected = api.inpaint(image, hole, generator=exported.generator)
    np.testing.assert_array_equal(result, expected)  # the same graph, so bit for bit
    np.testing.assert_array_equal(result[~hole], image[~hole])
    assert np.mean(result[hole] != image[hole]) > 0.5  # the hole was filled, not copied


def test_serving_default_bad_input(exported):
    serve = exported.loaded.signatures["serving_default"]
    image = _photo(48, 64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the mask and the image must have the same height and width"):
        serve(image=image[None], mask=np.zeros((1, 48, 60, 1), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="covers the whole image"):
        serve(image=image[None], mask=np.full((1, 48, 64, 1), 255, np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 16 pixels"):
        serve(image=image[None, :8], mask=np.full((1, 8, 64, 1), 255, np.uint8))
    # A mask of ones is a 0/1 mask covering everything (never silently an empty one).
    with pytest.raises(tf.errors.InvalidArgumentError, match="covers the whole image"):
        serve(image=image[None], mask=np.ones((1, 48, 64, 1), np.uint8))


def _encode(array, fmt, **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_inpaint_bytes_png_and_jpeg(exported):
    image, mask = _photo(300, 517), _mask(300, 517)
    inpaint_bytes = exported.loaded.signatures["inpaint_bytes"]
    red = np.zeros(mask.shape + (3,), np.uint8)
    red[..., 0] = mask  # a mask painted in red: the brightest channel decides
    cases = [
        # PNG photo, RGB PNG mask, as scalars (REST "inputs": {"image_bytes": {"b64": ...}}).
        (_encode(image, "PNG"), _encode(red, "PNG"), lambda b: tf.constant(b)),
        # JPEG photo, grey JPEG mask, as [1] vectors (REST "instances" rows).
        (_encode(image, "JPEG", quality=90), _encode(mask, "JPEG", quality=95), lambda b: tf.constant([b])),
    ]
    for image_data, mask_data, wrap in cases:
        out = inpaint_bytes(image_bytes=wrap(image_data), mask_bytes=wrap(mask_data))
        assert set(out) == {"png_bytes"} and out["png_bytes"].shape == (1,)
        result = np.asarray(Image.open(io.BytesIO(out["png_bytes"].numpy()[0])))
        decoded = tf.io.decode_image(image_data, channels=3).numpy()
        grey = tf.io.decode_image(mask_data, channels=0).numpy().max(axis=-1)
        np.testing.assert_array_equal(result, _serve(exported, decoded, grey))
        np.testing.assert_array_equal(result[grey <= 127], decoded[grey <= 127])


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P"])
def test_mask_bytes_decoded_like_read_mask(tmp_path, mode):
    # hifill_tf.io.read_mask is the reference: brightest channel, composited over black, > 127.
    rng = np.random.default_rng(3)
    values = rng.integers(0, 256, (40, 56, 4), dtype=np.uint8)
    values[:20, :, 3] = 255  # opaque half
    if mode == "P":
        picture = Image.fromarray(values[..., :3]).quantize(64)
    else:
        channels = {"L": [0], "RGB": [0, 1, 2], "RGBA": [0, 1, 2, 3], "LA": [0, 3]}[mode]
        picture = Image.fromarray(values[..., channels].squeeze(), mode)
    path = tmp_path / "mask.png"
    picture.save(path)
    decoded = saved_model._decode_mask(tf.constant(path.read_bytes())).numpy()[..., 0]
    np.testing.assert_array_equal(decoded > 127, hio.read_mask(path) == 255)


def test_inpaint_bytes_bad_input(exported):
    inpaint_bytes = exported.loaded.signatures["inpaint_bytes"]
    image = _encode(_photo(48, 64), "PNG")
    small = _encode(np.full((48, 60), 255, np.uint8), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match="the mask and the image must have the same height and width"):
        inpaint_bytes(image_bytes=tf.constant(image), mask_bytes=tf.constant(small))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes: inpaint_bytes takes one encoded image"):
        inpaint_bytes(image_bytes=tf.constant([image, image]), mask_bytes=tf.constant(small))
    with pytest.raises(tf.errors.InvalidArgumentError, match="image file format"):
        inpaint_bytes(image_bytes=tf.constant(b"not an image"), mask_bytes=tf.constant(small))


def test_generator_512(exported):
    rng = np.random.default_rng(4)
    image = rng.uniform(-1, 1, (1, 512, 512, 3)).astype(np.float32)
    mask = np.zeros((1, 512, 512, 1), np.float32)
    mask[:, 100:260, 200:330] = 1
    out = exported.loaded.signatures["generator_512"](image=tf.constant(image), mask=tf.constant(mask))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "coarse": (1, 512, 512, 3), "refined": (1, 512, 512, 3), "inpainted": (1, 512, 512, 3),
        "scores": (1, 1024, 1024)}
    expected = exported.generator(image, mask)
    for key, value in out.items():
        np.testing.assert_array_equal(value.numpy(), expected[key].numpy(), err_msg=key)


def test_describe_signatures(exported):
    expected = [
        "serving_default: image uint8 [1, ?, ?, 3], mask uint8 [1, ?, ?, 1] -> inpainted uint8 [1, ?, ?, 3]",
        "inpaint_bytes: image_bytes string unknown rank, mask_bytes string unknown rank -> png_bytes string [1]",
        "generator_512: image float32 [?, 512, 512, 3], mask float32 [?, 512, 512, 1] -> "
        "coarse float32 [?, 512, 512, 3], inpainted float32 [?, 512, 512, 3], "
        "refined float32 [?, 512, 512, 3], scores float32 [?, 1024, 1024]",
    ]
    printed = exported.stdout.split("Signatures:\n")[1].split("Inspect with")[0].splitlines()
    assert [line.strip() for line in printed] == expected  # what export.py said it exported


def test_saved_model_cli_show(exported):
    code, text = _saved_model_cli("show", "--dir", exported.path, "--all")
    assert code == 0, text
    blocks = {name: text.split(f"signature_def['{name}']")[1].split("signature_def[")[0]
              for name in ("serving_default", "inpaint_bytes", "generator_512")}
    assert blocks["serving_default"].count("DT_UINT8") == 3
    assert "shape: (1, -1, -1, 3)" in blocks["serving_default"]
    assert blocks["inpaint_bytes"].count("DT_STRING") == 3
    assert "inputs['image_bytes']" in blocks["inpaint_bytes"]
    assert "outputs['png_bytes']" in blocks["inpaint_bytes"]
    assert blocks["generator_512"].count("DT_FLOAT") == 6
    assert "shape: (-1, 1024, 1024)" in blocks["generator_512"]
    for block in blocks.values():
        assert "Method name is: tensorflow/serving/predict" in block


def test_saved_model_cli_run(exported, tmp_path):
    image, mask = _photo(64, 96), _mask(64, 96)
    np.save(tmp_path / "img.npy", image[None])
    np.save(tmp_path / "mask.npy", mask[None, ..., None])
    code, text = _saved_model_cli("run", "--dir", exported.path, "--tag_set", "serve",
                                  "--signature_def", "serving_default", "--inputs",
                                  f"image={tmp_path / 'img.npy'};mask={tmp_path / 'mask.npy'}",
                                  "--outdir", tmp_path / "out")
    assert code == 0, text
    result = np.load(tmp_path / "out" / "inpainted.npy")
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result[0], _serve(exported, image, mask))


def _exported_variables(path):
    """The export's variables, in the order of generator.variables."""
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    count = sum(1 for k in reader.get_variable_to_shape_map() if k.startswith("generator_variables/"))
    return [reader.get_tensor(f"generator_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE") for i in range(count)]


def _assert_same_weights(path, generator):
    values = _exported_variables(path)
    assert len(values) == len(generator.variables)
    for value, variable in zip(values, generator.variables):
        np.testing.assert_array_equal(value, variable.numpy(), err_msg=variable.path)


def test_export_script_weights(exported):
    output = exported.path
    assert f"saved_model_cli show --dir {output} --all" in exported.stdout
    _assert_same_weights(output, exported.generator)
    assert os.listdir(output.parent) == ["1"]  # no staging directory left behind

    from shared import WITHOUT_TENSORFLOW

    # Refused before TensorFlow loads (the check needs none): the message comes in a fraction of a
    # second, and the export is untouched.
    before = (output / "saved_model.pb").stat().st_mtime_ns
    refused = _run([sys.executable, "-c", WITHOUT_TENSORFLOW, *exported.command[1:]])
    assert "tensorflow imported: False" in refused.stdout, refused.stdout + refused.stderr
    assert "exit export.py: " in refused.stdout and "not empty" in refused.stdout
    assert "--overwrite" in refused.stdout
    assert (output / "saved_model.pb").stat().st_mtime_ns == before


@pytest.mark.slow
def test_export_script_checkpoint(tmp_path):
    from hifill_tf import loading
    from hifill_tf.training import checkpoints, trainer

    # A tiny training run: config.json and a checkpoint as train.py writes them.
    model_dir = tmp_path / "run"
    config = dict(trainer.DEFAULTS, image_size=64, batch_size=1)
    gan = trainer.build_gan(config)
    checkpoints.checkpoint_for(gan).save(str(model_dir / "checkpoints" / "ckpt"))
    (model_dir / "config.json").write_text(json.dumps(config))
    restored, source = loading.generator_from(str(model_dir))
    assert source.kind == "checkpoint" and source.path.endswith("ckpt-1")
    for a, b in zip(restored.weights, gan.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    output = tmp_path / "hifill" / "1"
    output.mkdir(parents=True)
    (output / "saved_model.pb").write_bytes(b"an older export")
    done = _run([sys.executable, "export.py", "--output_dir", str(output),
                 "--checkpoint", str(model_dir), "--overwrite"])
    assert done.returncode == 0, done.stderr
    assert "ckpt-1" in done.stdout
    _assert_same_weights(output, gan.generator)
    assert os.listdir(output.parent) == ["1"]


def test_export_script_errors(tmp_path):
    from shared import WITHOUT_TENSORFLOW

    # --help and these errors answer before TensorFlow is imported (it takes seconds).
    script = [sys.executable, "-c", WITHOUT_TENSORFLOW, "export.py", "--output_dir",
              str(tmp_path / "out")]
    # (sys.exit's message is the exit code the wrapper prints.)
    both = _run(script + ["--weights", "a.npz", "--checkpoint", "run"])
    assert ("exit export.py: give --weights or --checkpoint, not both tensorflow imported: False"
            in both.stdout), both.stdout + both.stderr
    missing = _run(script + ["--weights", str(tmp_path / "nope.npz")])
    assert "nope.npz: no such weights file tensorflow imported: False" in missing.stdout
    helped = _run(script[:4] + ["--help"])
    assert "--max_pixels" in helped.stdout + helped.stderr
    assert "exit 1 tensorflow imported: False" in helped.stdout
    assert not (tmp_path / "out").exists()


class _TinyModule(tf.Module):
    """Stands in for HiFillServing where only the directory handling is under test."""

    def __init__(self, generator, max_pixels):
        super().__init__()
        self.scale = tf.Variable(2.0)
        self.double = tf.function(lambda x: {"y": x * self.scale},
                                  input_signature=[tf.TensorSpec([None], tf.float32, name="x")])

    def signatures(self):
        return {"serving_default": self.double.get_concrete_function()}


def test_export_directory_handling(tmp_path, monkeypatch):
    monkeypatch.setattr(saved_model, "HiFillServing", _TinyModule)
    target = tmp_path / "models" / "1"
    export_saved_model(None, target)
    assert sorted(os.listdir(target.parent)) == ["1"]
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o777 & ~_umask())

    with pytest.raises(FileExistsError, match="not empty.*overwrite"):
        export_saved_model(None, target)

    # A failure while writing leaves the old export in place and no staging directory.
    def broken_save(module, path, signatures):
        open(os.path.join(path, "half_written"), "w").close()
        raise RuntimeError("disk full")

    real_save = tf.saved_model.save
    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(None, target, overwrite=True)
    monkeypatch.setattr(tf.saved_model, "save", real_save)
    assert sorted(os.listdir(target.parent)) == ["1"]
    assert sorted(os.listdir(target)) == sorted(["assets", "fingerprint.pb", "saved_model.pb", "variables"])

    export_saved_model(None, target, overwrite=True)
    assert sorted(os.listdir(target.parent)) == ["1"]
    loaded = tf.saved_model.load(str(target))  # kept: its functions hold only weak references
    assert float(loaded.double(tf.constant([1.5]))["y"][0]) == 3.0

    # overwrite never replaces a folder that is not a SavedModel, nor a file.
    other = tmp_path / "photos"
    other.mkdir()
    (other / "kite.jpg").write_bytes(b"")
    with pytest.raises(FileExistsError, match="not a SavedModel"):
        export_saved_model(None, other, overwrite=True)
    assert os.listdir(other) == ["kite.jpg"]
    with pytest.raises(FileExistsError, match="not a directory"):
        export_saved_model(None, other / "kite.jpg", overwrite=True)
    (tmp_path / "empty").mkdir()
    export_saved_model(None, tmp_path / "empty")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="max_pixels must be at least 256"):
        export_saved_model(Generator(), tmp_path / "small", max_pixels=255)
    assert not (tmp_path / "small").exists()
    assert (tmp_path / "empty" / "saved_model.pb").exists()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
