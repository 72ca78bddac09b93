"""Load and faults against `python -m hifill_tf.app`, measuring the server's memory.

One server process (the real command, with a 2 GB --memory_budget and a 2 s
--request_timeout), loopback only; its RSS is read from /proc every 20 ms. In turn:
concurrent 2K and 8K requests, a pixel bomb the budget admits (a 36-megapixel PNG of 45 KB
with an empty mask, decoded, then refused), a pixel bomb above the budget (refused by its
header), a mask bomb, truncated files that claim a large size, a stalled body, stalled
headers, oversized bodies (the REST API's and Gradio's upload route) and nested JSON. It
asserts the status codes, that RSS never rose above idle + the budget, that it comes back
within RSS_MARGIN of idle after the load and after the faults, and health at the end. The
figures are printed (pytest -s) and quoted in the README and docs/app.md.
"""

import base64
import concurrent.futures
import importlib.util
import io as _io
import json
import os
import socket
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

import app_page

BUDGET = 2 << 30
RSS_MARGIN = 150 << 20  # allocator slack, Python's caches, uvicorn's buffers
PHOTO = os.path.join(app_page.REPO, "tests", "data", "volna-640x360.jpg")

pytestmark = pytest.mark.slow

for _module in ("gradio", "fastapi", "uvicorn", "httpx", "socketio"):
    if importlib.util.find_spec(_module) is None:
        if os.environ.get("CI"):
            raise ImportError(f"{_module} is not installed; CI installs the app extra")
        pytest.skip(f"{_module} is not installed (pip install -e '.[app]')",
                    allow_module_level=True)

import httpx  # noqa: E402

from hifill_tf.app import memory  # noqa: E402


class RssSampler:
    """The server's RSS every 20 ms in a thread; `peak()` since the last `reset()`."""

    def __init__(self, pid):
        self.pid, self._peak, self._stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.wait(0.02):
            value = memory.rss_bytes(self.pid)
            if value is None:  # the server has gone
                return
            self._peak = max(self._peak, value)

    def now(self):
        return memory.rss_bytes(self.pid)

    def reset(self):
        self._peak = self.now()

    def peak(self):
        return self._peak

    def stop(self):
        self._stop.set()


def _gb(count):
    return f"{count / 2**30:.2f} GB"


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _photo_request(width, height):
    """A JPEG of the test photo at width x height with a blob hole: the JSON body."""
    with Image.open(PHOTO) as image:
        photo = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    mask = np.zeros((height, width), np.uint8)
    mask[height * 2 // 5:height * 3 // 5, width * 2 // 5:width // 2] = 255
    photo_file, mask_file = _io.BytesIO(), _io.BytesIO()
    photo.save(photo_file, "JPEG", quality=90)
    Image.fromarray(mask).save(mask_file, "PNG")
    return json.dumps({"image": _b64(photo_file.getvalue()),
                       "mask": _b64(mask_file.getvalue())}).encode()


def _png_header(width, height, data=b"\0" * 64):
    def chunk(kind, payload):
        return (len(payload).to_bytes(4, "big") + kind + payload
                + zlib.crc32(kind + payload).to_bytes(4, "big"))

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data, 9))
            + chunk(b"IEND", b""))


def _gray_bomb(side):
    """A valid side x side grayscale PNG of zeros: a few KB that decode to side^2 bytes+."""
    return _png_header(side, side, b"\0" * ((side + 1) * side))


@pytest.fixture(scope="module")
def server():
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc to read the server's memory")
    # The server as a user starts it: its own oneDNN default, not the tests' (conftest.py).
    saved = os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
    try:
        instance = app_page.Server("--memory_budget", f"{BUDGET >> 20}M",
                                   "--request_timeout", "2")
    finally:
        if saved is not None:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = saved
    yield instance
    instance.stop()


def _post(http, body):
    tick = time.monotonic()
    response = http.post("/api/v1/inpaint", content=body,
                         headers={"content-type": "application/json"})
    return response, time.monotonic() - tick


def _settle(rss, idle, seconds=10):
    """RSS once it is back within the margin of idle (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    while rss.now() > idle + RSS_MARGIN and time.monotonic() < deadline:
        time.sleep(0.2)
    return rss.now()


def test_load_and_faults(server):
    rss = RssSampler(server.process.pid)
    http = httpx.Client(base_url=server.url, timeout=300)
    try:
        idle = rss.now()
        figures = [f"idle RSS {_gb(idle)}, budget {_gb(BUDGET)}"]

        # -- concurrent 2K and 8K ------------------------------------------------------------
        bodies = [_photo_request(2048, 1152)] * 4 + [_photo_request(7680, 4320)] * 2
        rss.reset()
        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            results = list(pool.map(lambda body: _post(http, body), bodies))
        peak = rss.peak()
        assert [r.status_code for r, _ in results] == [200] * len(bodies), \
            [r.text for r, _ in results if r.status_code != 200]
        assert peak <= idle + BUDGET, _gb(peak)
        after = _settle(rss, idle)
        seconds = [s for _, s in results]
        figures.append(f"4 x 2K + 2 x 8K at once: peak RSS {_gb(peak)}, after {_gb(after)}; "
                       f"latency 2K {min(seconds[:4]):.1f}-{max(seconds[:4]):.1f} s, "
                       f"8K {min(seconds[4:]):.1f}-{max(seconds[4:]):.1f} s")
        assert after <= idle + RSS_MARGIN, figures[-1]

        # -- faults --------------------------------------------------------------------------
        rss.reset()
        small = json.loads(bodies[0])
        bomb = _gray_bomb(6000)  # 36 Mpx: fits the budget, is decoded, then refused
        empty_mask = _b64(_gray_bomb(6000))
        response, _ = _post(http, json.dumps({"image": _b64(bomb), "mask": empty_mask}).encode())
        assert response.status_code == 400 and "mask is empty" in response.json()["errors"]
        huge = _b64(_png_header(17320, 17320))
        response, seconds = _post(http, json.dumps({"image": huge, "mask": huge}).encode())
        assert response.status_code == 413 and seconds < 1, response.text
        response, seconds = _post(http, json.dumps({"image": small["image"],
                                                    "mask": huge}).encode())
        assert response.status_code == 400 and seconds < 1, response.text
        truncated = json.dumps({"image": _b64(_png_header(5000, 5000)[:-40]),
                                "mask": _b64(_gray_bomb(5000))}).encode()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = [r.status_code for r, _ in pool.map(lambda _: _post(http, truncated),
                                                          range(4))]
        assert statuses == [400] * 4
        host, port = "127.0.0.1", server.port
        head = (b"POST /api/v1/inpaint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                b"application/json\r\nContent-Length: %d\r\n\r\n")
        with socket.create_connection((host, port), timeout=30) as s:
            tick = time.monotonic()
            s.sendall(head % 100_000 + b'{"image": "')  # and then nothing
            answer = s.recv(4096)
            stalled = time.monotonic() - tick
        assert answer.startswith(b"HTTP/1.1 408") and stalled < 10, answer[:200]
        with socket.create_connection((host, port), timeout=30) as s:
            tick = time.monotonic()
            s.sendall(b"POST /api/v1/inpaint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
            assert s.recv(4096) == b""  # half a header, then nothing: disconnected
            assert time.monotonic() - tick < 10
        for path in ("/api/v1/inpaint", "/gradio_api/upload"):  # Gradio's uploads too
            with socket.create_connection((host, port), timeout=30) as s:
                s.sendall(head.replace(b"/api/v1/inpaint", path.encode())
                          % (memory.max_body(BUDGET) + 1))
                assert s.recv(4096).startswith(b"HTTP/1.1 413"), path
        response, _ = _post(http, b"[" * 200_000 + b"]" * 200_000)
        assert response.status_code == 400 and "nested" in response.json()["errors"]
        peak = rss.peak()
        after = _settle(rss, idle)
        figures.append(f"faults (admitted 36 Mpx bomb, 300 Mpx bomb, mask bomb, 4 truncated "
                       f"25 Mpx files, stalled body after {stalled:.1f} s, stalled headers, "
                       f"oversized bodies, nested JSON): peak RSS {_gb(peak)}, after "
                       f"{_gb(after)}")
        assert peak <= idle + BUDGET, figures[-1]
        assert after <= idle + RSS_MARGIN, figures[-1]

        health = http.get("/api/v1/health").json()
        assert health["status"] == "ok" and health["memory_used"] == 0
        print("\n" + "\n".join(figures))
    finally:
        rss.stop()
        http.close()
