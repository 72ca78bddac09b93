"""IOPaint's own web page against our server, in headless Chromium: the REST API's real client.

IOPaint 1.6.0's built page is taken from its wheel at set-up (`pip download --no-deps`, into
pytest's cache folder, never committed) and served by our server in place of the Gradio page
(`--web_app`). The test opens the settings (they list the one model, "hifill"), opens a
photo, draws a stroke, waits for the result, downloads it, and checks: every request the page
made was answered without an error status, no error toast and no uncaught error or console
error, and the download differs from the photo only inside the hole the page sent (read with
IOPaint's mask rule), which lies under the stroke.

Without Chromium, Playwright or the wheel (no network) the test is skipped with the reason,
except in CI (CI set), where that is a failure.
"""

import base64
import importlib.util
import io as _io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import app_page

IOPAINT = "iopaint==1.6.0"
PHOTO = os.path.join(app_page.REPO, "tests", "data", "volna-640x360.jpg")

pytestmark = pytest.mark.slow


def _skip_or_fail(reason):
    if os.environ.get("CI"):
        pytest.fail(f"the IOPaint page test must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def web_app(request):
    """IOPaint's built page (index.html and assets/), extracted from its wheel once."""
    for module in ("playwright", "fastapi", "uvicorn", "socketio"):
        if importlib.util.find_spec(module) is None:
            _skip_or_fail(f"{module} is not installed (pip install -e '.[app,test]')")
    if not os.access(app_page.CHROMIUM, os.X_OK):
        _skip_or_fail(f"no browser at {app_page.CHROMIUM} (apt-get install chromium)")
    folder = str(request.config.cache.mkdir(IOPAINT.replace("==", "-")))
    page = os.path.join(folder, "web_app")
    if not os.path.isfile(os.path.join(page, "index.html")):
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                                 "--quiet", IOPAINT, "-d", folder],
                                capture_output=True, text=True, timeout=300)
        wheels = [f for f in os.listdir(folder) if f.endswith(".whl")]
        if result.returncode or not wheels:
            _skip_or_fail(f"pip download {IOPAINT} failed: {result.stderr.strip()[-300:]}")
        with zipfile.ZipFile(os.path.join(folder, wheels[0])) as wheel:
            for name in wheel.namelist():
                if name.startswith("iopaint/web_app/"):
                    target = os.path.join(page, name[len("iopaint/web_app/"):])
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as f:
                        f.write(wheel.read(name))
    return page


@pytest.fixture(scope="module")
def server_url(web_app):
    from hifill_tf.app.server import create_app
    from hifill_tf.app.service import Inpainting

    service = Inpainting.load()  # the bundled model, shared with test_app.py (one unit)
    with app_page.serving(create_app(service, ui=False, web_app=web_app)) as port:
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    """A 1600x900 PNG (the test photo scaled up): lossless, so unchanged pixels are exact."""
    path = tmp_path_factory.mktemp("photo") / "volna-1600x900.png"
    with Image.open(PHOTO) as image:
        image.convert("RGB").resize((1600, 900), Image.Resampling.LANCZOS).save(path)
    return str(path)


def test_iopaint_page_inpaints_and_downloads(server_url, photo_png, tmp_path):
    problems, failed, blocked, sent = [], [], [], {}

    def route(route_):
        if route_.request.url.startswith((server_url, "data:", "blob:")):
            route_.continue_()
        else:
            blocked.append(route_.request.url)
            route_.abort()

    def on_response(response):
        if response.status >= 400:
            failed.append(f"{response.status} {response.request.method} {response.url}")
        if response.url.endswith("/api/v1/inpaint"):
            sent["request"] = json.loads(response.request.post_data)
            sent["headers"] = response.headers

    with app_page.browser() as browser:
        context = browser.new_context(viewport=app_page.VIEWPORT, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.route("**/*", route)
        page.on("response", on_response)
        page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
        page.on("console", lambda m: problems.append(f"console: {m.text}")
                if m.type == "error" else None)
        page.goto(server_url)
        page.wait_for_load_state("networkidle")
        # The settings gear shows once server-config answers as the page expects; its dialog
        # lists the one model.
        gear = page.locator("header button:has(svg.lucide-settings)")
        gear.wait_for(state="visible", timeout=30_000)
        gear.click()
        page.get_by_role("dialog").wait_for(state="visible")
        page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / "iopaint-settings.png"))
        settings_text = page.get_by_role("dialog").inner_text()
        page.keyboard.press("Escape")
        page.get_by_role("dialog").wait_for(state="hidden")

        page.locator("input[type=file]").first.set_input_files(photo_png)
        canvas = page.locator("canvas").first
        canvas.wait_for(state="visible")
        page.wait_for_timeout(1000)  # the page fits the photo to the window
        box = canvas.bounding_box()
        stroke = [(0.40, 0.45), (0.52, 0.52), (0.60, 0.50)]  # fractions of the photo
        points = [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in stroke]
        with page.expect_response(lambda r: r.url.endswith("/api/v1/inpaint")) as answer:
            page.mouse.move(*points[0])
            page.mouse.down()
            for point in points[1:]:
                page.mouse.move(*point, steps=8)
            page.mouse.up()
        assert answer.value.status == 200, answer.value.text()
        page.wait_for_timeout(1500)  # the page shows the result
        page.screenshot(path=str(tmp_path / "iopaint-page.png"))
        toasts = page.locator("ol li").all_inner_texts()

        download_button = page.locator("button:has(svg.lucide-download)")
        with page.expect_download() as download:
            download_button.click()
        path = str(tmp_path / download.value.suggested_filename)
        download.value.save_as(path)
        context.close()

    assert not blocked, f"the page tried to reach other hosts: {blocked[:5]}"
    assert not failed, f"requests that failed: {failed}"
    assert not toasts, f"toasts shown: {toasts}"
    assert not problems, problems
    assert "hifill" in settings_text, settings_text
    assert sent["headers"]["x-seed"] == str(sent["request"]["sd_seed"])

    # The hole the page sent, read as IOPaint reads it; the stroke lies in it.
    mask_file = sent["request"]["mask"].partition(",")[2]
    with Image.open(_io.BytesIO(base64.b64decode(mask_file))) as mask_image:
        hole = np.asarray(mask_image.convert("L")) > 127
    original = np.asarray(Image.open(photo_png).convert("RGB"))
    assert hole.shape == original.shape[:2]
    for u, v in stroke:
        assert hole[int(v * 900), int(u * 1600)], (u, v)
    with Image.open(path) as image:
        assert image.size == (1600, 900)
        result = np.asarray(image.convert("RGB"))
    changed = np.any(result != original, axis=2)
    assert not np.any(changed & ~hole), (
        f"{np.count_nonzero(changed & ~hole)} pixels changed outside the hole")
    assert np.count_nonzero(changed & hole) > 0.5 * np.count_nonzero(hole)
