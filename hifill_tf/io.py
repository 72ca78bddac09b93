"""Host-side image and mask I/O for inference, the Python API and evaluation.

Photos are read as uint8 RGB in display orientation (EXIF applied); masks as uint8 [H, W] with
255 = hole and 0 = known pixels, the convention of the paper (Sec. 4.1, "1 indicates the hole").
Everything here is NumPy + Pillow: no TensorFlow import, so a front end can check its inputs
before paying for the model.

Every bad-input error is an `InputError` whose message starts with the file it is about.
"""

from __future__ import annotations

import contextlib
import io as _io
import logging
import math
import operator
import os
import secrets
import stat
from typing import NamedTuple, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

_log = logging.getLogger(__name__)

# Largest photo accepted, in pixels. 16K x 8K is 134 Mpx; 300 Mpx leaves room for panoramas while
# still stopping a decompression bomb (a 300 Mpx RGB array is 0.9 GB). Read at call time, so a
# user with the memory can raise it: `hifill_tf.io.MAX_PIXELS = 600_000_000`.
MAX_PIXELS = 300_000_000

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

_ORIENTATION_TAG = 0x0112


class InputError(ValueError):
    """Bad input: the message names the file (when there is one) and what is wrong with it."""


class EmptyMaskError(InputError):
    """The mask has no hole pixels: callers return the photo unchanged and say so."""


def _err(path, message: str, kind: type[InputError] = InputError) -> InputError:
    return kind(f"{os.fspath(path)}: {message}" if path is not None else message)


def _size(width: int, height: int) -> str:
    return f"{width}x{height}"


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _open(path) -> Image.Image:
    """Opens, bounds-checks, decodes and EXIF-rotates an image file; InputError on any failure."""
    name = os.fspath(path)
    # Pillow refuses images above 2 * MAX_IMAGE_PIXELS with its own message; lift its limit to
    # ours (never lower it) so that the clear error below is the one users see.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(name) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _err(
                    path,
                    f"image is {_size(width, height)} ({width * height / 1e6:.0f} megapixels), "
                    f"above the {MAX_PIXELS / 1e6:.0f}-megapixel limit "
                    "(raise hifill_tf.io.MAX_PIXELS if you have the memory)",
                )
            image.load()
            return _orient(image, name)
    except InputError:
        raise
    except FileNotFoundError:
        raise _err(path, "no such file") from None
    except IsADirectoryError:
        raise _err(path, "is a directory, not an image file") from None
    except PermissionError:
        raise _err(path, "permission denied") from None
    except UnidentifiedImageError:
        hint = ""
        if os.path.splitext(name)[1].lower() in (".heic", ".heif"):
            hint = " (HEIC/HEIF needs the pillow-heif plugin; convert it to JPEG or PNG)"
        raise _err(path, f"not an image file, or a format Pillow cannot read{hint}") from None
    except Image.DecompressionBombError as e:
        raise _err(path, f"image too large: {e}") from None
    except MemoryError:
        raise
    except Exception as e:  # Decoders raise OSError, SyntaxError, EOFError, zlib.error, ...
        raise _err(path, f"cannot decode the image (truncated or corrupt file?): {e}") from e


def _orient(image: Image.Image, name: str) -> Image.Image:
    """Applies the EXIF orientation, so arrays are as the photo is displayed."""
    try:
        orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception as e:  # A broken EXIF block should not make a good photo unreadable.
        _log.warning("%s: ignoring unreadable EXIF data (%s)", name, e)
        return image
    if orientation in range(2, 9):  # exif_transpose copies even when there is nothing to do
        image = ImageOps.exif_transpose(image)
    return image


def _scale16(values: np.ndarray) -> np.ndarray:
    """Maps 0..65535 onto 0..255 with rounding (65535 -> 255, 32768 -> 128)."""
    values = np.clip(values, 0, 65535).astype(np.uint32)
    return ((values * 255 + 32767) // 65535).astype(np.uint8)


def _to_arrays(image: Image.Image, path) -> tuple[np.ndarray, np.ndarray | None]:
    """Decoded image -> (uint8 [H, W, 1] or [H, W, 3], uint8 alpha [H, W] or None)."""
    mode = image.mode
    if mode == "1":
        image, mode = image.convert("L"), "L"
    elif mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in image.info
        mode = "RGBA" if has_alpha else "RGB"
        image = image.convert(mode)
    elif mode in ("RGBa", "La"):  # premultiplied alpha
        mode = mode.upper()
        image = image.convert(mode)
    elif mode == "CMYK":
        image, mode = _cmyk_to_rgb(image, path), "RGB"

    if mode.startswith("I;16") or mode == "I":
        # 16-bit grayscale (PNG, TIFF). Pillow decodes 16-bit RGB(A) PNGs to 8 bits itself by
        # keeping the high byte; here we round instead, which agrees with it at 0, 32768, 65535.
        return _scale16(np.array(image))[..., None], None
    if mode == "L":
        return np.array(image)[..., None], None
    if mode == "RGB":
        return np.array(image), None
    if mode in ("LA", "RGBA"):
        array = np.array(image)
        return np.ascontiguousarray(array[..., :-1]), np.ascontiguousarray(array[..., -1])
    try:
        return np.array(image.convert("RGB")), None
    except (ValueError, OSError):
        raise _err(path, f"unsupported pixel format {mode!r}; save it as 8-bit RGB") from None


def _cmyk_to_rgb(image: Image.Image, path) -> Image.Image:
    # Print CMYK files carry an ICC profile, and the naive conversion is visibly off; use the
    # profile when littlecms is available, else fall back to Pillow's naive formula.
    icc = image.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            return ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(_io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
        except Exception as e:
            _log.warning("%s: CMYK ICC profile unusable (%s); converting naively", path, e)
    return image.convert("RGB")


def read_image(path) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads a photo as displayed: (RGB uint8 [H, W, 3], alpha uint8 [H, W] or None).

    EXIF orientation is applied. RGB, RGBA, LA, L, 1, P (with transparency), CMYK and 16-bit
    files are accepted; 16-bit values are rounded onto 0..255, grayscale repeated over the three
    channels. Alpha comes back separately (see `mask_from_alpha`). Raises InputError for a
    missing, truncated or non-image file, or one above MAX_PIXELS.
    """
    channels, alpha = _to_arrays(_open(path), path)
    if channels.shape[-1] == 1:
        channels = np.repeat(channels, 3, axis=-1)
    return channels, alpha


def mask_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Alpha channel -> mask: transparent pixels (alpha < 128) are the hole (255)."""
    alpha = np.asarray(alpha)
    if alpha.ndim != 2:
        raise InputError(f"alpha must be [H, W]; got shape {alpha.shape}")
    return np.where(alpha < 128, np.uint8(255), np.uint8(0))


HOLE_THRESHOLD = 127  # integer masks: values above this are hole


def hole_mask(mask, name=None) -> np.ndarray:
    """The one mask rule of every entry point: array -> bool [H, W] (or the input's shape), True = hole.

    - bool: as given;
    - integers: above 127 (``HOLE_THRESHOLD``; a white-on-black mask, JPEG noise and all),
      except that a mask whose values are only 0 and 1 is a 0/1 mask (1 = hole), never
      silently an empty one;
    - floats: above 0.5 (a 0..1 mask).

    ``hifill_tf.export.saved_model`` applies the same rule inside the graph (``hole_tensor``).
    """
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if np.issubdtype(mask.dtype, np.integer):
        if mask.size and mask.max() <= 1 and mask.min() >= 0:
            return mask == 1
        return mask > HOLE_THRESHOLD
    if np.issubdtype(mask.dtype, np.floating):
        return mask > 0.5
    raise InputError(f"{name or 'mask'}: masks must be bool, integer or float arrays; "
                     f"got {mask.dtype}")


def read_mask(
    path,
    image_shape: Sequence[int] | None = None,
    *,
    from_alpha: bool = False,
    threshold: int = 127,
    resize: bool = False,
) -> np.ndarray:
    """Reads a hole mask: uint8 [H, W], 255 = hole, 0 = keep.

    A pixel is a hole when its value is above `threshold` (`hole_mask`'s rule: a file whose
    values are only 0 and 1 is a 0/1 mask, 1 = hole). For colour masks the value is the
    largest of R, G and B, so a mask painted in any bright colour works; an RGBA mask is first
    composited onto black, so transparent pixels are never holes. With `from_alpha=True` the
    file's alpha channel is the mask instead (transparent = hole, see `mask_from_alpha`).
    EXIF orientation is applied, as for the photo.

    `image_shape` ([H, W] or [H, W, C]) is the photo's shape; a mask of another size raises
    InputError unless `resize=True`, which resizes it nearest-neighbour.
    """
    threshold = operator.index(threshold)
    if not 0 <= threshold < 255:
        raise ValueError(f"threshold must be in [0, 254]; got {threshold}")
    channels, alpha = _to_arrays(_open(path), path)
    if from_alpha:
        if alpha is None:
            raise _err(path, "mask has no alpha channel (from_alpha=True needs one)")
        mask = mask_from_alpha(alpha)
    else:
        value = channels[..., 0]
        for c in range(1, channels.shape[-1]):  # pairwise, faster than max(axis=-1)
            value = np.maximum(value, channels[..., c])
        if alpha is not None:
            value = ((value.astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
        hole = value == 1 if value.size and value.max() <= 1 else value > threshold
        mask = np.where(hole, np.uint8(255), np.uint8(0))

    if image_shape is not None:
        height, width = (int(s) for s in tuple(image_shape)[:2])
        mask_h, mask_w = mask.shape
        if (mask_h, mask_w) != (height, width):
            message = f"mask is {_size(mask_w, mask_h)} but the image is {_size(width, height)}"
            if (mask_h, mask_w) == (width, height):
                message += " (rotated by 90 degrees? check the EXIF orientation of both)"
            if not resize:
                raise _err(path, message + "; pass resize=True to resize it")
            if abs(math.log((mask_w / mask_h) / (width / height))) > 0.01:
                _log.warning("%s: %s; resizing changes its aspect ratio", os.fspath(path), message)
            mask = np.array(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))
    return mask


# ---------------------------------------------------------------------------------------------
# Mask operations
# ---------------------------------------------------------------------------------------------


def _check_mask(mask, path=None) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise _err(path, f"mask must be [H, W]; got shape {mask.shape}")
    return mask


def mask_coverage(mask: np.ndarray) -> float:
    """Fraction of the pixels that are hole (nonzero), in [0, 1]."""
    mask = _check_mask(mask)
    return np.count_nonzero(mask) / mask.size if mask.size else 0.0


def validate_mask(mask: np.ndarray, path=None) -> float:
    """Checks that there is something to fill and something to fill it from; returns coverage.

    Raises EmptyMaskError when the mask has no hole, InputError when the hole is the whole image.
    """
    coverage = mask_coverage(_check_mask(mask, path))
    if coverage == 0.0:
        raise _err(path, "mask is empty: nothing to fill", EmptyMaskError)
    if coverage == 1.0:
        raise _err(path, "mask covers the whole image: nothing to borrow from")
    return coverage


def _dilate_rows(words: np.ndarray, half_widths: dict[int, list[int]]) -> np.ndarray:
    """Dilates bit-packed rows (uint64 [h, n], pixel x at bit x % 64 of word x // 64).

    `half_widths` maps each run half-width w to the row offsets dy >= 0 whose run it is.
    """
    h, n = words.shape
    run, wider, shifted = words.copy(), np.empty_like(words), np.empty_like(words)
    grown = np.zeros_like(words)
    width_now = 0
    for w in sorted(half_widths):
        while width_now < w:
            # Widen every run by d on both sides: run | run >> d | run << d (in pixels). With
            # d <= 2 * width + 1 the three windows overlap, so the result is again a run.
            d = min(w - width_now, 2 * width_now + 1)
            q, s = divmod(d, 64)
            np.copyto(wider, run)
            if q < n:
                a, b = wider[:, q:], wider[:, : n - q]  # destinations: pixels moved up, down
                if s == 0:
                    a |= run[:, : n - q]
                    b |= run[:, q:]
                else:
                    # Moving pixels to higher x is a left shift of the little-endian word, with
                    # the bits that fall off carried into the next word.
                    t = shifted[:, : n - q]
                    a |= np.left_shift(run[:, : n - q], s, out=t)
                    a[:, 1:] |= np.right_shift(run[:, : n - q - 1], 64 - s, out=t[:, 1:])
                    b |= np.right_shift(run[:, q:], s, out=t)
                    b[:, :-1] |= np.left_shift(run[:, q + 1 :], 64 - s, out=t[:, :-1])
            run, wider = wider, run
            width_now += d
        for dy in half_widths[w]:
            if dy >= h:
                break
            grown[dy:] |= run[: h - dy]
            if dy:
                grown[: h - dy] |= run[dy:]
    return grown


_STRIP_WORDS = 65_536  # 512 KB of uint64 per working array


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grows the hole by `pixels`: binary dilation with the disk dx^2 + dy^2 <= pixels^2.

    Returns a new uint8 mask in {0, 255}; any nonzero input pixel is hole; 0 copies the mask.

    Exact and fast at 16K: the disk is the union over dy of horizontal runs of half-width
    floor(sqrt(r^2 - dy^2)), so the dilation is an OR of row-shifted horizontal maxima. Rows
    are bit-packed into 64-bit words, which makes a row shift a slice and a horizontal max a few
    word shifts (1/64 of the bytes); only the hole's bounding box, grown by r, is processed.
    """
    mask = _check_mask(mask)
    r = operator.index(pixels)
    if r < 0:
        raise ValueError(f"pixels must be >= 0; got {pixels}")
    height, width = mask.shape
    out = np.zeros((height, width), np.uint8)
    if mask.size == 0:
        return out
    if r == 0:
        np.copyto(out, 255, where=mask != 0)
        return out

    packed = np.packbits(mask != 0 if mask.dtype != np.uint8 else mask, axis=1, bitorder="little")
    hole_rows = np.flatnonzero(packed.any(axis=1))
    if hole_rows.size == 0:
        return out
    first, last = hole_rows[0], hole_rows[-1]
    cols = np.flatnonzero(packed[first : last + 1].any(axis=0))
    y0, y1 = max(0, first - r), min(height, last + 1 + r)
    # Columns in whole bytes so the block is a slice of `packed`; the extra pixels are zeros.
    b0, b1 = max(0, cols[0] - (r + 7) // 8), min(packed.shape[1], cols[-1] + 1 + (r + 7) // 8)
    x0, x1 = 8 * b0, min(width, 8 * b1)
    block = packed[y0:y1, b0:b1]
    pad = -block.shape[1] % 8
    block = np.pad(block, ((0, 0), (0, pad))) if pad else np.ascontiguousarray(block)
    # Zero padding past the right edge stays exact: padded bits only ever hold maxima of
    # windows that also hold real pixels, and they are dropped by unpackbits(count=...).
    words = block.view("<u8")
    half_widths = {}
    for dy in range(r + 1):
        half_widths.setdefault(math.isqrt(r * r - dy * dy), []).append(dy)
    # Strips of rows (plus r rows of context on each side) keep the working set in cache:
    # ~2x faster at 16K than whole-block passes, which are bound by memory bandwidth.
    strip = max(4 * r, _STRIP_WORDS // words.shape[1])
    for top in range(0, words.shape[0], strip):
        lo, hi = max(0, top - r), min(words.shape[0], top + strip + r)
        rows = _dilate_rows(words[lo:hi], half_widths)[top - lo : top - lo + strip]
        bits = np.unpackbits(rows.view(np.uint8), axis=1, count=x1 - x0, bitorder="little")
        np.multiply(bits, 255, out=out[y0 + top : y0 + top + len(rows), x0:x1])
    return out


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


def _listing(directory) -> list[str]:
    name = os.fspath(directory)
    if not os.path.isdir(name):
        problem = "not a directory" if os.path.exists(name) else "no such directory"
        raise _err(directory, problem)
    return sorted(
        entry.name
        for entry in os.scandir(name)
        if not entry.name.startswith(".")  # hidden files, macOS ._ forks, our own temp files
        and os.path.splitext(entry.name)[1].lower() in FORMATS
        and entry.is_file()
    )


def find_images(directory) -> list[str]:
    """Image files (by extension, see IMAGE_EXTENSIONS) directly in `directory`, sorted."""
    return [os.path.join(os.fspath(directory), n) for n in _listing(directory)]


class MaskMatches(NamedTuple):
    masks: dict  # image path (as given) -> mask path
    errors: dict  # image path (as given) -> message naming the image: missing or ambiguous mask


def match_masks(image_paths, mask_dir) -> MaskMatches:
    """Pairs each image with the mask in `mask_dir` that has the same file stem.

    `photo.jpg` matches `photo.<any image extension>`, or else `photo_mask.*` / `photo-mask.*`;
    stems compare case-insensitively. An image with no candidate, or with more than one, goes
    to `errors` (the others still match). The image itself is never its own mask, so masks may
    live beside the photos.
    """
    by_stem: dict[str, list[str]] = {}
    for entry in _listing(mask_dir):
        by_stem.setdefault(os.path.splitext(entry)[0].lower(), []).append(entry)
    masks, errors = {}, {}
    for image in image_paths:
        stem = os.path.splitext(os.path.basename(os.fspath(image)))[0]
        candidates = [
            os.path.join(os.fspath(mask_dir), entry)
            for key in (stem.lower(), stem.lower() + "_mask", stem.lower() + "-mask")
            for entry in by_stem.get(key, [])
        ]
        candidates = [c for c in candidates if not same_file(c, os.fspath(image))]
        if len(candidates) == 1:
            masks[image] = candidates[0]
        elif not candidates:
            errors[image] = (
                f"{os.fspath(image)}: no mask in {os.fspath(mask_dir)} "
                f"(looked for {stem}.*, {stem}_mask.*, {stem}-mask.*)"
            )
        else:
            found = ", ".join(os.path.basename(c) for c in candidates)
            errors[image] = (
                f"{os.fspath(image)}: ambiguous mask in {os.fspath(mask_dir)}: {found}; keep one"
            )
    return MaskMatches(masks, errors)


# ---------------------------------------------------------------------------------------------
# Pictures for humans
# ---------------------------------------------------------------------------------------------

_GAP = 8
_LABEL_H = 20
_BACKGROUND = (32, 32, 32)
_RED = np.array([255, 0, 0], np.float32)
_BOX_COLOUR = (255, 220, 0)


def crop_boxes(mask: np.ndarray, count: int, size: int) -> list[tuple[int, int, int, int]]:
    """Up to `count` size x size windows (left, top, right, bottom) showing the most hole.

    Greedy: each window is placed where it covers the most hole pixels not yet shown (counted
    on a grid of size/8 cells), centred on those pixels. Stops early when all hole is shown,
    so a small hole gets one window, not `count` copies of it.
    """
    mask = _check_mask(mask)
    height, width = mask.shape
    size = min(int(size), height, width)
    if count <= 0 or size <= 0:
        return []
    cell = max(1, size // 8)
    k = max(1, size // cell)  # window side, in cells
    starts_y, starts_x = np.arange(0, height, cell), np.arange(0, width, cell)
    counts = np.add.reduceat(mask != 0, starts_y, axis=0, dtype=np.int64)
    counts = np.add.reduceat(counts, starts_x, axis=1)
    grid_h, grid_w = counts.shape
    centres_y = (starts_y + np.minimum(starts_y + cell, height)) / 2
    centres_x = (starts_x + np.minimum(starts_x + cell, width)) / 2
    boxes = []
    for _ in range(count):
        if not counts.any():
            break
        integral = np.pad(counts.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        kh, kw = min(k, grid_h), min(k, grid_w)
        sums = (
            integral[kh:, kw:] - integral[:-kh, kw:] - integral[kh:, :-kw] + integral[:-kh, :-kw]
        )
        i, j = np.unravel_index(np.argmax(sums), sums.shape)
        window = counts[i : i + kh, j : j + kw]
        total = window.sum()
        cy = (window.sum(1) * centres_y[i : i + kh]).sum() / total
        cx = (window.sum(0) * centres_x[j : j + kw]).sum() / total
        top = int(np.clip(round(cy - size / 2), 0, height - size))
        left = int(np.clip(round(cx - size / 2), 0, width - size))
        boxes.append((left, top, left + size, top + size))
        # Cells whose centre the window shows count as shown.
        shown_y = (centres_y >= top) & (centres_y < top + size)
        shown_x = (centres_x >= left) & (centres_x < left + size)
        counts[np.ix_(shown_y, shown_x)] = 0
    return boxes


def _overlay(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Blends red over the hole; `hole` in [0, 1] (fractional on downscaled panels)."""
    a = (0.5 * hole.astype(np.float32))[..., None]
    return (rgb * (1.0 - a) + _RED * a + 0.5).astype(np.uint8)


def _scaled(array: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A whole-picture panel: ``array`` resized to ``size`` (width, height) if it differs."""
    pil = Image.fromarray(array)
    if pil.size != tuple(size):
        pil = pil.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return pil


def _outline(pil: Image.Image, boxes, scale: float, font=None) -> Image.Image:
    """Draws the crop windows (full-resolution boxes) on a panel scaled by ``scale``;
    numbered when a font is given."""
    draw = ImageDraw.Draw(pil)
    for n, (left, top, right, bottom) in enumerate(boxes, 1):
        box = [left * scale, top * scale, right * scale - 1, bottom * scale - 1]
        draw.rectangle(box, outline=_BOX_COLOUR, width=2)
        if font is not None:
            draw.text((box[0] + 4, box[1] + 2), str(n), fill=_BOX_COLOUR, font=font)
    return pil


def _font():
    try:
        return ImageFont.load_default(size=14)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: bitmap font
        return ImageFont.load_default()


def side_by_side(
    image: np.ndarray,
    mask: np.ndarray,
    output: np.ndarray,
    crops: int = 2,
    max_width: int = 2048,
    crop_size: int = 512,
) -> np.ndarray:
    """A picture for humans: input with the hole in red | output, then 1:1 crops below.

    The top row shows both whole images, downscaled to fit `max_width` (the crop windows are
    outlined and numbered). Each following row shows one window (see `crop_boxes`) of the
    input-with-hole and of the output at 1:1, unscaled, so fine detail can be judged.
    Returns uint8 [H', W', 3] with W' <= max_width; crops are at most crop_size and shrink to
    fit max_width.
    """
    image, output = np.asarray(image), np.asarray(output)
    mask = _check_mask(mask)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"image must be uint8 [H, W, 3]; got {image.dtype} {image.shape}")
    if output.shape != image.shape or output.dtype != np.uint8:
        raise InputError(f"output must be uint8 {image.shape}; got {output.dtype} {output.shape}")
    if mask.shape != image.shape[:2]:
        raise InputError(f"mask is {mask.shape} but the image is {image.shape[:2]}")
    height, width = mask.shape
    panel = (int(max_width) - 3 * _GAP) // 2
    if panel < 16:
        raise ValueError(f"max_width must be at least {3 * _GAP + 32}; got {max_width}")

    size = min(int(crop_size), panel, height, width)
    boxes = crop_boxes(mask, crops, size)
    scale = min(1.0, panel / width)
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    column = max(small[0], size if boxes else 0)

    def overview(array, with_hole):
        pil = _scaled(array, small)
        if with_hole:
            hole = Image.fromarray(mask != 0).convert("L")  # 0/255
            if small != (width, height):
                hole = hole.resize(small, Image.Resampling.BOX)
            pil = Image.fromarray(_overlay(np.asarray(pil), np.asarray(hole) / 255.0))
        return _outline(pil, boxes, scale, font)

    font = _font()
    canvas_h = _LABEL_H + small[1] + _GAP + len(boxes) * (_LABEL_H + size + _GAP)
    canvas = Image.new("RGB", (2 * column + 3 * _GAP, canvas_h), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x_in, x_out = _GAP, 2 * _GAP + column
    zoom = f" (shown at {100 * scale:.0f}%)" if scale < 1 else ""
    draw.text((x_in, 3), f"input + hole{zoom}", fill=(230, 230, 230), font=font)
    draw.text((x_out, 3), f"output{zoom}", fill=(230, 230, 230), font=font)
    canvas.paste(overview(image, True), (x_in, _LABEL_H))
    canvas.paste(overview(output, False), (x_out, _LABEL_H))

    y = _LABEL_H + small[1] + _GAP
    for n, (left, top, right, bottom) in enumerate(boxes, 1):
        where = f"{n}: x {left}-{right}, y {top}-{bottom}, 1:1"
        draw.text((x_in, y + 3), f"input {where}", fill=(230, 230, 230), font=font)
        draw.text((x_out, y + 3), f"output {where}", fill=(230, 230, 230), font=font)
        hole = mask[top:bottom, left:right] != 0
        crop_in = _overlay(image[top:bottom, left:right], hole)
        canvas.paste(Image.fromarray(crop_in), (x_in, y + _LABEL_H))
        canvas.paste(Image.fromarray(output[top:bottom, left:right]), (x_out, y + _LABEL_H))
        y += _LABEL_H + size + _GAP
    return np.asarray(canvas).copy()


def comparison_picture(
    truth: np.ndarray,
    mask: np.ndarray,
    results: list[tuple[str, np.ndarray]],
    max_width: int = 2048,
    crop_size: int = 384,
) -> np.ndarray:
    """Methods side by side: 'input + hole', each result, then 'truth', in columns.

    The top row shows every panel whole, downscaled to the column width; the second row shows
    one window of each at 1:1 (the window of ``crop_boxes`` with the most hole, outlined in
    the top row), so blur and texture can be compared pixel for pixel.
    Returns uint8 [H', W', 3] with W' <= max_width.
    """
    truth = np.asarray(truth)
    mask = _check_mask(mask)
    if truth.ndim != 3 or truth.shape[2] != 3 or truth.dtype != np.uint8:
        raise InputError(f"truth must be uint8 [H, W, 3]; got {truth.dtype} {truth.shape}")
    if mask.shape != truth.shape[:2]:
        raise InputError(f"mask is {mask.shape} but the image is {truth.shape[:2]}")
    for label, result in results:
        if np.shape(result) != truth.shape:
            raise InputError(f"{label}: result is {np.shape(result)}, expected {truth.shape}")
    hole = mask != 0
    panels = ([("input + hole", _overlay(np.where(hole[..., None], 0, truth), hole))]
              + [(label, np.asarray(result)) for label, result in results]
              + [("truth", truth)])
    height, width = mask.shape
    column = (int(max_width) - (len(panels) + 1) * _GAP) // len(panels)
    if column < 16:
        raise ValueError(f"max_width {max_width} is too small for {len(panels)} panels")
    size = min(int(crop_size), column, height, width)
    boxes = crop_boxes(mask, 1, size)
    scale = min(1.0, column / width)
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    font = _font()
    rows_h = _LABEL_H + small[1] + _GAP + (_LABEL_H + size + _GAP if boxes else 0)
    canvas = Image.new("RGB", (len(panels) * (column + _GAP) + _GAP, rows_h), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    zoom = f" (shown at {100 * scale:.0f}%)" if scale < 1 else ""
    for n, (label, array) in enumerate(panels):
        x = _GAP + n * (column + _GAP)
        draw.text((x, 3), f"{label}{zoom}", fill=(230, 230, 230), font=font)
        canvas.paste(_outline(_scaled(array, small), boxes, scale), (x, _LABEL_H))
        for left, top, right, bottom in boxes:
            y = _LABEL_H + small[1] + _GAP
            draw.text((x, y + 3), f"{label}, 1:1", fill=(230, 230, 230), font=font)
            canvas.paste(Image.fromarray(np.ascontiguousarray(array[top:bottom, left:right])),
                         (x, y + _LABEL_H))
    return np.asarray(canvas).copy()
