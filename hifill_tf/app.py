"""A local web page and REST API: paint the hole in a browser, get the photo back at full size.

    python -m hifill_tf.app                       # http://127.0.0.1:7860
    python -m hifill_tf.app --port 8080 --weights runs/x/best.npz --max_pixels 262144

The page (`hifill_tf.app_ui`, Gradio's image editor) shows a scaled preview of the photo; the
server keeps the upload at full resolution, maps the mask painted on the preview onto it and
returns the result in the photo's format. The REST API has IOPaint's shape, so its clients work:

    POST /api/v1/inpaint  {"image": <base64>, "mask": <base64>}  ->  image bytes (input's format)
    GET  /api/v1/health   ->  {"status": "ok", "model": ..., "max_pixels": ..., ...}

Both decode files with `hifill_tf.io` (EXIF, RGBA, 16-bit; mask white = hole) and share one
model, loaded and traced at start, that fills one photo at a time: on two cores two 8K photos
at once would take as long as one after the other, with twice the memory.

Needs the `app` extra: pip install -e '.[app]'.
"""


import base64
import binascii
import json
import os
import sys
import tempfile
import threading
import time
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
# Gradio and huggingface_hub send telemetry by default; a local tool sends nothing.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from hifill_tf import io  # noqa: E402

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860

# Output format for each Pillow input format: the photo's own, or PNG where io cannot write it.
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                ".tif": "image/tiff", ".bmp": "image/bmp"}
JPEG_QUALITY = 95  # as infer.py's default --quality


class Photo(NamedTuple):
    """A photo read for filling: upright RGB at full resolution and the extension to write."""

    rgb: np.ndarray
    extension: str  # ".jpg", ".png", ...: the input's format, else ".png"


def read_photo(path) -> Photo:
    """io.read_image plus the output extension, from the file's content (not its name)."""
    rgb, _ = io.read_image(path)  # the alpha channel is dropped: the result is RGB
    with Image.open(path) as image:
        extension = _EXTENSIONS.get(image.format, ".png")
    if extension == ".jpg" and max(rgb.shape[:2]) > 65_535:  # beyond JPEG's limit
        extension = ".png"
    return Photo(rgb, extension)


def media_type(extension):
    return _MEDIA_TYPES.get(extension, "application/octet-stream")


class Inpainting:
    """The server's model: loaded and traced once, then shared by the page and the REST API.

    Args:
        inpainter: a `hifill_tf.cli_util` inpainter (``inpainter(image, mask, name)``).
    Calls are serialised (see the module docstring); `busy` tells whether one is running.
    """

    def __init__(self, inpainter, name=None):
        self.inpainter = inpainter
        self.description = inpainter.description
        self.name = name or self.description  # shorter, for the page
        self._lock = threading.Lock()
        self.network_pixels = None  # fixed at export for a SavedModel, and not recorded
        generator = getattr(inpainter, "generator", None)
        if generator is not None:
            from hifill_tf import cra

            self.network_pixels = cra.network_pixels(generator, inpainter.max_pixels)

    @classmethod
    def load(cls, weights=None, saved_model=None, max_pixels=None):
        """Loads the model (see `cli_util.load_inpainter`) and traces its graph."""
        from hifill_tf.cli_util import find_model, load_inpainter

        path = os.path.basename(os.path.normpath(find_model(weights, saved_model)))
        name = (f"SavedModel {path}" if saved_model else f"weights {path}" if weights
                else f"bundled weights {path}")
        service = cls(load_inpainter(weights, saved_model, max_pixels), name)
        service.warm_up()
        return service

    def warm_up(self):
        """One small fill: the graph (one tf.function for all sizes) is traced now, not on the
        first photo."""
        image = np.full((64, 64, 3), 128, np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        mask[24:40, 24:40] = 255
        self(image, mask)

    @property
    def busy(self):
        return self._lock.locked()

    def __call__(self, rgb, mask, name=None):
        """Fills the hole (mask nonzero = hole, same size as rgb); InputError on bad input."""
        with self._lock:
            return self.inpainter(rgb, mask, name=name)

    def health(self):
        side = int(self.network_pixels ** 0.5) if self.network_pixels else None
        from hifill_tf import __version__

        return {
            "status": "ok",
            "model": self.description,
            "max_pixels": self.network_pixels,
            "network_size": f"{side}x{side}" if side else "fixed at export",
            "busy": self.busy,
            "hifill_tf": __version__,
        }


def write_result(path_stem, rgb, extension):
    """Writes the result as `path_stem + extension` (atomically); returns the path."""
    return io.write_image_atomic(path_stem + extension, rgb, quality=JPEG_QUALITY)


# ---------------------------------------------------------------------------------------------
# REST API
# ---------------------------------------------------------------------------------------------


class RequestError(ValueError):
    """A bad API request: the one-line reason of a 400."""


def _decode_base64(payload, field):
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise RequestError(f"{field}: missing; send a base64-encoded image file as {field!r}")
    if value.startswith("data:"):  # a data URL, as browsers and IOPaint's client send
        value = value.partition(",")[2]
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{field}: not valid base64") from None
    if not data:
        raise RequestError(f"{field}: empty")
    return data


def inpaint_request(service, payload):
    """The work of POST /api/v1/inpaint: JSON payload -> (image bytes, media type, headers).

    Raises RequestError (400) for bad input; the message is one line and names the field.
    """
    if not isinstance(payload, dict):
        raise RequestError('body must be a JSON object {"image": <base64>, "mask": <base64>}')
    image_bytes = _decode_base64(payload, "image")
    mask_bytes = _decode_base64(payload, "mask")
    with tempfile.TemporaryDirectory(prefix="hifill-api-") as tmp:
        prefix = tmp + os.sep

        def one_line(error):  # name the field, not the temporary file
            return " ".join(str(error).replace(prefix, "").split())

        image_path, mask_path = os.path.join(tmp, "image"), os.path.join(tmp, "mask")
        for path, data in ((image_path, image_bytes), (mask_path, mask_bytes)):
            with open(path, "wb") as f:
                f.write(data)
        try:
            photo = read_photo(image_path)
            mask = io.read_mask(mask_path, photo.rgb.shape)
            coverage = io.validate_mask(mask, "mask")
        except io.InputError as e:
            raise RequestError(one_line(e).replace("; pass resize=True to resize it", "")) from None
        tick = time.monotonic()
        try:
            result = service(photo.rgb, mask, name="image")
        except io.InputError as e:
            raise RequestError(one_line(e)) from None
        seconds = time.monotonic() - tick
        path = write_result(os.path.join(tmp, "result"), result, photo.extension)
        with open(path, "rb") as f:
            content = f.read()
    height, width = photo.rgb.shape[:2]
    headers = {"X-Image-Size": f"{width}x{height}", "X-Hole-Fraction": f"{coverage:.6f}",
               "X-Inpaint-Seconds": f"{seconds:.3f}"}
    return content, media_type(photo.extension), headers


def create_app(service, ui=True):
    """The FastAPI app: the REST API under /api/v1 and, with `ui`, the page at /."""
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, Response

    # No /docs: Swagger UI loads its scripts from a CDN, and this server is meant to work offline.
    app = FastAPI(title="hifill_tf", docs_url=None, redoc_url=None)

    def error(status, message):
        return JSONResponse({"detail": message}, status_code=status)

    @app.get("/api/v1/health")
    def health():
        return service.health()

    @app.post("/api/v1/inpaint")
    async def inpaint(request: Request):
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return error(400, 'body must be JSON: {"image": <base64>, "mask": <base64>}')
        try:
            content, media, headers = await run_in_threadpool(inpaint_request, service, payload)
        except RequestError as e:
            return error(400, str(e))
        except MemoryError:
            return error(413, "image too large for this server's memory")
        return Response(content=content, media_type=media, headers=headers)

    if ui:
        import gradio as gr

        from hifill_tf import app_ui

        app = gr.mount_gradio_app(app, app_ui.build(service), path="/", ssr_mode=False,
                                  mcp_server=False, theme=app_ui.theme(), css=app_ui.CSS,
                                  footer_links=[])
    return app


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _define_flags(flags):
    # Defined only when run as a program, so importing this module (tests, other front ends)
    # does not add flags that clash with infer.py's.
    flags.DEFINE_string("host", DEFAULT_HOST, "Address to listen on. The default serves only "
                        "this machine; 0.0.0.0 serves the network, with no authentication.")
    flags.DEFINE_integer("port", DEFAULT_PORT, "Port to listen on.", lower_bound=0,
                         upper_bound=65535)
    flags.DEFINE_string("weights", None, "Generator weights (.npz). Default: the bundled weights.")
    flags.DEFINE_string("saved_model", None, "Instead of --weights: a SavedModel directory "
                        "written by export.py.")
    flags.DEFINE_integer("max_pixels", None, "Pixel budget of the network input (see infer.py "
                         "--max_pixels). Default: the budget stored with the weights (bundled "
                         "model: 65536 = 256x256). Fixed at export for --saved_model.",
                         lower_bound=256)


def main(argv):
    from absl import flags

    from hifill_tf.cli_util import ModelError, format_seconds

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    if FLAGS.weights and FLAGS.saved_model:
        print("error: give --weights or --saved_model, not both", file=sys.stderr)
        return 2
    try:
        import gradio  # noqa: F401
        import uvicorn
    except ImportError as e:
        print(f"error: {e.name} is not installed; pip install -e '.[app]'", file=sys.stderr)
        return 1
    tick = time.monotonic()
    try:
        service = Inpainting.load(FLAGS.weights, FLAGS.saved_model, FLAGS.max_pixels)
    except (ModelError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    health = service.health()
    print(f"model: {service.description}, network {health['network_size']} (loaded and traced "
          f"in {format_seconds(time.monotonic() - tick)})", flush=True)
    host = f"[{FLAGS.host}]" if ":" in FLAGS.host else FLAGS.host
    print(f"open http://{host}:{FLAGS.port}/ in a browser; REST API at /api/v1/inpaint",
          flush=True)
    if FLAGS.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {FLAGS.host}: anyone who can reach it can use this server "
              "(there is no authentication)", file=sys.stderr)
    uvicorn.run(create_app(service), host=FLAGS.host, port=FLAGS.port, log_level="warning")
    return 0


def run():
    """`python -m hifill_tf.app`: parse the flags, serve until interrupted."""
    from absl import app, flags

    _define_flags(flags)
    app.run(main)


if __name__ == "__main__":
    # Run the imported module, not this __main__ copy, so that app_ui and this share one.
    from hifill_tf.app import run as _run

    _run()
