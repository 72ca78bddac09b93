"""Photos and masks as the server reads and writes them: the header first, then the pixels.

`probe` reads only a file's header (size after EXIF orientation, format, the metadata to keep),
so that a request's memory is known, and a mask's size checked against its photo, before
anything is decoded. Photos are decoded by `hifill_tf.io.read_image` (EXIF orientation, RGBA,
16-bit, CMYK); results go back in the photo's format with its alpha channel and metadata
(EXIF without the orientation already applied, ICC profile, resolution, PNG text).

Masks of the REST API are read as IOPaint reads them (`read_hole_mask`): grayscale, above 127
is hole, any alpha channel ignored. (The page of `hifill_tf.app.page` reads its painted layers
by their alpha instead.)
"""

from __future__ import annotations

import io as _io
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from hifill_tf import io
# The library's encoder settings (PNG at a fast compression level, JPEG/WebP quality) and
# format limits, so the server's files are written as infer.py writes them.
from hifill_tf.io.write import _ALPHA_FORMATS, _MAX_SIDE, _save_options

JPEG_QUALITY = 95  # as infer.py's default --quality
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
                "TIFF": "image/tiff", "BMP": "image/bmp"}
_ORIENTATION = 0x0112
# Metadata each format can carry (Pillow's save options).
_KEEP = {"JPEG": ("exif", "icc_profile", "dpi"), "PNG": ("exif", "icc_profile", "dpi"),
         "WEBP": ("exif", "icc_profile"), "TIFF": ("icc_profile", "dpi"), "BMP": ()}


class Header(NamedTuple):
    """What a file's header says: displayed size, Pillow format, metadata to write back."""

    width: int
    height: int
    format: str
    metadata: dict

    @property
    def pixels(self):
        return self.width * self.height


class Photo(NamedTuple):
    """A decoded photo: upright RGB uint8, its alpha (or None) and its header."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    header: Header


def _source(data):
    return _io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data


def probe(data, name) -> Header:
    """The header of an image file (bytes or a path), without decoding its pixels.

    Raises io.InputError naming `name` for a file that is not an image or is above
    io.limits.MAX_PHOTO_PIXELS.
    """
    limit = io.limits.MAX_PHOTO_PIXELS  # at call time, so that raising it counts
    # Pillow's own bomb check stops at a lower size with its own message; ours is below.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with Image.open(_source(data)) as image:
            width, height = image.size
            exif = _exif(image)
            if exif.get(_ORIENTATION, 1) in (5, 6, 7, 8):  # turned by 90 degrees when shown
                width, height = height, width
            metadata = {key: image.info[key] for key in ("icc_profile", "dpi")
                        if image.info.get(key)}
            exif.pop(_ORIENTATION, None)  # applied to the pixels by io.read_image
            if len(exif):
                metadata["exif"] = exif.tobytes()
            text = {k: v for k, v in image.info.items() if isinstance(v, str)}
            if image.format == "PNG" and text:
                metadata["text"] = text
            fmt = "JPEG" if image.format == "MPO" else image.format  # cameras' multi-picture JPEG
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise io.InputError(f"{name}: not an image file, or a format Pillow cannot read") from None
    except Image.DecompressionBombError:
        width = height = limit  # above the limit: refused below
    if width * height > limit:
        raise io.InputError(f"{name}: image is above the {limit / 1e6:.0f}-megapixel "
                            "limit (hifill_tf.io.limits.MAX_PHOTO_PIXELS)")
    return Header(width, height, fmt, metadata)


def _exif(image) -> Image.Exif:
    """The EXIF block as read with the header. (`getexif` of a PNG without an eXIf chunk
    before its pixels decodes the whole image to look after them.)"""
    if image.format == "PNG" or "exif" in image.info:
        exif = Image.Exif()
        if image.info.get("exif"):
            exif.load(image.info["exif"])
        return exif
    return image.getexif()


def read_photo(path, name=None, header=None) -> Photo:
    """Decodes a photo file with io.read_image; errors name `name` instead of the path."""
    name = name or os.path.basename(os.fspath(path))
    header = header or probe(path, name)
    try:
        rgb, alpha = io.read_image(path)
    except io.InputError as e:
        raise io.InputError(" ".join(str(e).replace(os.fspath(path), name).split())) from None
    return Photo(rgb, alpha, header)


def check_mask_size(header: Header, photo: Header, name="mask"):
    """InputError unless the mask's header says it has the photo's displayed size."""
    if (header.width, header.height) != (photo.width, photo.height):
        message = (f"{name}: mask is {header.width}x{header.height} but the image is "
                   f"{photo.width}x{photo.height}")
        if (header.width, header.height) == (photo.height, photo.width):
            message += " (rotated by 90 degrees? check the EXIF orientation of both)"
        raise io.InputError(message)


def read_hole_mask(data, header: Header, photo: Header, name="mask") -> np.ndarray:
    """A mask file as IOPaint reads it: uint8 [H, W], 255 = hole, of the photo's size.

    Grayscale (Pillow's "L" conversion), above 127 is hole (`io.hole_mask`, which also takes a
    0/1 file as 0/1), alpha ignored: the soft edge of a brush stroke drawn in white is hole.
    The size is checked on `header` before the mask is decoded.
    """
    check_mask_size(header, photo, name)
    try:
        with Image.open(_source(data)) as image:
            gray = ImageOps.exif_transpose(image).convert("L")
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise io.InputError(f"{name}: cannot decode the image (truncated or corrupt file?): "
                            f"{e}") from None
    return np.where(io.hole_mask(np.asarray(gray)), np.uint8(255), np.uint8(0))


def output_format(header: Header, has_alpha: bool) -> str:
    """The photo's own format where it can hold the result, else PNG."""
    fmt = header.format if header.format in _EXTENSIONS else "PNG"
    if max(header.width, header.height) > _MAX_SIDE.get(fmt, float("inf")):
        fmt = "PNG"
    if has_alpha and fmt not in _ALPHA_FORMATS and fmt != "JPEG":
        fmt = "PNG"
    return fmt


def encode_result(rgb, photo: Photo):
    """The filled photo as a file like the input: (bytes, extension, media type).

    The alpha channel goes back on (JPEG has none to keep), and so does the metadata the
    format can hold.
    """
    fmt = output_format(photo.header, photo.alpha is not None)
    array = rgb
    if photo.alpha is not None and fmt != "JPEG":
        array = np.concatenate([rgb, photo.alpha[..., None]], axis=2)
    options = dict(_save_options(fmt, JPEG_QUALITY))
    metadata = photo.header.metadata
    for key in _KEEP[fmt]:
        if key in metadata:
            options[key] = metadata[key]
    if fmt == "PNG" and "text" in metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata["text"].items():
            info.add_text(key, value)
        options["pnginfo"] = info
    if fmt == "PNG":
        return encode_png(array, metadata), ".png", "image/png"
    buffer = _io.BytesIO()
    image = Image.fromarray(array)
    del array
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue(), _EXTENSIONS[fmt], _MEDIA_TYPES[fmt]


# ---------------------------------------------------------------------------------------------
# PNG, fast
# ---------------------------------------------------------------------------------------------

_PNG_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> gray, RGB, RGBA


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _deflate_part(part, last):
    # Raw deflate, Huffman coding only: the Up-filtered rows of a photo are residuals that
    # string matching barely shortens (8K: 0.7 s and 43.7 MB, against 1.1 s and 45.1 MB).
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_HUFFMAN_ONLY)
    end = zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
    return compressor.compress(part) + compressor.flush(end)


def encode_png(array, metadata=None) -> bytes:
    """A PNG of a uint8 [H, W], [H, W, 3] or [H, W, 4] array: an 8K photo in 1.3 s here against
    3.3-4.0 s for Pillow at compress_level 1, for a file of the same size (43.7 MB, 44.0 MB).

    Pillow picks a filter per row by trying all five, which alone took 1.3 s at 8K, then
    deflates with string matching on one core. Here every row gets the Up filter (one NumPy
    subtraction), deflate codes Huffman only, and strips of rows are deflated in parallel,
    joined as pigz joins them (each strip ends on a byte boundary with a sync flush, only the
    last is final) under one zlib header and Adler-32. `metadata` is a `Header.metadata`.
    """
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    rows = array.reshape(height, width * channels)
    filtered = np.empty((height, 1 + width * channels), np.uint8)
    filtered[:, 0] = 2  # Up: each byte minus the one above (mod 256)
    filtered[0, 0] = 0
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    strips = np.array_split(filtered, max(1, min(os.cpu_count() or 1, height)))
    with ThreadPoolExecutor(len(strips)) as pool:  # zlib lets go of the GIL while it works
        parts = list(pool.map(_deflate_part, strips,
                              [i == len(strips) - 1 for i in range(len(strips))]))
    adler = zlib.adler32(filtered)
    del filtered

    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPES[channels], 0, 0, 0)
    chunks = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header)]
    metadata = metadata or {}
    if metadata.get("icc_profile"):
        chunks.append(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata["icc_profile"])))
    if metadata.get("dpi"):
        x, y = (round(d / 0.0254) for d in metadata["dpi"])  # pixels per metre
        chunks.append(_chunk(b"pHYs", struct.pack(">IIB", x, y, 1)))
    if metadata.get("exif"):
        exif = metadata["exif"]
        chunks.append(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    for key, value in metadata.get("text", {}).items():
        try:
            chunks.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
        except UnicodeEncodeError:  # international text
            chunks.append(_chunk(b"iTXt", key.encode("utf-8") + b"\0\0\0\0\0"
                                 + value.encode("utf-8")))
    # IDAT written in place: the compressed strips are joined once, into the file itself.
    size = 2 + sum(len(part) for part in parts) + 4
    crc = zlib.crc32(b"\x78\x01", zlib.crc32(b"IDAT"))
    for part in parts:
        crc = zlib.crc32(part, crc)
    tail = struct.pack(">I", adler)
    crc = zlib.crc32(tail, crc)
    chunks += [struct.pack(">I", size), b"IDAT\x78\x01", *parts, tail, struct.pack(">I", crc),
               _chunk(b"IEND", b"")]
    return b"".join(chunks)


def write_result(path_stem, rgb, photo: Photo):
    """Writes the result as `path_stem` + the format's extension (atomically); returns the path."""
    content, extension, _ = encode_result(rgb, photo)
    path = path_stem + extension
    with io.atomic_file(path) as f:
        f.write(content)
    return path
