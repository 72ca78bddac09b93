"""Helpers for the command-line front ends: the model behind infer.py, a progress bar, timing.

`load_inpainter` gives one interface, ``inpainter(image, mask, name) -> image``, over the two
model sources a user can have: a generator weights file (.npz, the bundled default or one from
train.py) or a SavedModel written by export.py.
"""

import math
import os
import shutil
import sys
import time

import numpy as np

from hifill_tf.io import InputError, hole_mask

SAVED_MODEL_SIGNATURE = "serving_default"


class ModelError(RuntimeError):
    """No usable model: the message says what is missing and which flag supplies one."""


def format_seconds(seconds):
    """3.25 -> '3.2 s', 125 -> '2m05s', 3725 -> '1h02m'; the one duration format of the logs."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# ---------------------------------------------------------------------------------------------
# One photo of a batch (infer.py, hifill_tf.beam)
# ---------------------------------------------------------------------------------------------


def read_example(image_path, mask_path=None, *, from_alpha=False, resize_mask=False, dilate=0):
    """The photo and its hole mask (uint8, 255 = hole), as the command-line front ends read them.

    Returns (rgb uint8 [H, W, 3], mask uint8 [H, W], notes). With `from_alpha` the photo's
    transparent pixels are the hole and `mask_path` is unused; `dilate` grows the hole. Raises
    `io.InputError` whose message names the file and, where a flag is the fix, the flag.
    """
    from hifill_tf import io

    rgb, alpha = io.read_image(image_path)
    notes = []
    if from_alpha:
        if alpha is None:
            raise io.InputError(f"{os.fspath(image_path)}: has no alpha channel; "
                                "--mask_from_alpha fills transparent pixels")
        mask = io.mask_from_alpha(alpha)
    else:
        try:
            mask = io.read_mask(mask_path, rgb.shape, resize=resize_mask)
        except io.InputError as e:  # say it in flags, not in Python
            raise io.InputError(str(e).replace("pass resize=True", "pass --resize_mask")) from None
        if alpha is not None:
            notes.append("alpha dropped")
    if dilate:
        mask = io.dilate_mask(mask, dilate)
    return rgb, mask, notes


def failure_message(path, error: BaseException) -> str:
    """The one-line reason for a photo that failed: an InputError already names its file."""
    if isinstance(error, InputError):
        return str(error)
    return f"{os.fspath(path)}: {type(error).__name__}: {error}"


def batch_summary(counts, failed, seconds, extra=()):
    """The closing line of a batch: done, unchanged, skipped, failed (then ``extra``), time."""
    parts = [f"{counts['done']} done"]
    if counts.get("unchanged"):
        parts.append(f"{counts['unchanged']} unchanged (empty mask)")
    if counts.get("skipped"):
        parts.append(f"{counts['skipped']} skipped (output exists)")
    parts.append(f"{failed} failed")
    return f"{', '.join([*parts, *extra])} in {format_seconds(seconds)}"


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class GeneratorInpainter:
    """A Keras generator run through `hifill_tf.api.inpaint` (CRA at full resolution)."""

    def __init__(self, generator, max_pixels, description, feather=0):
        self.generator = generator
        self.max_pixels = max_pixels
        self.description = description
        self.feather = feather

    def __call__(self, image, mask, name=None):
        from hifill_tf import api

        return api.inpaint(image, mask, self.generator, self.max_pixels, feather=self.feather,
                           name=name)


class SavedModelInpainter:
    """The serving signature of a SavedModel from export.py.

    The signature takes uint8 image [1, H, W, 3] and uint8 mask [1, H, W, 1] (io.hole_mask rule)
    and returns a dict with uint8 ``inpainted`` [1, H, W, 3]. Inputs are told apart by their
    channel count, so the argument names do not matter.
    """

    def __init__(self, path):
        import tensorflow as tf

        self.path = os.fspath(path)
        self.description = f"SavedModel {self.path}"
        try:
            self._model = tf.saved_model.load(self.path)  # keep a reference: it owns the variables
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise ModelError(f"{self.path}: cannot load the SavedModel: {e}") from e
        signatures = getattr(self._model, "signatures", {})
        if SAVED_MODEL_SIGNATURE not in signatures:
            raise ModelError(f"{self.path}: SavedModel has no {SAVED_MODEL_SIGNATURE!r} signature "
                             f"(has: {', '.join(signatures) or 'none'}); export it with export.py")
        self._function = signatures[SAVED_MODEL_SIGNATURE]
        specs = self._function.structured_input_signature[1]
        by_channels = {spec.shape[-1] if spec.shape.rank else None: key
                       for key, spec in specs.items()}
        self._image_key = by_channels.get(3, "image")
        self._mask_key = by_channels.get(1, "mask")
        if {self._image_key, self._mask_key} != set(specs):
            raise ModelError(f"{self.path}: {SAVED_MODEL_SIGNATURE} takes {sorted(specs)}; "
                             "expected an image [1, H, W, 3] and a mask [1, H, W, 1]")

    def __call__(self, image, mask, name=None):
        import tensorflow as tf

        from hifill_tf.api import MIN_SIDE

        if min(image.shape[:2]) < MIN_SIDE:
            raise InputError(f"{name or 'image'}: image is {image.shape[1]}x{image.shape[0]}; both "
                             f"sides must be at least {MIN_SIDE} pixels")
        mask = np.where(hole_mask(mask, name), np.uint8(255), np.uint8(0))
        outputs = self._function(**{
            self._image_key: tf.constant(image[None]),
            self._mask_key: tf.constant(mask[None, :, :, None]),
        })
        result = outputs["inpainted"] if "inpainted" in outputs else next(iter(outputs.values()))
        return result[0].numpy()


# Keras 3 imports these at start-up whenever they are installed (data adapters, plots, notebook
# display, image utilities), though running the model uses none of them. In a venv with the
# test and app extras they cost 1-2 s of `import tensorflow` and 164 MB of RSS (817 against
# 653 MB after the import; infer.py on a 2048x1365 photo peaked at 1.05 against 0.95 GB).
UNUSED_BY_INFERENCE = ("pandas", "matplotlib", "IPython", "cv2", "h5py")


def skip_unused_imports():
    """Make ``UNUSED_BY_INFERENCE`` unimportable in this process (Keras then goes without them).

    Only for a process that runs nothing but the model (infer.py, export.py, the benchmark's
    TensorFlow workers), called before TensorFlow is imported; a module already imported is
    left alone.
    """
    for name in UNUSED_BY_INFERENCE:
        sys.modules.setdefault(name, None)


def find_model(weights=None, saved_model=None):
    """Checks, cheaply, that the model a front end asked for exists; returns its path.

    `saved_model` wins when given; else `weights`; else the bundled default weights. Raises
    ModelError, naming the flags that supply a model, when the file or directory is missing.
    """
    if saved_model:
        if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
            raise ModelError(f"{saved_model}: not a SavedModel directory (no saved_model.pb)")
        return saved_model
    if weights:
        if not os.path.isfile(weights):
            raise ModelError(f"{weights}: no such weights file")
        return weights
    from hifill_tf.weights import DEFAULT_WEIGHTS

    if not os.path.isfile(DEFAULT_WEIGHTS):
        raise ModelError(
            f"the default weights are not bundled yet ({DEFAULT_WEIGHTS} is missing). Pass "
            "--weights FILE.npz (a generator saved with hifill_tf.weights.save_generator_weights) "
            "or --saved_model DIR (written by export.py)")
    return DEFAULT_WEIGHTS


def load_inpainter(weights=None, saved_model=None, max_pixels=None, feather=0):
    """The model a front end asked for (see `find_model`), ready to call."""
    path = find_model(weights, saved_model)
    if saved_model:
        return SavedModelInpainter(path)

    from hifill_tf import api
    from hifill_tf.weights import load_generator

    try:
        # The bundled weights: the process's one copy (hifill_tf.inpaint's), traced once.
        generator = load_generator(path) if weights else api.default_generator()
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{path}: not a usable generator weights file: {e}") from e
    description = f"weights {path}" if weights else f"bundled weights {path}"
    # max_pixels None: api.inpaint uses the budget stored with the weights (cra.network_pixels).
    return GeneratorInpainter(generator, max_pixels, description, feather)


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------


class Progress:
    """Progress of a batch, with ETA, on `stream` (stderr by default).

    On a terminal: one bar redrawn in place, showing the item being worked on; other output
    goes through `print` so it scrolls above the bar. Elsewhere (logs, CI, pipes): one line
    per finished item, as carriage returns make a mess of log files. With `enabled=False`
    only `print` does anything (a batch of one needs no bar).
    """

    def __init__(self, total, stream=None, enabled=True):
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()
        self._first_done = None  # the first item pays for loading and tracing: ETA skips it
        self._current = ""
        self._drawn = False

    def _status(self):
        elapsed = time.monotonic() - self.started
        text = f"{self.done}/{self.total} {100 * self.done / max(self.total, 1):3.0f}%"
        text += f"  {format_seconds(elapsed)}"
        if 0 < self.done < self.total:
            if self.done == 1:
                per_item = elapsed
            else:
                per_item = (time.monotonic() - self._first_done) / (self.done - 1)
            text += f", ETA {format_seconds(per_item * (self.total - self.done))}"
        return text

    def _draw(self):
        columns = shutil.get_terminal_size((80, 20)).columns
        status = self._status()
        bar_width = max(10, min(30, columns // 4))
        filled = math.floor(bar_width * self.done / max(self.total, 1))
        line = f"[{'#' * filled}{'.' * (bar_width - filled)}] {status}  {self._current}"
        self.stream.write("\r\x1b[K" + line[:columns - 1])
        self.stream.flush()
        self._drawn = True

    def _clear(self):
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def start(self, label):
        """Item `label` is now being worked on."""
        self._current = label
        if self.tty:
            self._draw()

    def advance(self, label=None):
        """One more item finished."""
        self.done += 1
        if self.done == 1:
            self._first_done = time.monotonic()
        self._current = ""
        if self.tty:
            self._draw()
        elif self.enabled:
            self.stream.write(f"[{self._status()}] {label or ''}".rstrip() + "\n")
            self.stream.flush()

    def print(self, line, file=None):
        """Prints a line above the bar."""
        self._clear()
        print(line, file=file or sys.stdout, flush=True)
        if self.tty and self.done < self.total:
            self._draw()

    def close(self):
        self._clear()
