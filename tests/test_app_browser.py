"""The page of `python -m hifill_tf.app` in a real browser (headless Chromium, Playwright).

Open a photo, paint a stroke with the mouse, grow it, run, download: the download has the
photo's size and format and differs from it only inside the stroke grown by the dilation.
Without /usr/bin/chromium (Debian's `chromium`) or Playwright the tests are skipped with the
reason, except in CI (CI set), where that is a failure: .ci/run installs both.

UPDATE_SCREENSHOT=1 also writes the README's screenshot, docs/app.png.
"""

import importlib.util
import io as _io
import os

import numpy as np
import pytest
from PIL import Image

from hifill_tf import io

import app_page

REPO = app_page.REPO
PHOTO = os.path.join(REPO, "tests", "data", "volna-640x360.jpg")  # see tests/data/README.md
SCREENSHOT = os.path.join(REPO, "docs", "app.png")


def _require_browser():
    missing = None
    for module in ("playwright", "gradio", "fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            missing = f"{module} is not installed (pip install -e '.[app,test]')"
            break
    else:
        if not os.access(app_page.CHROMIUM, os.X_OK):
            missing = (f"no browser at {app_page.CHROMIUM} "
                       "(apt-get install chromium chromium-driver)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(missing)


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    _require_browser()
    instance = app_page.Server()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def browser(server):
    with app_page.browser() as instance:
        yield instance


@pytest.fixture
def page(browser, server):
    instance = app_page.AppPage(browser, server.url)
    yield instance
    assert not instance.blocked, f"the page tried to reach other hosts: {instance.blocked[:5]}"
    instance.close()


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    """A 2000x1125 PNG (the test photo, scaled up): larger than the 1280-pixel preview, at a
    non-integer ratio, and lossless, so that unchanged pixels are bit-identical."""
    path = tmp_path_factory.mktemp("photo") / "volna-2000x1125.png"
    with Image.open(PHOTO) as image:
        image.convert("RGB").resize((2000, 1125), Image.Resampling.LANCZOS).save(path)
    return str(path)


def _capsule(shape, points, radius):
    """Pixels within `radius` of the polyline through `points` (x, y in pixels of `shape`)."""
    height, width = shape
    y, x = np.mgrid[:height, :width].astype(np.float32)
    inside = np.zeros(shape, bool)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        inside |= (x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2 <= radius * radius
    return inside


def test_paint_run_download(page, photo_png, tmp_path):
    from hifill_tf.app.page import BRUSH_SIZE

    page.upload(photo_png)
    assert "2000x1125" in page.status() and "1280x720" in page.status()
    stroke = [(0.40, 0.45), (0.52, 0.52), (0.60, 0.50)]  # fractions of the photo's size
    page.paint(stroke)
    dilate = 6
    page.set_dilation(dilate)
    seconds = page.run()
    print(f"2000x1125 PNG: {seconds:.1f} s from Inpaint to the result")
    if os.environ.get("UPDATE_SCREENSHOT"):
        _screenshot(page)
    path = page.download(str(tmp_path))
    assert os.path.basename(path) == "volna-2000x1125-inpainted.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
    result, _ = io.read_image(path)
    original, _ = io.read_image(photo_png)
    assert result.shape == original.shape

    # Where it may differ: the stroke (brush radius on the 1280x720 preview, plus a preview
    # pixel for its soft edge and one for the nearest-neighbour mapping) at the photo's scale,
    # plus the dilation. Where it must: the middle half of the stroke.
    scale = 2000 / 1280
    points = [(u * 2000, v * 1125) for u, v in stroke]
    allowed = _capsule(original.shape[:2], points, (BRUSH_SIZE + 2) * scale + dilate + 1)
    core = _capsule(original.shape[:2], points, BRUSH_SIZE / 2 * scale)
    changed = np.any(result != original, axis=2)
    assert changed.any()
    assert not np.any(changed & ~allowed), (
        f"{np.count_nonzero(changed & ~allowed)} pixels changed outside the painted stroke")
    assert np.count_nonzero(changed & core) > 0.9 * np.count_nonzero(core)
    # The dilation reached the photo: the hole is wider than the stroke alone.
    without_dilation = _capsule(original.shape[:2], points, (BRUSH_SIZE + 2) * scale)
    assert np.any(changed & ~without_dilation)


def _screenshot(page):
    """docs/app.png: the page after a run, small enough for the README (< 300 KB)."""
    shot = page.page.screenshot()
    image = Image.open(_io.BytesIO(shot)).convert("RGB")
    image = image.resize((1000, round(image.height * 1000 / image.width)),
                         Image.Resampling.LANCZOS)
    os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        SCREENSHOT, optimize=True)
    assert os.path.getsize(SCREENSHOT) < 300_000


def test_undo_clear_and_another_photo(page, photo_png):
    """Undo and the editor's Clear remove the paint (Clear keeps the photo); the photo's
    Clear button lets another photo be opened."""
    page.upload(PHOTO)
    assert "640x360" in page.status() and "full size" in page.status()
    page.paint([(0.3, 0.3), (0.5, 0.4)])
    page.page.get_by_role("button", name="Undo").click()
    assert "Nothing is painted" in page.click_for_error("#run")

    page.paint([(0.3, 0.3), (0.5, 0.4)])
    page.page.get_by_role("button", name="Clear canvas").click()
    page.page.wait_for_timeout(500)
    page.wait_for_editor()
    _, _, width, height = page.image_rect()  # the photo is back
    assert abs(height / width - 360 / 640) < 0.02
    assert "Nothing is painted" in page.click_for_error("#run")

    page.page.locator("#photo").get_by_role("button", name="Clear").click()
    page.page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Open a photo')")
    page.upload(photo_png)
    assert "2000x1125" in page.status()


def test_bad_file_is_named(page, tmp_path):
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"this is not a JPEG")
    page.page.locator("#photo input[type=file]").set_input_files(str(broken))
    message = page.error()
    assert "holiday.jpg" in message and "not an image file" in message
    assert "/tmp" not in message  # the user's file name, not the server's copy


def test_run_without_photo(page):
    assert "Open a photo first" in page.click_for_error("#run")

