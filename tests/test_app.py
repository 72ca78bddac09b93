"""The REST API of `hifill_tf.app` over real HTTP, and the page's mask mapping.

The server runs in this process (uvicorn on a free port of 127.0.0.1, the page mounted as in
`python -m hifill_tf.app`) with the bundled model; requests go through httpx. The browser
tests, which start the server as a user does, are in test_app_browser.py.
"""

import base64
import importlib.util
import io as _io
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from hifill_tf import io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = os.path.join(REPO, "tests", "data", "volna-640x360.jpg")  # see tests/data/README.md
MASK = os.path.join(REPO, "tests", "data", "volna-640x360-mask.png")

for _module in ("gradio", "fastapi", "uvicorn", "httpx"):
    if importlib.util.find_spec(_module) is None:
        if os.environ.get("CI"):
            raise ImportError(f"{_module} is not installed; CI installs the app extra")
        pytest.skip(f"{_module} is not installed (pip install -e '.[app]')",
                    allow_module_level=True)

import httpx  # noqa: E402

from hifill_tf import app, app_ui  # noqa: E402


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _encode(array, fmt="PNG"):
    buffer = _io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _file(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def service():
    return app.Inpainting.load()


@pytest.fixture(scope="module")
def client(service):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app.create_app(service), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        yield http
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def photo():
    return io.read_image(PHOTO)[0]


@pytest.fixture(scope="module")
def mask(photo):
    return io.read_mask(MASK, photo.shape)


def _post(client, image, mask, **extra):
    return client.post("/api/v1/inpaint", json={"image": image, "mask": mask, **extra})


def _assert_error(response, status, *phrases):
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert "\n" not in detail
    for phrase in phrases:
        assert phrase in detail, detail
    return detail


def test_health(client, service):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["model"] == service.description
    assert health["max_pixels"] == service.network_pixels
    side = int(service.network_pixels ** 0.5)
    assert health["network_size"] == f"{side}x{side}"
    # The bundled weights are the process's one copy (hifill_tf.inpaint's), not a second one.
    from hifill_tf import api

    assert service.inpainter.generator is api.default_generator()


def test_page_is_served_beside_the_api(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "HiFill inpainting" in response.text


def test_png_in_png_out_same_as_the_library(client, service, photo, mask):
    """Lossless in, lossless out: the fill is the library's, pixels outside the hole are the
    photo's; IOPaint's other request fields are ignored."""
    response = _post(client, _b64(_encode(photo)), _b64(_file(MASK)), ldm_steps=20,
                     hd_strategy="Crop", sd_seed=42)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-image-size"] == "640x360"
    result = np.asarray(Image.open(_io.BytesIO(response.content)).convert("RGB"))
    np.testing.assert_array_equal(result, service(photo, mask))
    keep = mask == 0
    np.testing.assert_array_equal(result[keep], photo[keep])
    assert np.any(result[~keep] != photo[~keep])


def test_jpeg_in_jpeg_out_data_url(client, photo):
    """A JPEG comes back as a JPEG of the same size; data URLs (as browsers send) work."""
    response = _post(client, "data:image/jpeg;base64," + _b64(_file(PHOTO)),
                     "data:image/png;base64," + _b64(_file(MASK)))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    with Image.open(_io.BytesIO(response.content)) as image:
        assert image.format == "JPEG" and image.size == (640, 360)


@pytest.mark.parametrize("fmt, media", [("WEBP", "image/webp"), ("TIFF", "image/tiff")])
def test_other_formats_round_trip(client, photo, mask, fmt, media):
    response = _post(client, _b64(_encode(photo, fmt)), _b64(_encode(mask)))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media
    with Image.open(_io.BytesIO(response.content)) as image:
        assert image.format == fmt and image.size == (640, 360)


def test_size_mismatch(client, photo):
    small = np.zeros((180, 320), np.uint8)
    small[50:100, 100:200] = 255
    response = _post(client, _b64(_encode(photo)), _b64(_encode(small)))
    _assert_error(response, 400, "mask is 320x180 but the image is 640x360")


def test_non_image(client):
    response = _post(client, _b64(b"GIF89a, or so it claims"), _b64(_file(MASK)))
    detail = _assert_error(response, 400, "image: not an image file")
    assert "/tmp" not in detail  # the field, not the server's temporary file


def test_non_image_mask(client, photo):
    response = _post(client, _b64(_encode(photo)), _b64(b"\x89PNG broken"))
    _assert_error(response, 400, "mask:")


def test_empty_mask(client, photo):
    response = _post(client, _b64(_encode(photo)), _b64(_encode(np.zeros((360, 640), np.uint8))))
    _assert_error(response, 400, "mask is empty")


def test_full_mask(client, photo):
    response = _post(client, _b64(_encode(photo)),
                     _b64(_encode(np.full((360, 640), 255, np.uint8))))
    _assert_error(response, 400, "covers the whole image")


@pytest.mark.parametrize("body, phrase", [
    ({"mask": "AAAA"}, "image: missing"),
    ({"image": "not base64!", "mask": "AAAA"}, "image: not valid base64"),
    ([1, 2], "JSON object"),
])
def test_bad_requests(client, body, phrase):
    _assert_error(client.post("/api/v1/inpaint", json=body), 400, phrase)


def test_not_json(client):
    response = client.post("/api/v1/inpaint", content=b"image=...",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    _assert_error(response, 400, "must be JSON")


def test_cli_refuses_two_models(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "hifill_tf.app", "--weights", "a.npz",
                             "--saved_model", "b"], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 2
    assert "--weights or --saved_model, not both" in result.stderr


# ---------------------------------------------------------------------------------------------
# The page's mapping from the painted preview to the photo
# ---------------------------------------------------------------------------------------------


def test_preview_size():
    assert app_ui.preview(np.zeros((4320, 7680, 3), np.uint8)).shape == (720, 1280, 3)
    assert app_ui.preview(np.zeros((1600, 1000, 3), np.uint8)).shape == (1280, 800, 3)
    small = np.zeros((360, 640, 3), np.uint8)
    assert app_ui.preview(small) is small


def _layer(shape, box, alpha=153):
    layer = np.zeros((*shape, 4), np.uint8)
    top, left, bottom, right = box
    layer[top:bottom, left:right] = (255, 0, 255, alpha)
    return layer


def test_painted_mask_maps_preview_to_full_resolution():
    """A 1280x720 preview of a 2000x1125 photo (ratio 1.5625): preview pixel (y, x) covers
    photo pixels whose centres fall in it."""
    layer = _layer((720, 1280), (100, 200, 110, 240))
    mask = app_ui.painted_mask([layer], (1125, 2000, 3))
    assert mask.shape == (1125, 2000) and mask.dtype == np.uint8
    ys, xs = np.nonzero(mask)
    # Photo pixel x is in preview pixel floor((x + 0.5) / 1.5625).
    assert xs.min() == 312 and xs.max() == 374  # 200 * 1.5625 = 312.5, 240 * 1.5625 = 375
    assert ys.min() == 156 and ys.max() == 171  # 100 * 1.5625 = 156.25, 110 * 1.5625 = 171.9
    assert set(np.unique(mask)) == {0, 255}


def test_painted_mask_soft_edges_and_layers():
    """Any paint (alpha > 0) is hole; layers add up; no paint is None."""
    faint = _layer((90, 160), (10, 10, 20, 20), alpha=1)
    other = _layer((90, 160), (50, 100, 60, 120))
    mask = app_ui.painted_mask([faint, other], (90, 160))
    assert np.count_nonzero(mask) == 100 + 200
    assert app_ui.painted_mask([np.zeros((90, 160, 4), np.uint8)], (90, 160)) is None
    assert app_ui.painted_mask([], (90, 160)) is None
    assert app_ui.painted_mask(None, (90, 160)) is None


def test_read_photo_format_from_content(tmp_path, photo):
    """The output format follows the file's content, not its name; GIF comes back as PNG."""
    for fmt, extension in [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"),
                           ("TIFF", ".tif"), ("BMP", ".bmp"), ("GIF", ".png")]:
        path = tmp_path / f"photo-{fmt}.jpg"  # a misleading name
        Image.fromarray(photo).save(path, format=fmt)
        result = app.read_photo(path)
        assert result.extension == extension, fmt
        assert result.rgb.shape == photo.shape
