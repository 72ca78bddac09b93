"""The REST API under /api/v1: IOPaint's routes, so that IOPaint's page and clients work.

    POST /api/v1/inpaint   {"image": <base64>, "mask": <base64>, ...}  ->  the filled image
    GET  /api/v1/health    ->  the model, its network size and the memory budget (ours)

and IOPaint's other routes, answered as IOPaint answers them when a feature is off, with what
is true of HiFill: `server-config` and `model` describe the one HiFill model (no plugins, no
samplers, no file manager, no model switch), `gen-info` reads a photo's generation parameters
(none, for a photo), `inputimage` has none, `save_image` has no output folder, plugin routes
find no plugin, `adjust_mask` grows, shrinks or inverts a mask as IOPaint's does. Errors are
IOPaint's JSON (`hifill_tf.app.errors`); JSON routes take only `application/json`.
"""

import binascii
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hifill_tf import io
from hifill_tf.app import guard, memory, photos
from hifill_tf.app.errors import RequestError, error_response
from hifill_tf.app.service import MODEL_NAME

try:  # pybase64 (the app extra): SIMD base64, an 8K photo's 59 MB in 0.025 s against 0.135 s
    from pybase64 import b64decode as _pybase64_decode

    def _strict_base64(text):
        return _pybase64_decode(text, validate=True)
except ImportError:
    def _strict_base64(text):
        return binascii.a2b_base64(text, strict_mode=True)

PREFIX = "/api/v1"
DEFAULT_SEED = 42  # IOPaint's default sd_seed, echoed in X-Seed (HiFill draws no random numbers)
EXPOSED_HEADERS = ("X-Seed", "X-Image-Size", "X-Hole-Fraction", "X-Inpaint-Seconds")
# Working memory of adjust_mask per pixel: the decoded mask, its hole and the RGBA answer.
_MASK_BYTES_PER_PIXEL = 12


def model_info(service):
    """IOPaint's ModelInfo of the HiFill model: an "inpaint" model (like LaMa) with no prompt,
    no ControlNet, BrushNet, strength, outpainting or LCM-LoRA."""
    return {
        "name": MODEL_NAME, "path": service.description, "model_type": "inpaint",
        "is_single_file_diffusers": False, "need_prompt": False, "controlnets": [],
        "brushnets": [], "support_strength": False, "support_outpainting": False,
        "support_lcm_lora": False, "support_controlnet": False, "support_brushnet": False,
        "support_powerpaint_v2": False,
    }


def server_config(service):
    """IOPaint's ServerConfigResponse with one model and no plugins, file manager, saving or
    samplers, plus this server's network size and memory budget under "hifill"."""
    return {
        "plugins": [], "modelInfos": [model_info(service)],
        "removeBGModel": "", "removeBGModels": [], "realesrganModel": "",
        "realesrganModels": [], "interactiveSegModel": "", "interactiveSegModels": [],
        "enableFileManager": False, "enableAutoSaving": False, "enableControlnet": False,
        # False, as IOPaint's default: the page hides its settings gear otherwise; the model
        # list it shows has the one model, and "switching" to it answers at once.
        "controlnetMethod": None, "disableModelSwitch": False, "isDesktop": False,
        "samplers": [],
        "hifill": {"network_size": service.network_size, "memory_budget": service.budget.total,
                   "max_body": service.max_body,
                   "largest_photo_pixels": service.largest_photo()},
    }


# ---------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------


def require(request, media_type):
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != media_type:
        raise RequestError(f"Content-Type must be {media_type}; got {kind or 'none'}", 415)


def parse_json(body, shape='{"image": <base64>, "mask": <base64>}'):
    """A JSON object from the body; RequestError for anything else."""
    try:
        payload = json.loads(body)
    except RecursionError:
        raise RequestError("body is JSON nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise RequestError(f"body must be JSON: {shape}") from None
    if not isinstance(payload, dict):
        raise RequestError(f"body must be a JSON object {shape}")
    return payload


def decode_base64(payload, field):
    """The file sent as base64 (raw or a data URL) in `field`, decoded from one ASCII copy of
    the text (read through a view: no slices of a text that may be 100 MB)."""
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise RequestError(f"{field}: missing; send a base64-encoded image file as {field!r}")
    start = value.find(",") + 1 if value.startswith("data:") else 0
    try:
        text = memoryview(value.encode("ascii"))[start:]
    except UnicodeEncodeError:
        raise RequestError(f"{field}: not valid base64") from None
    try:
        data = _strict_base64(text)
    except binascii.Error:
        # Line-wrapped base64 (as `base64` writes it): whitespace is skipped, nothing else.
        if not _BASE64.fullmatch(text):
            raise RequestError(f"{field}: not valid base64") from None
        try:
            data = binascii.a2b_base64(text)
        except binascii.Error:
            raise RequestError(f"{field}: not valid base64") from None
    if not data:
        raise RequestError(f"{field}: empty")
    return data


_BASE64 = re.compile(rb"[A-Za-z0-9+/=\s]*")


def _seed(payload):
    seed = payload.get("sd_seed", DEFAULT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RequestError(f"sd_seed: must be an integer; got {seed!r}")
    return seed


# ---------------------------------------------------------------------------------------------
# The work of the routes (run in worker threads)
# ---------------------------------------------------------------------------------------------


def inpaint_request(service, body, ticket):
    """POST /api/v1/inpaint: body -> (image bytes, media type, headers).

    Headers first: the photo's pixel count is reserved on `ticket` and the mask's size checked
    before either is decoded. RequestError (4xx) or memory.OverBudget for what is refused.
    """
    payload = parse_json(body)
    del body
    seed = _seed(payload)
    image_bytes = decode_base64(payload, "image")
    mask_bytes = decode_base64(payload, "mask")
    del payload
    try:
        header = photos.probe(image_bytes, "image")
        mask_header = photos.probe(mask_bytes, "mask")
        width, height = header.width, header.height
        photos.check_mask_size(mask_header, header)
        ticket.grow(header.pixels * memory.BYTES_PER_PIXEL, f"a {width}x{height} photo")
        # The mask decodes in a second thread while the photo does (Pillow lets go of the GIL).
        with ThreadPoolExecutor(1) as pool:
            reading = pool.submit(photos.read_hole_mask, mask_bytes, mask_header, header)
            del mask_bytes
            photo = photos.read_photo(image_bytes, "image", header)
            del image_bytes
            mask = reading.result()
        coverage = io.validate_mask(mask, "mask")
        tick = time.monotonic()
        result = service(photo.rgb, mask, name="image")
        seconds = time.monotonic() - tick
        del mask
        content, _, media_type = photos.encode_result(result, photo)
    except io.InputError as e:
        raise RequestError(e) from None
    headers = {"X-Seed": str(seed), "X-Image-Size": f"{width}x{height}",
               "X-Hole-Fraction": f"{coverage:.6f}", "X-Inpaint-Seconds": f"{seconds:.3f}"}
    return content, media_type, headers


def adjust_mask_request(body, ticket):
    """POST /api/v1/adjust_mask: IOPaint's mask tool (expand, shrink, reverse) -> RGBA PNG."""
    payload = parse_json(body, '{"mask": <base64>, "operate": ..., "kernel_size": ...}')
    operate, kernel = payload.get("operate"), payload.get("kernel_size", 0)
    if operate not in ("expand", "shrink", "reverse"):
        raise RequestError(f"operate: must be expand, shrink or reverse; got {operate!r}")
    if isinstance(kernel, bool) or not isinstance(kernel, int) or not 0 <= kernel <= 1000:
        raise RequestError(f"kernel_size: must be an integer in [0, 1000]; got {kernel!r}")
    data = decode_base64(payload, "mask")
    try:
        header = photos.probe(data, "mask")
        ticket.grow(header.pixels * _MASK_BYTES_PER_PIXEL, f"a {header.width}x{header.height} mask")
        mask = photos.read_hole_mask(data, header, header)
    except io.InputError as e:
        raise RequestError(e) from None
    # IOPaint's tool takes 127 as hole where its inpainting does not; here both read masks by
    # the one rule. Its kernel is the ellipse of 2k+1 pixels, io.dilate_mask's the disk of k.
    hole = mask != 0
    if operate == "reverse":
        hole = ~hole
    elif operate == "expand":
        hole = io.dilate_mask(hole.view(np.uint8), kernel) != 0
    else:
        hole = io.dilate_mask((~hole).view(np.uint8), kernel) == 0
    rgba = np.zeros((*hole.shape, 4), np.uint8)
    rgba[hole] = (0, 203, 255, 186)  # IOPaint's mask colour
    return photos.encode_png(rgba)


def gen_info(upload):
    """POST /api/v1/gen-info: the prompt a generated PNG carries in its "parameters" text
    (Stable Diffusion web UI's convention, as IOPaint reads it); empty for a photo."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(upload) as image:  # the header only: no pixels are decoded
            parameters = image.info.get("parameters", "")
    except Image.DecompressionBombError:
        raise RequestError("file: image above the size limit", 413) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise RequestError("file: not an image file, or a format Pillow cannot read") from None
    parts = str(parameters).split("Negative prompt: ")
    negative = parts[1].split("\n")[0].strip() if len(parts) > 1 else ""
    return {"prompt": parts[0].strip(), "negative_prompt": negative}


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


def add_routes(app, service, on_finish=None):
    """Adds the routes to a FastAPI app; `on_finish` (async) runs after each fill (IOPaint's
    page hears of it on socket.io)."""
    _add_error_handlers(app)
    _add_model_routes(app, service)
    _add_work_routes(app, service, on_finish)
    _add_feature_off_routes(app)
    _add_unknown_route(app)  # last: it catches every other path under PREFIX


def _ticket(request, service):
    """The request's memory ticket: the one the guard opened for its body, else a new one."""
    return guard.ticket(request.scope) or service.budget.ticket()


async def _in_thread(function, *args):
    """`function(*args)` in a worker thread; running out of memory there is a 413."""
    from fastapi.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(function, *args)
    except MemoryError:
        raise RequestError("image too large for this server's memory", 413) from None


def _add_error_handlers(app):
    """Every error as IOPaint's JSON: refusals, the budget's, the routing's and failures."""
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestError)
    async def refused(request, e):
        return error_response(e.status, str(e))

    @app.exception_handler(memory.OverBudget)
    async def over_budget(request, e):
        return error_response(e.status, str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request, e):  # 404, 405, ... of the routing
        return error_response(e.status_code, e.detail, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def failed(request, e):
        logging.getLogger(__name__).exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"{type(e).__name__}: {e}")


def _add_model_routes(app, service):
    """health, server-config, model, samplers and inputimage: what the server holds."""
    from fastapi import Request
    from fastapi.responses import JSONResponse

    @app.get(PREFIX + "/health")
    def health():
        return service.health()

    @app.get(PREFIX + "/server-config")
    def get_server_config():
        return server_config(service)

    @app.get(PREFIX + "/model")
    def current_model():
        return model_info(service)

    @app.post(PREFIX + "/model")
    async def switch_model(request: Request):
        require(request, "application/json")
        name = parse_json(await request.body(), '{"name": ...}').get("name")
        if name != MODEL_NAME:
            raise RequestError(f"no model {name!r} here; this server has one model, "
                               f"{MODEL_NAME!r}", 422)
        return model_info(service)

    @app.get(PREFIX + "/samplers")
    def samplers():
        return []

    @app.get(PREFIX + "/inputimage")
    def input_image():
        # IOPaint answers 200 with this error body when it was started without --input.
        return JSONResponse({"error": "HTTPException", "detail": "No input image configured",
                             "body": "", "errors": "200: No input image configured"})


def _add_work_routes(app, service, on_finish):
    """inpaint and adjust_mask: the routes that decode images, within the memory budget."""
    from fastapi import Request
    from fastapi.responses import Response

    @app.post(PREFIX + "/inpaint")
    async def inpaint(request: Request):
        require(request, "application/json")
        ticket = _ticket(request, service)
        try:
            content, media, headers = await _in_thread(inpaint_request, service,
                                                       await request.body(), ticket)
        finally:
            ticket.release()
        if on_finish is not None:
            await on_finish()
        return Response(content=content, media_type=media, headers=headers)

    @app.post(PREFIX + "/adjust_mask")
    async def adjust_mask(request: Request):
        require(request, "application/json")
        ticket = _ticket(request, service)
        try:
            content = await _in_thread(adjust_mask_request, await request.body(), ticket)
        finally:
            ticket.release()
        return Response(content=content, media_type="image/png")


def _add_feature_off_routes(app):
    """gen-info, save_image and the plugin routes, answered as IOPaint answers them when the
    feature is off."""
    from fastapi import Request

    @app.post(PREFIX + "/gen-info")
    async def post_gen_info(request: Request):
        require(request, "multipart/form-data")
        form = await request.form(max_files=1, max_fields=1)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise RequestError("file: missing; send the photo as the form field 'file'")
            return await _in_thread(gen_info, upload.file)
        finally:
            await form.close()

    @app.post(PREFIX + "/save_image")
    async def save_image(request: Request):
        raise RequestError("Output directory not configured or doesn't exist")

    @app.post(PREFIX + "/switch_plugin_model")
    async def switch_plugin_model(request: Request):
        require(request, "application/json")
        parse_json(await request.body(), '{"plugin_name": ..., "model_name": ...}')
        return None  # IOPaint ignores a plugin it does not have

    @app.post(PREFIX + "/run_plugin_gen_mask")
    @app.post(PREFIX + "/run_plugin_gen_image")
    async def run_plugin(request: Request):
        require(request, "application/json")
        name = parse_json(await request.body(), '{"name": ..., "image": ...}').get("name")
        raise RequestError(f"Plugin not found: {name!r} (this server has no plugins)", 422)


def _add_unknown_route(app):
    """Any other path under PREFIX: 405 naming the methods a path has, else 404."""
    from fastapi import Request

    @app.api_route(PREFIX + "/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def unknown(request: Request, path):
        allowed = sorted({method for route in app.routes if route is not unknown_route
                          and getattr(route, "path", None) == request.url.path
                          for method in getattr(route, "methods", ())})
        if allowed:
            raise RequestError(f"{request.method} is not served at {request.url.path}; use "
                               f"{' or '.join(allowed)}", 405)
        raise RequestError(f"no route {PREFIX}/{path} here (IOPaint's file manager, media and "
                           "plugin routes are off)", 404)

    unknown_route = app.routes[-1]
