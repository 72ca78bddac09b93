"""The REST API of `hifill_tf.app` over real HTTP, its guard and budget, and the page's mask
mapping.

The server runs in this process (uvicorn on a free port of 127.0.0.1, the page mounted as in
`python -m hifill_tf.app`) with the bundled model; requests go through httpx. Variants of the
app (a small memory budget, CORS) run through Starlette's TestClient on the same model. The
browser tests are in test_app_browser.py (our page) and test_app_iopaint.py (IOPaint's page);
the load and fault test, which measures the server's RSS, in test_app_load.py.
"""

import base64
import importlib.util
import io as _io
import os
import socket
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

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

from hifill_tf.app import memory, page, photos, service as service_module  # noqa: E402
from hifill_tf.app.server import create_app  # noqa: E402
from app_page import serving  # noqa: E402 (tests/ is on sys.path: conftest)


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
    return service_module.Inpainting.load()


@pytest.fixture(scope="module")
def client(service):
    with serving(create_app(service)) as port:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            http.port = port
            yield http


def _test_client(service, budget=None, **options):
    """Starlette's TestClient on a variant of the app (no page) over the same model."""
    from starlette.testclient import TestClient

    variant = service_module.Inpainting(service.inpainter, service.name, budget)
    return TestClient(create_app(variant, ui=False, **options), base_url="http://127.0.0.1")


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
    body = response.json()
    detail = body["errors"]  # what IOPaint's page shows
    assert body["detail"] == detail and "\n" not in detail
    for phrase in phrases:
        assert phrase in detail, detail
    return detail


def test_health(client, service):
    response = client.get("/api/v1/health")
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["status"] == "ok"
    assert health["model"] == service.description
    assert health["max_pixels"] == service.network_pixels
    side = int(service.network_pixels ** 0.5)
    assert health["network_size"] == f"{side}x{side}"
    assert health["memory_budget"] == memory.default_budget()
    assert health["max_body"] == memory.default_budget() // 12
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
                     hd_strategy="Crop", sd_seed=7)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-seed"] == "7"  # IOPaint's page reads it
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


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_only_json_is_accepted(client, content_type):
    """A page elsewhere can POST text/plain without asking (no CORS preflight): refused."""
    response = client.post("/api/v1/inpaint", content=b'{"image": "", "mask": ""}',
                           headers={"content-type": content_type})
    _assert_error(response, 415, "Content-Type must be application/json")


def test_bad_json(client):
    response = client.post("/api/v1/inpaint", content=b"{image: 1",
                           headers={"content-type": "application/json"})
    _assert_error(response, 400, "must be JSON")
    nested = b"[" * 100_000 + b"]" * 100_000
    response = client.post("/api/v1/inpaint", content=nested,
                           headers={"content-type": "application/json"})
    _assert_error(response, 400, "nested too deeply")
    response = _post(client, _b64(b"x"), _b64(b"x"), sd_seed="7")
    _assert_error(response, 400, "sd_seed: must be an integer")


# ---------------------------------------------------------------------------------------------
# What IOPaint's page needs: alpha, EXIF, its mask rule, its routes
# ---------------------------------------------------------------------------------------------


def test_alpha_and_metadata_are_kept(client, photo, mask):
    """An RGBA PNG comes back RGBA with its alpha; its text chunks and ICC profile stay."""
    from PIL import ImageCms, PngImagePlugin

    alpha = np.tile(np.linspace(40, 255, 640).astype(np.uint8), (360, 1))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "holiday")
    buffer = _io.BytesIO()
    Image.fromarray(np.dstack([photo, alpha])).save(buffer, "PNG", pnginfo=info, icc_profile=icc)
    response = _post(client, _b64(buffer.getvalue()), _b64(_encode(mask)))
    assert response.status_code == 200, response.text
    with Image.open(_io.BytesIO(response.content)) as image:
        assert image.mode == "RGBA"
        assert image.info["icc_profile"] == icc and image.info["Comment"] == "holiday"
        result = np.asarray(image)
    np.testing.assert_array_equal(result[..., 3], alpha)
    keep = mask == 0
    np.testing.assert_array_equal(result[..., :3][keep], photo[keep])
    assert np.any(result[..., :3][~keep] != photo[~keep])


def test_exif_orientation_and_metadata(client, photo, mask):
    """A JPEG stored sideways with EXIF orientation 6 is filled upright (the mask is drawn on
    the upright photo, as IOPaint's page shows it) and comes back upright, with its other EXIF
    tags and without the orientation already applied."""
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    exif[0x010F] = "HiFill Camera"  # Make
    buffer = _io.BytesIO()
    Image.fromarray(np.rot90(photo, 1)).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    response = _post(client, _b64(buffer.getvalue()), _b64(_encode(mask)))
    assert response.status_code == 200, response.text
    assert response.headers["x-image-size"] == "640x360"
    with Image.open(_io.BytesIO(response.content)) as image:
        assert image.format == "JPEG" and image.size == (640, 360)
        tags = image.getexif()
        assert tags.get(0x010F) == "HiFill Camera" and tags.get(0x0112, 1) == 1


def test_mask_is_read_as_iopaint_reads_it(client, photo):
    """IOPaint's page draws its strokes in white with soft, semi-transparent edges. IOPaint
    takes Pillow's grayscale of the file and thresholds it at 127, alpha ignored; so do we."""
    rgba = np.zeros((360, 640, 4), np.uint8)
    rgba[100:200, 200:300] = (255, 255, 255, 255)
    rgba[100:200, 300:320] = (255, 255, 255, 60)  # the soft edge: white, mostly transparent
    rgba[100:200, 320:340] = (100, 100, 100, 255)  # dark gray: not hole
    expected = np.asarray(Image.fromarray(rgba).convert("L")) > 127
    response = _post(client, _b64(_encode(photo)), _b64(_encode(rgba)))
    assert response.status_code == 200, response.text
    assert float(response.headers["x-hole-fraction"]) == pytest.approx(expected.mean(), abs=1e-6)
    assert expected.sum() == 100 * 120


def test_iopaint_routes(client, service):
    config = client.get("/api/v1/server-config").json()
    assert config["plugins"] == [] and config["samplers"] == []
    assert config["disableModelSwitch"] is False  # IOPaint's page hides its settings otherwise
    assert config["enableFileManager"] is False
    assert [m["name"] for m in config["modelInfos"]] == ["hifill"]
    assert config["hifill"]["memory_budget"] == service.budget.total
    model = client.get("/api/v1/model").json()
    assert model == config["modelInfos"][0]
    assert model["model_type"] == "inpaint" and model["need_prompt"] is False
    assert client.post("/api/v1/model", json={"name": "hifill"}).json() == model
    _assert_error(client.post("/api/v1/model", json={"name": "lama"}), 422, "one model")
    assert client.get("/api/v1/samplers").json() == []
    response = client.get("/api/v1/inputimage")  # IOPaint without --input: 200, no image
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    _assert_error(client.post("/api/v1/save_image", files={"file": ("a.png", b"x")}), 400,
                  "Output directory not configured")
    _assert_error(client.post("/api/v1/run_plugin_gen_mask", json={"name": "RemoveBG"}), 422,
                  "Plugin not found")
    response = client.post("/api/v1/switch_plugin_model",
                           json={"plugin_name": "RemoveBG", "model_name": "u2net"})
    assert response.status_code == 200 and response.json() is None
    _assert_error(client.get("/api/v1/medias"), 404, "no route /api/v1/medias")
    _assert_error(client.get("/api/v1/inpaint"), 405, "GET is not served at /api/v1/inpaint; "
                  "use POST")


def test_gen_info(client, photo):
    """IOPaint's page asks for the prompt of every photo it opens: none for a photo; the
    Stable Diffusion web UI's "parameters" text of a generated PNG."""
    response = client.post("/api/v1/gen-info", files={"file": ("v.jpg", _file(PHOTO))})
    assert response.status_code == 200, response.text
    assert response.json() == {"prompt": "", "negative_prompt": ""}
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a bridge at dusk\nNegative prompt: people\nSteps: 20")
    buffer = _io.BytesIO()
    Image.fromarray(photo).save(buffer, "PNG", pnginfo=info)
    response = client.post("/api/v1/gen-info", files={"file": ("g.png", buffer.getvalue())})
    assert response.json() == {"prompt": "a bridge at dusk", "negative_prompt": "people"}
    _assert_error(client.post("/api/v1/gen-info", files={"file": ("x.png", b"text")}), 400,
                  "not an image")


def test_adjust_mask(client):
    mask = np.zeros((90, 160), np.uint8)
    mask[40:50, 70:90] = 255
    for operate, count in [("expand", 1), ("shrink", 0), ("reverse", 0)]:
        response = client.post("/api/v1/adjust_mask", json={"mask": _b64(_encode(mask)),
                                                            "operate": operate, "kernel_size": 3})
        assert response.status_code == 200, response.text
        rgba = np.asarray(Image.open(_io.BytesIO(response.content)))
        hole = rgba[..., 3] > 0
        if operate == "expand":
            assert hole.sum() > 200 and hole[40:50, 70:90].all()
        elif operate == "shrink":
            assert 0 < hole.sum() < 200 and hole[44, 80]
        else:
            assert hole.sum() == 90 * 160 - 200
        assert tuple(rgba[hole][0]) == (0, 203, 255, 186)


def test_socket_io_answers(client):
    """IOPaint's page keeps a socket.io connection (diffusion progress): its handshake works."""
    response = client.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert response.status_code == 200, response.text
    assert response.text.startswith("0{") and '"sid"' in response.text


# ---------------------------------------------------------------------------------------------
# Who may call, how much, how slowly
# ---------------------------------------------------------------------------------------------


def test_other_origins_and_hosts_are_refused(client, photo):
    """A page on another site (Origin) or a rebound DNS name (Host) gets a 4xx, and no fill
    runs; the server's own origin is fine."""
    body = {"image": _b64(_encode(photo)), "mask": _b64(_file(MASK))}
    response = client.post("/api/v1/inpaint", json=body,
                           headers={"origin": "https://evil.example"})
    _assert_error(response, 403, "requests from pages of https://evil.example are refused")
    response = client.post("/api/v1/inpaint", json=body, headers={"host": "evil.example"})
    _assert_error(response, 400, "Host 'evil.example' is not this server's name")
    origin = f"http://127.0.0.1:{client.port}"
    response = client.post("/api/v1/inpaint", json=body, headers={"origin": origin})
    assert response.status_code == 200, response.text
    assert "access-control-allow-origin" not in response.headers


def test_allow_origin_gets_cors_headers(service):
    with _test_client(service, allow_origins=["https://editor.example"]) as http:
        preflight = http.options("/api/v1/inpaint", headers={
            "origin": "https://editor.example", "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://editor.example"
        response = http.get("/api/v1/model", headers={"origin": "https://editor.example"})
        assert response.headers["access-control-allow-origin"] == "https://editor.example"
        assert "X-Seed" in response.headers["access-control-expose-headers"]
        response = http.get("/api/v1/model", headers={"origin": "https://other.example"})
        assert response.status_code == 403


def _png_header(width, height):
    """The first bytes of a PNG that claims width x height: a truncated file, or a bomb's
    header (what the server sees before it decodes anything)."""
    def chunk(kind, data):
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_budget_refuses_before_decoding(service, photo):
    """With a 64 MB budget: a photo whose header claims 17320x17320 is refused (413) by its
    header; a mask of another size is refused before it is decoded; a truncated photo that
    fits is a 400; a body above a twelfth of the budget is a 413."""
    with _test_client(service, memory.MemoryBudget(64 << 20)) as http:
        bomb = _png_header(17320, 17320)
        response = http.post("/api/v1/inpaint", json={"image": _b64(bomb), "mask": _b64(bomb)})
        _assert_error(response, 413, "a 17320x17320 photo needs 8.9 GB of working memory",
                      "budget of 64 MB")
        tick = time.monotonic()
        response = http.post("/api/v1/inpaint", json={"image": _b64(_encode(photo)),
                                                      "mask": _b64(bomb)})
        _assert_error(response, 400, "mask: mask is 17320x17320 but the image is 640x360")
        assert time.monotonic() - tick < 2
        response = http.post("/api/v1/inpaint", json={"image": _b64(_png_header(640, 360)),
                                                      "mask": _b64(_file(MASK))})
        _assert_error(response, 400, "image:", "truncated or corrupt")
        response = http.post("/api/v1/inpaint", content=b"x" * (6 << 20),
                             headers={"content-type": "application/json"})
        _assert_error(response, 413, "request body of 6 MB is above this server's limit of 5 MB")


def _raw_request(port, head, body=b"", wait=10):
    """Sends raw bytes and returns (status, seconds until the answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        tick = time.monotonic()
        s.sendall(head + body)
        answer = s.recv(65536)
        return int(answer.split(b" ", 2)[1]), time.monotonic() - tick


def test_stalled_and_oversized_bodies(service):
    """A body that stops arriving gets a 408 after the timeout; a Content-Length above the
    limit a 413 at once, before the body is sent."""
    import uvicorn

    variant = service_module.Inpainting(service.inpainter, service.name,
                                        memory.MemoryBudget(64 << 20))
    server = uvicorn.Server(uvicorn.Config(create_app(variant, ui=False, timeout=1.0),
                                           host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        head = (b"POST /api/v1/inpaint HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n")
        status, seconds = _raw_request(port, head % 1000, b'{"image": "')
        assert status == 408 and 0.9 < seconds < 5
        status, seconds = _raw_request(port, head % (1 << 30))
        assert status == 413 and seconds < 1
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# The memory budget
# ---------------------------------------------------------------------------------------------


def test_budget_admits_queues_and_refuses():
    budget = memory.MemoryBudget(100, queue_seconds=5)
    first = budget.ticket()
    first.grow(60)
    with pytest.raises(memory.OverBudget) as refused:
        budget.ticket().grow(101, "a big photo")
    assert refused.value.status == 413 and "a big photo needs" in str(refused.value)
    admitted = []

    def second():
        with budget.ticket() as ticket:
            ticket.grow(50)
            admitted.append(time.monotonic())

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    assert not admitted  # queued: 60 + 50 > 100
    released = time.monotonic()
    first.release()
    thread.join(5)
    assert admitted and admitted[0] >= released
    assert budget.used == 0 and budget.peak == 60


def test_budget_breaks_a_standoff():
    """Two requests that each hold half the budget and both want more can never proceed:
    the second to ask is refused at once (503) instead of both waiting."""
    budget = memory.MemoryBudget(100, queue_seconds=30)
    a, b = budget.ticket(), budget.ticket()
    a.grow(50)
    b.grow(50)
    errors = []

    def grow_a():
        try:
            a.grow(30)
        except memory.OverBudget as e:
            errors.append(e)

    thread = threading.Thread(target=grow_a)
    thread.start()
    time.sleep(0.3)
    tick = time.monotonic()
    with pytest.raises(memory.OverBudget) as refused:
        b.grow(30)
    assert refused.value.status == 503 and time.monotonic() - tick < 2
    b.release()
    thread.join(5)
    assert not errors and a.held == 80
    a.release()
    assert budget.used == 0


def test_parse_bytes():
    assert memory.parse_bytes("6G") == 6 << 30
    assert memory.parse_bytes("1.5g") == 3 << 29
    assert memory.parse_bytes("512MB") == 512 << 20
    assert memory.parse_bytes("1000") == 1000
    with pytest.raises(ValueError, match="not a size"):
        memory.parse_bytes("lots")


@pytest.mark.parametrize("flags, message", [
    (["--weights", "a.npz", "--saved_model", "b"], "--weights or --saved_model, not both"),
    (["--memory_budget", "lots"], "--memory_budget: not a size: 'lots'"),
    (["--web_app", "tests"], "--web_app: tests: no index.html"),
])
def test_cli_refuses_bad_flags(flags, message):
    """Checked before the model loads: a second or so, not a TensorFlow start."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "hifill_tf.app", *flags], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2
    assert message in result.stderr


# ---------------------------------------------------------------------------------------------
# The page's mapping from the painted preview to the photo
# ---------------------------------------------------------------------------------------------


def test_preview_size():
    assert page.preview(np.zeros((4320, 7680, 3), np.uint8)).shape == (720, 1280, 3)
    assert page.preview(np.zeros((1600, 1000, 3), np.uint8)).shape == (1280, 800, 3)
    small = np.zeros((360, 640, 3), np.uint8)
    assert page.preview(small) is small


def _layer(shape, box, alpha=153):
    layer = np.zeros((*shape, 4), np.uint8)
    top, left, bottom, right = box
    layer[top:bottom, left:right] = (255, 0, 255, alpha)
    return layer


def test_painted_mask_maps_preview_to_full_resolution():
    """A 1280x720 preview of a 2000x1125 photo (ratio 1.5625): preview pixel (y, x) covers
    photo pixels whose centres fall in it."""
    layer = _layer((720, 1280), (100, 200, 110, 240))
    mask = page.painted_mask([layer], (1125, 2000, 3))
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
    mask = page.painted_mask([faint, other], (90, 160))
    assert np.count_nonzero(mask) == 100 + 200
    assert page.painted_mask([np.zeros((90, 160, 4), np.uint8)], (90, 160)) is None
    assert page.painted_mask([], (90, 160)) is None
    assert page.painted_mask(None, (90, 160)) is None


@pytest.mark.parametrize("deflate", ["zlib-ng", "zlib"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_fast_png_is_exact(channels, deflate, monkeypatch):
    """The server's PNG writer, with zlib-ng and with zlib (without the app extra's zlib-ng):
    Pillow reads back the same pixels, resolution and text."""
    if deflate == "zlib":
        monkeypatch.setattr(photos, "_deflate", zlib)
    else:
        assert photos._deflate.__name__ == "zlib_ng.zlib_ng"  # installed by the app extra
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (37, 53, channels), np.uint8)
    array[:, :20] = 200  # flat and noisy parts, odd sizes, several strips
    array = array[..., 0] if channels == 1 else array
    metadata = {"dpi": (300, 300), "text": {"Comment": "holiday", "Title": "Volna à Ž"}}
    with Image.open(_io.BytesIO(photos.encode_png(array, metadata))) as image:
        np.testing.assert_array_equal(np.asarray(image), array)
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert image.text == metadata["text"]


def test_base64_decoders_agree(monkeypatch):
    """The requests' base64 is read the same with pybase64 (the app extra) as with binascii,
    which stands in without it: the same bytes, or the same refusal, for well-formed, wrapped
    and broken base64 and data URLs."""
    import binascii

    from hifill_tf.app import rest

    rng = np.random.default_rng(0)
    texts = [base64.b64encode(rng.bytes(n)).decode() for n in (1, 2, 3, 4, 1000, 70001)]
    texts += [base64.encodebytes(rng.bytes(300)).decode(), "data:image/png;base64,AAAA",
              "abc", "ab=c", "=abc", "ab c", "abc\n", "ab==cd==", "a===", "abcd=", "ab-_",
              "\u00ffabc", "data:,", ""]

    def decode_all():
        results = []
        for text in texts:
            try:
                results.append(rest.decode_base64({"image": text}, "image"))
            except rest.RequestError as e:
                results.append(str(e))
        return results

    assert "_pybase64_decode" in rest._strict_base64.__code__.co_names  # the app extra has it
    with_pybase64 = decode_all()
    monkeypatch.setattr(rest, "_strict_base64",
                        lambda text: binascii.a2b_base64(text, strict_mode=True))
    assert decode_all() == with_pybase64
    assert with_pybase64[:7] == [base64.b64decode(t) for t in texts[:7]]
    assert sum(isinstance(r, str) for r in with_pybase64) >= 8  # refusals


def test_read_photo_format_from_content(tmp_path, photo):
    """The output format follows the file's content, not its name; GIF comes back as PNG."""
    for fmt, extension in [("PNG", ".png"), ("JPEG", ".jpg"), ("WEBP", ".webp"),
                           ("TIFF", ".tif"), ("BMP", ".bmp"), ("GIF", ".png")]:
        path = tmp_path / f"photo-{fmt}.jpg"  # a misleading name
        Image.fromarray(photo).save(path, format=fmt)
        result = photos.read_photo(str(path))
        assert result.rgb.shape == photo.shape
        assert photos.encode_result(result.rgb, result)[1] == extension, fmt


def _png_chunks(data):
    """[(kind, payload)] of a PNG file."""
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_file(chunks):
    def chunk(kind, payload):
        return (len(payload).to_bytes(4, "big") + kind + payload
                + zlib.crc32(kind + payload).to_bytes(4, "big"))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunk(k, p) for k, p in chunks)


def _png_variants(photo):
    """(name, PNG bytes, whether photos reads it on two cores) of PNGs io.read_image reads
    in different ways, or refuses."""
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (1000, 1500, 4), np.uint8)
    rgba = np.concatenate([photo, rng.integers(0, 256, photo.shape[:2] + (1,), np.uint8)], 2)
    exif = Image.Exif()
    exif[0x0112] = 6
    variants = [("rgb", _encode(photo), True), ("rgba", _encode(rgba), True),
                ("rgb noise, many IDATs", _encode(noise[..., :3]), True),
                ("rgba noise", _encode(noise), True),
                ("one stored block exactly", _encode(noise[:15, :1456, :3]), True),
                ("two stored blocks exactly", _encode(noise[:30, :1456, :3]), True),
                ("our Up-filtered writer", photos.encode_png(noise[..., :3]), True),
                ("gray", _encode(photo[..., 0]), False),
                ("16-bit", _encode(photo[..., 0].astype(np.uint16) * 257), False),
                ("palette", _encode_image(Image.fromarray(photo).quantize(64)), False),
                ("exif orientation", _encode_image(Image.fromarray(photo), exif=exif), False)]
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a photo")
    variants.append(("text", _encode_image(Image.fromarray(photo), pnginfo=info), False))
    plain = _encode(noise[:200, :300, :3])
    chunks = _png_chunks(plain)
    idat = b"".join(p for k, p in chunks if k == b"IDAT")
    raw = zlib.decompress(idat)
    header = [c for c in chunks if c[0] == b"IHDR"]
    interlaced = [(b"IHDR", header[0][1][:12] + b"\1")]
    variants += [
        ("extra data after the rows", _png_file(
            header + [(b"IDAT", zlib.compress(raw + b"\2" * 5000)), (b"IEND", b"")]), True),
        ("empty IDAT chunks", _png_file(
            header + [(b"IDAT", b""), (b"IDAT", idat), (b"IDAT", b""), (b"IEND", b"")]), True),
        ("truncated rows", _png_file(
            header + [(b"IDAT", zlib.compress(raw[:-700])), (b"IEND", b"")]), True),
        ("truncated file", plain[:len(plain) // 2], False),
        ("corrupt data", plain[:3000] + bytes(1000) + plain[4000:], True),
        ("interlace flag", _png_file(interlaced + chunks[1:]), False)]
    return variants


def _encode_image(image, **options):
    buffer = _io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def test_png_read_on_two_cores_is_io_read_image(tmp_path, photo):
    """read_photo of PNG bytes gives io.read_image's pixels and alpha, or its error, for
    every kind of PNG; the plain ones go through the two-core reader."""
    for name, data, plain in _png_variants(photo):
        assert (photos._plain_png(data) is not None) == plain, name
        path = tmp_path / "image"
        path.write_bytes(data)
        try:
            expected = photos.read_photo(str(path), "image")
        except io.InputError as e:
            with pytest.raises(io.InputError) as raised:
                photos.read_photo(data, "image")
            assert str(raised.value) == str(e), name
            continue
        result = photos.read_photo(data, "image")
        np.testing.assert_array_equal(result.rgb, expected.rgb, err_msg=name)
        assert result.rgb.flags.c_contiguous and result.rgb.flags.writeable, name
        if expected.alpha is None:
            assert result.alpha is None, name
        else:
            np.testing.assert_array_equal(result.alpha, expected.alpha, err_msg=name)
        if plain and "truncated" not in name and "corrupt" not in name:
            assert photos._read_plain_png(data) is not None, name  # not the fallback
