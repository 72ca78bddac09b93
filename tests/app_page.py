"""Drives `python -m hifill_tf.app` as a person does: a server subprocess and headless Chromium.

Shared by tests/test_app_browser.py and bench/app_bench.py. Chromium is Debian's
(/usr/bin/chromium), driven by Playwright; `playwright install` (which downloads a browser
build of its own) is never needed. The page may only reach the server: any other request is
aborted before it leaves the browser.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
from PIL import Image

CHROMIUM = os.environ.get("HIFILL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIEWPORT = {"width": 1400, "height": 1000}


@contextlib.contextmanager
def serving(app):
    """``app`` on a uvicorn server of its own thread, at a free loopback port; yields the port."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m hifill_tf.app` on a free port of 127.0.0.1, ready when constructed."""

    def __init__(self, *args, timeout=300, tree=REPO):
        """`tree`: the source tree whose hifill_tf serves (another checkout, for comparisons)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        if tree != REPO:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hifill_tf.app", "--port", str(self.port), *map(str, args)],
            cwd=tree, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.output = []
        deadline = time.monotonic() + timeout
        while True:  # the server prints its "open http://..." line once the model is ready
            line = self.process.stdout.readline()
            if not line:
                self.stop()
                raise RuntimeError("the app server exited:\n" + "".join(self.output[-30:]))
            self.output.append(line)
            if line.startswith("open http://"):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the app server did not start in {timeout} s")
        # Keep reading its output (a full pipe would block it); shown when a test fails.
        threading.Thread(target=self._drain, daemon=True).start()
        for _ in range(100):  # then uvicorn binds the port
            try:
                self.health = self.get_json("api/v1/health")
                break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("the app server does not answer /api/v1/health")

    def _drain(self):
        for line in self.process.stdout:
            self.output.append(line)
            del self.output[:-200]

    def get_json(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _longest_run(flags):
    """Indices of the longest run of True in a 1-D boolean array."""
    best, start = (0, 0), None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            best = max(best, (i - start, start))
            start = None
    return np.arange(best[1], best[1] + best[0])


@contextlib.contextmanager
def browser():
    """A Playwright Chromium browser (Debian's binary)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


class AppPage:
    """The page of one server in a fresh browser context."""

    def __init__(self, browser_, url, timeout_ms=120_000):
        self.url = url
        self.context = browser_.new_context(viewport=VIEWPORT, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(timeout_ms)
        self.blocked = []  # requests to anywhere but the server: must stay empty
        self.page.route("**/*", self._route)
        self.page.goto(url)
        self.page.wait_for_selector("#photo input[type=file]", state="attached")

    def _route(self, route):
        if route.request.url.startswith((self.url, "data:", "blob:")):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def close(self):
        self.context.close()

    def status(self):
        return self.page.locator("#status").inner_text()

    def upload(self, path):
        """Opens a photo; returns seconds until the editor shows it."""
        tick = time.monotonic()
        self.page.locator("#photo input[type=file]").set_input_files(path)
        self.page.wait_for_function(
            "document.querySelector('#status').innerText.includes('Paint over')")
        self.wait_for_editor()
        return time.monotonic() - tick

    def wait_for_editor(self, quiet_s=1.5):
        """Waits until the editor has fitted the photo (its zoom stops changing)."""
        zoom = self.page.locator("#editor .zoom-number")
        last, since = None, time.monotonic()
        while True:
            value = zoom.inner_text()
            if value != last:
                last, since = value, time.monotonic()
            elif time.monotonic() - since > quiet_s:
                return
            time.sleep(0.1)

    def image_rect(self):
        """(x, y, width, height) of the photo on the page, read from a screenshot of the
        editor's canvas: the rows and columns mostly unlike the canvas background (the
        toolbar and the frame's thin lines are not)."""
        canvas = self.page.locator("#editor canvas").first
        box = canvas.bounding_box()
        shot = np.asarray(Image.open(_io.BytesIO(self.page.screenshot(clip=box))).convert("RGB"),
                          np.int16)
        differs = np.abs(shot - shot[2, 2]).sum(axis=2) > 60
        rows = _longest_run(differs.mean(axis=1) > 0.3)  # the label above is a shorter run
        cols = _longest_run(differs.mean(axis=0) > 0.3)
        sx, sy = box["width"] / shot.shape[1], box["height"] / shot.shape[0]
        return (box["x"] + cols[0] * sx, box["y"] + rows[0] * sy,
                (cols[-1] + 1 - cols[0]) * sx, (rows[-1] + 1 - rows[0]) * sy)

    def paint(self, points):
        """One brush stroke through `points`, given as fractions (u, v) of the photo's width
        and height (so the caller knows where it is on the photo at any resolution)."""
        x, y, width, height = self.image_rect()
        page_points = [(x + u * width, y + v * height) for u, v in points]
        # One event per point: the brush joins them with straight segments, and each event
        # costs a redraw (~0.5 s in software WebGL on a busy machine).
        mouse = self.page.mouse
        mouse.move(page_points[0][0] - 10, page_points[0][1])
        mouse.move(*page_points[0])
        mouse.down()
        for point in page_points[1:]:
            mouse.move(*point)
        mouse.up()
        time.sleep(0.5)  # the editor sends its layers after a short pause

    def set_dilation(self, pixels):
        box = self.page.locator("#dilate input[type=number]")
        box.fill(str(pixels))
        box.press("Enter")

    def run(self):
        """Presses Inpaint; returns seconds until the result (download button) is shown."""
        before = self.status()
        tick = time.monotonic()
        self.page.click("#run")
        self.page.wait_for_function(
            "(before) => { const s = document.querySelector('#status').innerText;"
            " return s !== before && s.startsWith('Filled'); }", arg=before)
        self.page.locator("#download").wait_for(state="visible")
        return time.monotonic() - tick

    def download(self, directory):
        """Clicks the download button; returns the saved file's path."""
        with self.page.expect_download() as info:
            self.page.click("#download")
        path = os.path.join(directory, info.value.suggested_filename)
        info.value.save_as(path)
        return path

    def click_for_error(self, selector):
        """Clicks `selector`; returns the text of the error toast (gr.Error) it brings up."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

        # Close earlier toasts first: one may time out while we wait, which would shift the
        # index of the new one (seen on a loaded machine). A toast that is already leaving on
        # its own is inert, then detached, and cannot be clicked (a click would wait for it until
        # the timeout): it is left to go, and the wait below sees it gone either way.
        for close in self.page.locator(".toast-close").all():
            try:
                close.click(timeout=2000)
            except PlaywrightTimeoutError:
                pass
        self.page.wait_for_function("document.querySelectorAll('.toast-body').length === 0")
        self.page.click(selector)
        toast = self.page.locator(".toast-body").first
        toast.wait_for(state="visible")
        return toast.inner_text()

    def error(self):
        """The text of the first error toast (gr.Error) on the page, once there is one."""
        toast = self.page.locator(".toast-body").first
        toast.wait_for(state="visible")
        return toast.inner_text()
