"""The page of `python -m hifill_tf.app`: open a photo, paint the hole, fill it, compare, download.

The editor is Gradio's `ImageEditor` on a preview of at most PREVIEW_SIDE pixels a side: the
browser re-encodes its layers as PNG after every stroke, which at 8K would take seconds. The
server keeps the upload itself, at full resolution, and maps the painted layer onto it
(`painted_mask`); the result has the photo's size, format, alpha and metadata. Decoding and
filling reserve their memory on the service's budget, as the REST API's requests do.

The painted hole is any paint (alpha > 0), so that the soft edge of a stroke is filled; the
REST API reads mask files as IOPaint does instead (`photos.read_hole_mask`: grayscale above
127, alpha ignored), since its masks come from other programs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from typing import NamedTuple

import numpy as np
from PIL import Image

from hifill_tf import io
from hifill_tf.app import memory, photos

PREVIEW_SIDE = 1280  # longest side of the preview painted on, in pixels
BRUSH_SIZE = 24  # default brush radius, in pixels of the preview
MAX_DILATE = 64  # pixels of the photo
RESULTS_KEPT_SECONDS = 3600
CSS = "#status p { margin: 0.2em 0; }"
_UPLOAD_TYPES = sorted(set(io.IMAGE_EXTENSIONS))


def preview(rgb, side=PREVIEW_SIDE):
    """The photo scaled (area-averaged) to at most `side` pixels a side; the photo if smaller."""
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX, reducing_gap=2.0))


def painted_mask(layers, shape):
    """The hole painted on the preview, at the photo's resolution: uint8 [H, W], 255 = hole.

    `layers` are the editor's RGBA layers (any size, the preview's normally). A preview pixel
    is hole where any layer has paint (alpha > 0: the soft edge of a stroke is filled too, so
    what looks painted is filled); each photo pixel takes the preview pixel it falls in
    (nearest neighbour), so the hole never reaches beyond the paint by more than one preview
    pixel. None when nothing is painted.
    """
    height, width = shape[:2]
    paint = None
    for layer in layers or []:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            continue  # a layer without alpha cannot say where the paint is
        alpha = layer[..., 3] > 0
        if paint is not None and paint.shape != alpha.shape:
            alpha = _resize_mask(alpha, paint.shape) > 0
        paint = alpha if paint is None else paint | alpha
    if paint is None or not paint.any():
        return None
    return _resize_mask(paint, (height, width))


def _resize_mask(mask, shape):
    """Nearest neighbour, exactly: output pixel (y, x) takes the input pixel its centre falls
    in, floor((y + 0.5) * h_in / h_out) (integer arithmetic, no rounding at the boundaries)."""
    mask = np.asarray(mask, bool)
    height, width = shape[:2]
    rows = (np.arange(height) * 2 + 1) * mask.shape[0] // (2 * height)
    cols = (np.arange(width) * 2 + 1) * mask.shape[1] // (2 * width)
    return np.where(mask[rows[:, None], cols[None, :]], np.uint8(255), np.uint8(0))


class _Results:
    """Result files for download, in one temporary folder; files older than an hour go.

    Gradio copies a returned file into its own cache, so ours are only needed briefly.
    """

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="hifill-app-")
        atexit.register(shutil.rmtree, self.directory, True)
        self._lock = threading.Lock()
        # (path, Photo): the last photo read, for the run after it. It lives outside the
        # budget: one photo, 4 bytes a pixel, against BYTES_PER_PIXEL while it is worked on.
        self._cached = (None, None)

    def path_stem(self, name):
        self.prune()
        folder = tempfile.mkdtemp(dir=self.directory)
        stem = os.path.splitext(os.path.basename(name))[0] or "photo"
        return os.path.join(folder, f"{stem}-inpainted")

    def prune(self):
        now = time.time()
        for entry in os.scandir(self.directory):
            if now - entry.stat().st_mtime > RESULTS_KEPT_SECONDS:
                shutil.rmtree(entry.path, ignore_errors=True)

    def photo(self, path, budget) -> photos.Photo:
        """The photo at `path`, decoded within the budget (once for a load and its runs)."""
        with self._lock:
            if self._cached[0] == path:
                return self._cached[1]
        name = os.path.basename(path)
        header = photos.probe(path, name)
        with budget.ticket() as ticket:
            ticket.grow(header.pixels * memory.BYTES_PER_PIXEL,
                        f"a {header.width}x{header.height} photo")
            photo = photos.read_photo(path, name, header)
        with self._lock:
            self._cached = (path, photo)
        return photo


def _message(error, path, name):
    """An InputError (or a refusal by the memory budget) about Gradio's copy of the upload,
    as the user knows the file."""
    return str(error).replace(os.fspath(path), name).replace(os.path.basename(path), name)


def theme():
    import gradio as gr

    # System fonts: the default theme loads its font from the web, and this page works offline.
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


class _Actions:
    """What the page's buttons do, over `service` (a `hifill_tf.app.service.Inpainting`)."""

    def __init__(self, service):
        self.service = service
        self.results = _Results()

    def photo(self, path, name):
        """The photo at `path`, or gr.Error with the reason, naming the file as `name`."""
        import gradio as gr

        try:
            return self.results.photo(path, self.service.budget)
        except (io.InputError, memory.OverBudget) as e:
            raise gr.Error(_message(e, path, name), print_exception=False) from None

    def load(self, path):
        """A photo opened (or cleared): the state, editor, comparison, download and status."""
        import gradio as gr

        if not path:
            return None, None, None, gr.update(value=None, visible=False), "Open a photo to start."
        name = os.path.basename(path)
        photo = self.photo(path, name)
        height, width = photo.rgb.shape[:2]
        small = preview(photo.rgb)
        shown = (f"shown at {small.shape[1]}x{small.shape[0]}; the result has the full size"
                 if small is not photo.rgb else "shown at full size")
        status = (f"**{name}**: {width}x{height}, {shown}. Paint over what to remove, then "
                  "press **Inpaint**.")
        editor_value = {"background": small, "layers": [], "composite": None}
        return ({"path": path, "name": name}, editor_value, None,
                gr.update(value=None, visible=False), status)

    def restore(self, state):
        """The editor's Clear removes the photo with the paint: put the photo back."""
        if not state:
            return None
        photo = self.photo(state["path"], state["name"])
        return {"background": preview(photo.rgb), "layers": [], "composite": None}

    def run(self, state, editor_value, dilate, progress):
        """Inpaint pressed: the comparison, the download button and the status."""
        import gradio as gr

        if not state:
            raise gr.Error("Open a photo first.", print_exception=False)
        path, name = state["path"], state["name"]
        tick = time.monotonic()
        progress(0, desc="Reading the photo")
        photo = self.photo(path, name)
        height, width = photo.rgb.shape[:2]
        mask = painted_mask((editor_value or {}).get("layers"), photo.rgb.shape)
        if mask is None:
            raise gr.Error("Nothing is painted: paint over what to remove with the brush first.",
                           print_exception=False)
        if dilate:
            mask = io.dilate_mask(mask, int(dilate))
        try:
            coverage = io.validate_mask(mask, "the painted hole")
            with self.service.budget.ticket() as ticket:
                ticket.grow(height * width * memory.BYTES_PER_PIXEL, f"a {width}x{height} photo")
                progress(0.1, desc=f"Filling {100 * coverage:.1f}% of {width}x{height}")
                result = self.service(photo.rgb, mask, name=name)
                del mask
                progress(0.9, desc="Writing the result")
                output = photos.write_result(self.results.path_stem(name), result, photo)
        except (io.InputError, memory.OverBudget) as e:
            raise gr.Error(_message(e, path, name), print_exception=False) from None
        seconds = time.monotonic() - tick
        status = (f"Filled {100 * coverage:.1f}% of **{name}** ({width}x{height}) in "
                  f"{seconds:.1f} s. Download: {os.path.basename(output)}, {width}x{height}.")
        label = f"Download {width}x{height} {os.path.splitext(output)[1][1:].upper()}"
        return ((preview(photo.rgb), preview(result)),
                gr.update(value=output, visible=True, label=label), status)


class _Parts(NamedTuple):
    """The page's components that events read or write."""

    photo: object
    editor: object
    dilate: object
    run_button: object
    compare: object
    download: object
    status: object


def build(service):
    """The page (a gr.Blocks) over `service` (a `hifill_tf.app.service.Inpainting`)."""
    import gradio as gr

    actions = _Actions(service)

    def run(state, editor_value, dilate, progress=gr.Progress()):
        return actions.run(state, editor_value, dilate, progress)

    with gr.Blocks(title="HiFill inpainting", delete_cache=(RESULTS_KEPT_SECONDS,
                                                            RESULTS_KEPT_SECONDS)) as page:
        state = gr.State(None)
        gr.Markdown("## HiFill: paint over what to remove\n"
                    "Open a photo (JPEG, PNG, WebP, TIFF, BMP; 8K and beyond), paint the hole "
                    "with the brush, press **Inpaint**. The painting is on a preview; the "
                    "result has the photo's full resolution and format. "
                    f"Model: {service.name}, network {service.network_size}.")
        parts = _layout()
        outputs = [state, parts.editor, parts.compare, parts.download, parts.status]
        parts.photo.upload(actions.load, parts.photo, outputs, show_progress="minimal")
        parts.photo.clear(actions.load, parts.photo, outputs)
        parts.editor.clear(actions.restore, state, parts.editor, show_progress="hidden")
        parts.run_button.click(run, [state, parts.editor, parts.dilate],
                               [parts.compare, parts.download, parts.status],
                               concurrency_limit=1)
    return page


def _layout() -> _Parts:
    """The editor column (photo, editor, dilation, Inpaint) beside the result column
    (comparison, download, status)."""
    import gradio as gr

    with gr.Row():
        with gr.Column(scale=3):
            photo = gr.File(label="Photo: open or drop", file_types=_UPLOAD_TYPES,
                            type="filepath", elem_id="photo", height=120)
            editor = gr.ImageEditor(
                label="Paint the hole (brush; eraser, undo and clear in the toolbar)",
                elem_id="editor", sources=(), type="numpy", image_mode="RGBA",
                layers=False, transforms=(), format="png", interactive=True, height=560,
                brush=gr.Brush(default_size=BRUSH_SIZE, colors=[("#ff00ff", 0.6)],
                               color_mode="fixed"),
                eraser=gr.Eraser(default_size=BRUSH_SIZE), buttons=["fullscreen"])
            with gr.Row():
                dilate = gr.Slider(0, MAX_DILATE, value=0, step=1, elem_id="dilate",
                                   label="Grow the hole by (pixels of the photo)")
                run_button = gr.Button("Inpaint", variant="primary", elem_id="run")
        with gr.Column(scale=2):
            compare = gr.ImageSlider(label="Before / after (drag the handle)",
                                     elem_id="compare", interactive=False, type="numpy",
                                     format="jpeg", buttons=["fullscreen"])
            download = gr.DownloadButton("Download", visible=False, elem_id="download",
                                         variant="primary")
            status = gr.Markdown("Open a photo to start.", elem_id="status")
    return _Parts(photo, editor, dilate, run_button, compare, download, status)
