"""Reading photos and masks from files: decoding, EXIF orientation, pixel formats, the size limit.

The size limit is ``hifill_tf.io.limits.MAX_PHOTO_PIXELS``, read at call time so that a user
may raise it.
"""

from __future__ import annotations

import io as _io
import logging
import math
import operator
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from hifill_tf.io import limits
from hifill_tf.io.errors import InputError, _err, _size
from hifill_tf.io.masks import mask_from_alpha

_log = logging.getLogger(__name__)

_ORIENTATION_TAG = 0x0112


def _open(path) -> Image.Image:
    """Opens, bounds-checks, decodes and EXIF-rotates an image file; InputError on any failure."""
    name = os.fspath(path)
    limit = limits.MAX_PHOTO_PIXELS  # at call time, so that raising it counts
    # Pillow refuses images above 2 * MAX_IMAGE_PIXELS with its own message; lift its limit to
    # ours (never lower it) so that the clear error below is the one users see.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with Image.open(name) as image:
            width, height = image.size
            if width * height > limit:
                raise _err(
                    path,
                    f"image is {_size(width, height)} ({width * height / 1e6:.0f} megapixels), "
                    f"above the {limit / 1e6:.0f}-megapixel limit "
                    "(raise hifill_tf.io.limits.MAX_PHOTO_PIXELS if you have the memory)",
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


def _channels(image: Image.Image, rawmode, shape) -> np.ndarray:
    """Channels of a decoded image copied out once, by Pillow's raw encoder (as `tobytes` runs
    it) writing into a new array: `np.array` of an image copies its pixels twice (to one bytes
    object, then into the array), 0.14-0.34 s and 100 MB more at 8K."""
    array = np.empty(shape, np.uint8)
    view = memoryview(array).cast("B")
    encoder = Image._getencoder(image.mode, "raw", rawmode)
    encoder.setimage(image.im, (0, 0, image.width, image.height))
    position, status = 0, 0
    while not status:
        _, status, data = encoder.encode(max(65536, image.width * 4))
        view[position:position + len(data)] = data
        position += len(data)
    if status < 0 or position != array.nbytes:
        raise OSError(f"Pillow's raw encoder stopped with status {status}")
    return array


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
    shape = (image.height, image.width)
    if mode == "L":
        return _channels(image, "L", shape)[..., None], None
    if mode == "RGB":
        return _channels(image, "RGB", (*shape, 3)), None
    if mode == "RGBA":
        return _channels(image, "RGB", (*shape, 3)), _channels(image, "A", shape)
    if mode == "LA":
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
    missing, truncated or non-image file, or one above limits.MAX_PHOTO_PIXELS.
    """
    channels, alpha = _to_arrays(_open(path), path)
    if channels.shape[-1] == 1:
        channels = np.repeat(channels, 3, axis=-1)
    return channels, alpha


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
