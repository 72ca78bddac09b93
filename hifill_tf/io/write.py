"""Writing files: the image formats, `atomic_file` (the one atomic write), image encoding."""

from __future__ import annotations

import contextlib
import io as _io
import math
import operator
import os
import secrets
import stat

import numpy as np
from PIL import Image

from hifill_tf.io.errors import _err, _size

# Extensions that find_images lists and write_image_atomic writes, with their Pillow formats.
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
IMAGE_EXTENSIONS = tuple(sorted(FORMATS))

# Formats that cannot hold more than this many pixels per side.
_MAX_SIDE = {"JPEG": 65_535, "WEBP": 16_383}
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


def same_file(a, b) -> bool:
    """True when paths `a` and `b` name one file (also through symlinks or hard links)."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:  # one of them does not exist
        return False


@contextlib.contextmanager
def atomic_file(path, mode: str = "wb"):
    """``with atomic_file(path) as f:`` -- `path` is either the old file or the complete new one.

    The data goes to a temporary file in the same directory, is fsync'ed and then renamed over
    `path` (os.replace is atomic on one file system); on any error the temporary file is removed
    and `path` is untouched. Parent directories are created; the permissions of a file being
    replaced are kept. The one atomic write of the project (images, weights, JSON, tables).
    """
    name = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(name))
    os.makedirs(directory, exist_ok=True)
    while True:
        temp = os.path.join(directory, f".{os.path.basename(name)}.{secrets.token_hex(4)}.tmp")
        try:
            # Created like any new file (0o666 less the umask), not mkstemp's 0o600.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(temp, stat.S_IMODE(os.stat(name).st_mode))
        except FileNotFoundError:
            pass
        os.replace(temp, name)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def _checked_format(path, array, quality) -> str:
    """The Pillow format for `path`'s extension, after checking `array` and `quality` for it."""
    name = os.fspath(path)
    fmt = FORMATS.get(os.path.splitext(name)[1].lower())
    if fmt is None:
        raise _err(
            path,
            f"unknown image extension {os.path.splitext(name)[1]!r}; "
            f"use one of {', '.join(IMAGE_EXTENSIONS)}",
        )
    if array.dtype != np.uint8:
        raise _err(path, f"image to write must be uint8; got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise _err(
            path, f"image to write must be [H, W, 3], [H, W, 4] or [H, W]; got shape {array.shape}"
        )
    if array.ndim == 3 and array.shape[2] == 4 and fmt not in _ALPHA_FORMATS:
        raise _err(path, f"{fmt} cannot store an alpha channel; use .png, .webp or .tiff")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise _err(path, f"image to write is empty: shape {array.shape}")
    if max(array.shape[:2]) > _MAX_SIDE.get(fmt, math.inf):
        raise _err(
            path,
            f"{fmt} images are at most {_MAX_SIDE[fmt]} pixels on a side; this one is "
            f"{_size(array.shape[1], array.shape[0])}: use .png or .tiff",
        )
    quality = operator.index(quality)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100]; got {quality}")
    return fmt


def _save_options(fmt, quality) -> dict:
    return {
        # Level 1 is ~5x faster than the default 6 on photos, for files ~10% larger.
        "PNG": {"compress_level": 1},
        "JPEG": {"quality": quality},
        "WEBP": {"quality": quality},
    }.get(fmt, {})


def encode_image(array: np.ndarray, name, quality: int = 95) -> bytes:
    """The bytes `write_image_atomic(name, array)` writes: same checks, format and options.

    `name` is a file name (only its extension chooses the format) used in error messages; for
    writers that are not local files (e.g. Beam's FileSystems).
    """
    array = np.asarray(array)
    fmt = _checked_format(name, array, quality)
    buffer = _io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **_save_options(fmt, quality))
    return buffer.getvalue()


def write_image_atomic(path, rgb_uint8: np.ndarray, *, protect=(), quality: int = 95) -> str:
    """Writes an image so that `path` is either the old file or the complete new one.

    The format follows the extension (see FORMATS); the file is written through `atomic_file`.
    Raises InputError, before touching anything, for
    an unknown extension, a bad array, or a `path` that is the same file as one in `protect`
    (the inputs). `rgb_uint8` is uint8 [H, W, 3], [H, W] or, for PNG/WebP/TIFF, [H, W, 4].

    No metadata is written: the pixels are already in display orientation (read_image applies
    EXIF), so copying the source EXIF would rotate the result a second time.
    Returns `path` as a string.
    """
    name = os.fspath(path)
    array = np.asarray(rgb_uint8)
    fmt = _checked_format(path, array, quality)
    for source in protect:
        if source is not None and same_file(name, os.fspath(source)):
            raise _err(path, f"refusing to overwrite the input {os.fspath(source)}")
    if os.path.isdir(name):
        raise _err(path, "is a directory")

    options = _save_options(fmt, quality)
    image = Image.fromarray(array)
    try:
        with atomic_file(name) as f:
            image.save(f, format=fmt, **options)
    except Exception as e:
        if not isinstance(e, OSError):
            raise OSError(f"{name}: cannot write the image: {e}") from e
        raise
    return name
