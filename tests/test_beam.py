"""The Beam pipeline (`python -m hifill_tf.beam`) on the DirectRunner with worker processes.

The pipeline runs as a user runs it (a subprocess) over small real photos made here from the
repository's own pictures, with the bundled weights; every output must be the library's result
(`hifill_tf.inpaint` + `io.write_image_atomic`, computed in this process) byte for byte.
"""

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

try:
    import apache_beam  # noqa: F401
except ImportError:  # `make test` installs the [beam] extra; CI must never skip these
    if os.environ.get("CI"):
        raise
    pytest.skip("apache-beam is not installed (pip install -e '.[beam]')", allow_module_level=True)

import hifill_tf  # noqa: E402
from hifill_tf import io  # noqa: E402
from hifill_tf.beam import files  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = os.path.join(REPO, "tests", "data", "volna-640x360.jpg")  # see tests/data/README.md
LARGE = os.path.join(REPO, "examples", "volna-5120x2880.jpg")  # see examples/README.md
PANELS = os.path.join(REPO, "examples", "quality", "life-native.jpg")
TWO_WORKERS = ("--direct_num_workers", "2", "--direct_running_mode", "multi_processing")
ONE_WORKER = ("--direct_num_workers", "1", "--direct_running_mode", "in_memory")
ONE_PROCESS = ("--direct_num_workers", "1", "--direct_running_mode", "multi_processing")


@functools.lru_cache(maxsize=None)
def _decoded(path):
    """The photo at `path`, decoded once (the 5120x2880 one gives fifteen of the pictures)."""
    with Image.open(path) as image:
        return image.convert("RGB")


def _picture(path, box=None, size=None):
    image = _decoded(path)
    if box:
        image = image.crop(box)
    if size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image)


def _blob(height, width, cy, cx, ry, rx):
    y, x = np.mgrid[:height, :width]
    return np.where(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1, np.uint8(255), np.uint8(0))


def _save(path, array, **kwargs):
    Image.fromarray(array).save(path, **kwargs)


def _expected(photo, mask, output_name, scratch):
    """The library's bytes for one photo: read, inpaint, write as infer.py does."""
    rgb, _ = io.read_image(photo)
    hole = io.read_mask(mask, rgb.shape)
    path = io.write_image_atomic(os.path.join(scratch, output_name), hifill_tf.inpaint(rgb, hole))
    with open(path, "rb") as f:
        return f.read()


def _run(photos, masks, out, *extra, wait=True, workers=TWO_WORKERS, pattern="*"):
    command = [sys.executable, "-m", "hifill_tf.beam", "--input_pattern", f"{photos}/{pattern}",
               "--mask_dir", masks, "--output_dir", out, *workers, *map(str, extra)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=900)
    print(result.stdout, result.stderr[-5000:])  # shown when a test fails
    return result


def _wait_until_gone(group, timeout=30):
    """Until no process of process group ``group`` is left (SIGKILLed workers die late)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {group} still alive {timeout} s after SIGKILL")


def _tree(folder):
    """Every file below `folder` (hidden ones too) -> (inode, mtime, size)."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            stat = os.stat(os.path.join(parent, name))
            found[os.path.relpath(os.path.join(parent, name), folder)] = (
                stat.st_ino, stat.st_mtime_ns, stat.st_size)
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """20 photos to fill, of several kinds and sizes; one with an empty mask; a corrupt one and
    one without a mask."""
    root = tmp_path_factory.mktemp("beam")
    photos, masks, scratch = root / "photos", root / "masks", root / "scratch"
    for d in (photos, masks, scratch):
        d.mkdir()
    hole = _blob(200, 320, 90, 150, 35, 60)
    good = {
        "a.jpg": _picture(SMALL, (0, 0, 320, 200)),
        "b.png": _picture(SMALL, (320, 160, 640, 360)),
        "c.jpg": _picture(SMALL, size=(320, 200)),
        "d.jpg": _picture(LARGE, (1800, 900, 3400, 1900), (320, 200)),
        "e.png": _picture(PANELS, (1640, 20, 2040, 270), (320, 200)),
        "h.webp": _picture(LARGE, (0, 0, 5120, 2880), (320, 200)),
    }
    mask_names = {"a.jpg": "a.png", "b.png": "b_mask.png", "c.jpg": "c-mask.png",
                  "d.jpg": "d.png", "e.png": "e.png", "h.webp": "h.png"}
    for name, rgb in good.items():
        _save(photos / name, rgb, **({"quality": 92} if name.endswith(".jpg") else {}))
        _save(masks / mask_names[name], hole)
    # Stored landscape, shown portrait (EXIF orientation 6): the mask fits the displayed photo.
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(photos / "f.jpg", _picture(SMALL, (100, 100, 420, 300)), exif=exif, quality=92)
    _save(masks / "f.png", _blob(320, 200, 200, 80, 50, 40))
    # An RGBA photo (alpha dropped, the mask file says where the hole is) and an empty mask.
    _save(photos / "g.png", np.dstack([_picture(SMALL, (200, 50, 520, 250)),
                                       np.full((200, 320), 255, np.uint8)]))
    _save(masks / "g.png", hole)
    _save(photos / "empty.jpg", _picture(SMALL, (300, 0, 620, 200)), quality=92)
    _save(masks / "empty.png", np.zeros((200, 320), np.uint8))
    # Twelve 640x360 photos: four times the pixels of the others, so a run lasts long enough to
    # be killed half way.
    for i in range(12):
        left = 200 * i
        _save(photos / f"p{i:02d}.jpg", _picture(LARGE, (left, 400 + 100 * (i % 5), left + 2560,
                                                         1840 + 100 * (i % 5)), (640, 360)),
              quality=92)
        _save(masks / f"p{i:02d}.png", _blob(360, 640, 120 + 10 * i, 200 + 20 * i, 50, 90))
        mask_names[f"p{i:02d}.jpg"] = f"p{i:02d}.png"
    # The bad ones: a truncated JPEG (its mask exists) and a photo without a mask.
    (photos / "corrupt.jpg").write_bytes((photos / "a.jpg").read_bytes()[:2500])
    _save(masks / "corrupt.png", hole)
    _save(photos / "nomask.png", _picture(SMALL, (10, 10, 330, 210)))

    good_names = sorted(mask_names) + ["empty.jpg", "f.jpg", "g.png"]
    mask_names.update({"f.jpg": "f.png", "g.png": "g.png", "empty.jpg": "empty.png"})
    expected = {name: _expected(photos / name, masks / mask_names[name], name, scratch)
                for name in good_names}
    with pytest.raises(io.InputError) as corrupt:
        io.read_image(photos / "corrupt.jpg")
    reasons = {
        str(photos / "corrupt.jpg"): str(corrupt.value),
        str(photos / "nomask.png"): io.match_masks([str(photos / "nomask.png")], masks)
        .errors[str(photos / "nomask.png")],
    }
    return photos, masks, root, expected, reasons


_SUMMARY = re.compile(r"(\d+) done(?:, (\d+) unchanged \(empty mask\))?"
                      r"(?:, (\d+) skipped \(output exists\))?, (\d+) failed(?:, per photo | in )")


def _summary(result):
    """The closing line's counts {"done", "unchanged", "skipped", "failed"}, parts in order."""
    line = result.stdout.strip().splitlines()[-1]
    match = _SUMMARY.match(line)
    assert match, line
    counts = dict(zip(("done", "unchanged", "skipped", "failed"),
                      (int(value or 0) for value in match.groups())))
    return counts, line


def test_killed_run_then_rerun_fills_every_good_photo_like_the_library(batch):
    """Killed (SIGKILL) after its first output, run again with --skip_existing, then twice more
    (the whole batch, then only the good photos).

    One batch through all the runs: each start costs TensorFlow imports and traces.
    """
    photos, masks, root, expected, reasons = batch
    out = root / "out"
    # One worker process for the run to kill (killed either way; each worker pays for a
    # TensorFlow start and a trace), two for the rerun that fills the rest.
    run = _run(photos, masks, out, wait=False, workers=ONE_PROCESS)
    deadline = time.monotonic() + 600
    written = []
    while not written and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        written = [n for n in (os.listdir(out) if out.exists() else []) if n in expected]
    os.killpg(run.pid, signal.SIGKILL)  # the launcher and its worker processes
    run.wait(timeout=60)
    run.stdout.close()
    _wait_until_gone(run.pid)  # the workers too, before their outputs are counted
    assert written, "the pipeline ended before writing any photo"
    first = sorted(n for n in os.listdir(out) if n in expected)
    assert len(first) < len(expected), "the run ended before it could be killed"
    # What a writer killed between create and rename leaves behind.
    (out / ".p05.jpg.0badf00d.tmp").write_bytes(b"half a JPEG")

    result = _run(photos, masks, out, "--skip_existing")

    assert result.returncode == 1  # some photos failed, as infer.py says
    assert sorted(_tree(out)) == sorted([*expected, "_failures.jsonl"])  # no temporary file
    for name, data in expected.items():
        assert (out / name).read_bytes() == data, name
    lines = [json.loads(line) for line in (out / "_failures.jsonl").read_text().splitlines()]
    assert {line["path"]: line["reason"] for line in lines} == reasons
    assert "cannot decode the image" in reasons[str(photos / "corrupt.jpg")]
    for reason in reasons.values():
        assert reason in result.stderr
    counts, line = _summary(result)
    # The photo with an empty mask is copied unchanged, in this run unless the first wrote it.
    unchanged = 0 if "empty.jpg" in first else 1
    assert counts == dict(done=len(expected) - len(first) - unchanged, unchanged=unchanged,
                          skipped=len(first), failed=2), line
    assert ", per photo " in line

    # Once more with --skip_existing (one worker is enough): nothing is written, not even
    # _failures.jsonl (unchanged).
    before = _tree(out)
    again = _run(photos, masks, out, "--skip_existing", workers=ONE_WORKER)
    assert again.returncode == 1
    assert _tree(out) == before
    counts, line = _summary(again)
    assert counts == dict(done=0, unchanged=0, skipped=len(expected), failed=2), line

    # Only the good photos: nothing fails, so the exit status is 0 and _failures.jsonl is
    # rewritten empty; every photo is left as it was.
    good = _run(photos, masks, out, "--skip_existing", workers=ONE_WORKER, pattern="p*.jpg")
    assert good.returncode == 0, good.stderr[-3000:]
    assert (out / "_failures.jsonl").read_text() == ""
    after = _tree(out)
    del before["_failures.jsonl"], after["_failures.jsonl"]
    assert after == before
    counts, line = _summary(good)
    assert counts == dict(done=0, unchanged=0, skipped=12, failed=0), line


# ---------------------------------------------------------------------------------------------
# The pieces, without a pipeline
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", [".jpg", ".png", ".webp", ".tif", ".bmp"])
def test_encode_image_writes_the_bytes_of_write_image_atomic(tmp_path, extension):
    rgb = _picture(SMALL, (0, 0, 64, 48))
    path = io.write_image_atomic(tmp_path / f"x{extension}", rgb, quality=90)
    with open(path, "rb") as f:
        assert io.encode_image(rgb, f"x{extension}", 90) == f.read()
    with pytest.raises(io.InputError, match="out.jpg: JPEG cannot store an alpha channel"):
        io.encode_image(np.zeros((4, 4, 4), np.uint8), "out.jpg")


def test_atomic_write_and_stale_temporary_files(tmp_path):
    target = str(tmp_path / "sub" / "a.png")
    files.write_atomic(target, b"new")
    files.write_atomic(target, b"newer")
    assert os.listdir(tmp_path / "sub") == ["a.png"]
    assert open(target, "rb").read() == b"newer"
    stale = tmp_path / "sub" / ".b.jpg.deadbeef.tmp"
    stale.write_bytes(b"x")
    keep = tmp_path / "sub" / ".hidden"
    keep.write_bytes(b"y")
    assert files.remove_temps(str(tmp_path)) == [str(stale)]
    assert sorted(os.listdir(tmp_path / "sub")) == [".hidden", "a.png"]


@pytest.mark.parametrize("pattern, root", [
    ("/data/photos/*.jpg", "/data/photos"),
    ("/data/photos/", "/data/photos"),
    ("/data/photos/a*.jpg", "/data/photos"),
    ("/data/photos/**/*.png", "/data/photos"),
    ("/data/photos/one.jpg", "/data/photos"),
    ("gs://bucket/in/**", "gs://bucket/in"),
])
def test_outputs_keep_their_path_below_the_pattern_folder(pattern, root):
    assert files.pattern_root(pattern) == root


def test_model_is_loaded_by_the_first_photo_with_a_hole_once(monkeypatch):
    # A worker whose photos all have empty masks (or a rerun that skips them all) loads nothing.
    from hifill_tf.beam import model_handler
    from hifill_tf.beam.pipeline import Job
    from hifill_tf.loading import ModelError

    loads = []

    def load_inpainter(weights, saved_model, max_pixels, feather):
        loads.append((weights, saved_model, max_pixels, feather))
        if weights == "broken.npz":
            raise ModelError("broken.npz: not a usable generator weights file")
        return lambda image, mask, name=None: 255 - image

    monkeypatch.setattr(model_handler, "load_inpainter", load_inpainter)
    handler = model_handler.HiFillModelHandler("w.npz", None, 4096, 2)
    model = handler.load_model()
    image = np.full((4, 6, 3), 10, np.uint8)
    empty, hole = np.zeros((4, 6), np.uint8), np.full((4, 6), 255, np.uint8)
    job = Job("a.png", "a_mask.png", "out/a.png")
    [result] = handler.run_inference([(job, image, empty)], model)
    assert result.inference.status == "unchanged" and loads == []
    for _ in range(2):
        [result] = handler.run_inference([(job, image, hole)], model)
        assert result.inference.status == "done" and (result.inference.image == 245).all()
    assert loads == [("w.npz", None, 4096, 2)]  # once, with the handler's settings

    broken = model_handler.HiFillModelHandler("broken.npz")
    with pytest.raises(ModelError, match="broken.npz"):  # fails the pipeline, not one photo
        broken.run_inference([(job, image, hole)], broken.load_model())
