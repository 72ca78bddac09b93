"""Photos and masks as the server reads and writes them: the header first, then the pixels.

`probe` reads only a file's header (size after EXIF orientation, format, the metadata to keep),
so that a request's memory is known, and a mask's size checked against its photo, before
anything is decoded. Photos are decoded by `hifill_tf.io.read_image`'s rules (EXIF orientation,
RGBA, 16-bit, CMYK; plain 8-bit RGB(A) PNGs by the same decoder with zlib on a second core,
`_read_plain_png`); results go back in the photo's format with its alpha channel and metadata
(EXIF without the orientation already applied, ICC profile, resolution, PNG text).

Masks of the REST API are read as IOPaint reads them (`read_hole_mask`): grayscale, above 127
is hole, any alpha channel ignored. (The page of `hifill_tf.app.page` reads its painted layers
by their alpha instead.)
"""

from __future__ import annotations

import io as _io
import os
import queue
import struct
import tempfile
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from hifill_tf import io
# The library's decoding (the arrays of a decoded image), encoder settings (PNG at a fast
# compression level, JPEG/WebP quality) and format limits, so the server reads and writes
# files as infer.py does.
from hifill_tf.io.read import _to_arrays
from hifill_tf.io.write import _ALPHA_FORMATS, _MAX_SIDE, _save_options

try:  # zlib-ng (the app extra): the same deflate streams, Huffman coding in half zlib's time here
    from zlib_ng import zlib_ng as _deflate
except ImportError:
    _deflate = zlib

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


def read_photo(source, name=None, header=None) -> Photo:
    """Decodes a photo file (a path, or its bytes) by io.read_image's rules, 8-bit RGB(A)
    PNGs on two cores (`_read_plain_png`); errors name `name` instead of the path."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "image"
        header = header or probe(source, name)
        arrays = _read_plain_png(source)
        if arrays is not None:
            return Photo(*arrays, header)
        with tempfile.NamedTemporaryFile(prefix="hifill-photo-") as f:
            f.write(source)
            f.flush()
            return read_photo(f.name, name, header)
    path = os.fspath(source)
    name = name or os.path.basename(path)
    header = header or probe(path, name)
    if header.format == "PNG":
        with open(path, "rb") as f:
            arrays = _read_plain_png(f.read())
        if arrays is not None:
            return Photo(*arrays, header)
    try:
        rgb, alpha = io.read_image(path)
    except io.InputError as e:
        raise io.InputError(" ".join(str(e).replace(path, name).split())) from None
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


def _chunk_parts(kind, data):
    """A PNG chunk as [length and kind, data, CRC], to be joined with the file once."""
    crc = _deflate.crc32(data, _deflate.crc32(kind))
    return [struct.pack(">I", len(data)) + kind, data, struct.pack(">I", crc)]


def _chunk(kind, data):
    return b"".join(_chunk_parts(kind, data))


def _idat_of_strip(strip, last):
    """(IDAT chunk, Adler-32 of the rows, their length) of a strip of filtered rows.

    Raw deflate, Huffman coding only: the Up-filtered rows of a photo are residuals that
    string matching barely shortens (8K: 0.7 s and 43.7 MB, against 1.1 s and 45.1 MB).
    """
    compressor = _deflate.compressobj(1, _deflate.DEFLATED, -15, 8, _deflate.Z_HUFFMAN_ONLY)
    end = _deflate.Z_FINISH if last else _deflate.Z_SYNC_FLUSH
    data = compressor.compress(strip) + compressor.flush(end)
    return _chunk_parts(b"IDAT", data), _deflate.adler32(strip), strip.nbytes


def _adler32_combine(first, second, second_length):
    """The Adler-32 of two byte strings joined, from theirs (zlib's adler32_combine)."""
    base = 65521
    rem = second_length % base
    low = ((first & 0xFFFF) + (second & 0xFFFF) + base - 1) % base
    high = (rem * (first & 0xFFFF) + (first >> 16) + (second >> 16) + base - rem) % base
    return low | high << 16


def encode_png(array, metadata=None) -> bytes:
    """A PNG of a uint8 [H, W], [H, W, 3] or [H, W, 4] array: an 8K photo in 1.3 s here against
    3.3-4.0 s for Pillow at compress_level 1, for a file of the same size (43.7 MB, 44.0 MB).

    Pillow picks a filter per row by trying all five, which alone took 1.3 s at 8K, then
    deflates with string matching on one core. Here every row gets the Up filter (one NumPy
    subtraction), deflate codes Huffman only, and strips of rows are deflated in parallel,
    joined as pigz joins them (each strip ends on a byte boundary with a sync flush, only the
    last is final). Each strip is an IDAT chunk of its own, its CRC and the rows' Adler-32
    computed by its thread; the zlib header and the Adler-32 of all rows are IDAT chunks of
    two and four bytes. `metadata` is a `Header.metadata`.
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
        parts = list(pool.map(_idat_of_strip, strips,
                              [i == len(strips) - 1 for i in range(len(strips))]))
    del filtered, strips
    adler = parts[0][1]
    for _, strip_adler, length in parts[1:]:
        adler = _adler32_combine(adler, strip_adler, length)

    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPES[channels], 0, 0, 0)
    chunks = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), *_metadata_chunks(metadata or {}),
              _chunk(b"IDAT", b"\x78\x01"), *(piece for idat, _, _ in parts for piece in idat),
              _chunk(b"IDAT", struct.pack(">I", adler)), _chunk(b"IEND", b"")]
    del parts
    return b"".join(chunks)


def _metadata_chunks(metadata):
    """The PNG chunks of a `Header.metadata`: ICC profile, resolution, EXIF and text."""
    chunks = []
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
    return chunks


# ---------------------------------------------------------------------------------------------
# PNG reading on two cores
# ---------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that leave the pixels and their orientation as IHDR and IDAT give them. (Pillow takes
# the orientation from eXIf and from text chunks too: "Raw profile type exif", XMP.)
_PLAIN_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"iCCP",
                           b"pHYs", b"sBIT", b"tIME", b"bKGD"})
_PLAIN_COLOR_TYPES = {2: 3, 6: 4}  # RGB, RGBA -> bytes per pixel at 8 bits
_STORED_BLOCK = 65535  # the largest stored deflate block
_INFLATE_STEP = 1 << 16  # compressed bytes inflated at a time


class _PlainPng(NamedTuple):
    ihdr: memoryview  # the whole IHDR chunk, CRC included
    idat: list  # the IDAT chunks' data: one zlib stream
    raw_size: int  # bytes of the filtered scanlines


def _plain_png(data) -> _PlainPng | None:
    """The parts of an 8-bit RGB or RGBA PNG without interlacing, whose image data is one run
    of IDAT chunks and whose other chunks are all in _PLAIN_CHUNKS; None for any other file."""
    view = memoryview(data)
    if len(view) < 33 or view[:8] != _PNG_SIGNATURE or view[8:16] != b"\0\0\0\rIHDR":
        return None
    width, height, depth, color, compression, filtering, interlace = struct.unpack_from(
        ">IIBBBBB", view, 16)
    if (depth, compression, filtering, interlace) != (8, 0, 0, 0) or color not in \
            _PLAIN_COLOR_TYPES:
        return None
    idat, kinds, pos = [], [], 8
    while pos + 12 <= len(view):
        length, kind = struct.unpack_from(">I4s", view, pos)
        end = pos + 12 + length
        if kind not in _PLAIN_CHUNKS or end > len(view):
            return None
        if kind == b"IDAT":
            if idat and kinds[-1] != b"IDAT":
                return None  # a second run, which Pillow would not read
            idat.append(view[pos + 8:end - 4])
        kinds.append(kind)
        pos = end
        if kind == b"IEND":
            break
    if not idat or kinds[0] != b"IHDR":
        return None
    return _PlainPng(view[8:33], idat, height * (1 + width * _PLAIN_COLOR_TYPES[color]))


class _StoredPng:
    """The PNG of `png`'s parts with its image data deflated again as stored blocks, which
    a thread makes by inflating the original while Pillow reads this one: zlib inflates the
    next rows on one core while Pillow un-filters the last ones on the other. The scanlines
    are the original's, so are the pixels. (Its IDAT CRC is left 0: Pillow does not check
    IDAT CRCs, of this file or of the original.)"""

    def __init__(self, png: _PlainPng):
        self.png = png
        blocks = -(-png.raw_size // _STORED_BLOCK)
        stream = 2 + png.raw_size + 5 * blocks + 4  # zlib header, blocks, Adler-32
        self.head = b"".join([_PNG_SIGNATURE, png.ihdr, struct.pack(">I", stream), b"IDAT",
                              b"\x78\x01"])
        self.tail = b"\0\0\0\0" + _chunk(b"IEND", b"")
        self.queue = queue.Queue(maxsize=32)
        self.stop = threading.Event()
        self.item, self.offset, self.position = memoryview(self.head), 0, 0
        self.thread = threading.Thread(target=self._inflate, daemon=True)
        self.thread.start()

    def _put(self, item):
        while not self.stop.is_set():
            try:
                return self.queue.put(item, timeout=0.1)
            except queue.Full:
                pass

    def _inflate(self):
        try:
            inflater, done, carry, adler = zlib.decompressobj(), 0, b"", 1
            for data in self.png.idat:
                for start in range(0, len(data), _INFLATE_STEP):
                    raw = inflater.decompress(data[start:start + _INFLATE_STEP])
                    raw = memoryview(carry + raw if carry else raw)[:self.png.raw_size - done]
                    last = done + len(raw) == self.png.raw_size
                    whole = len(raw) if last else len(raw) // _STORED_BLOCK * _STORED_BLOCK
                    parts = []
                    for i in range(0, whole, _STORED_BLOCK):
                        block = raw[i:i + _STORED_BLOCK]
                        final = last and i + len(block) == whole
                        parts += [struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF),
                                  block]
                        adler = zlib.adler32(block, adler)
                    carry, done = bytes(raw[whole:]), done + whole
                    if parts:
                        self._put(b"".join(parts))
                    if last:
                        self._put(struct.pack(">I", adler) + self.tail)
                        return self._put(None)
                    if self.stop.is_set():
                        return None
            raise EOFError("the image data ends early")
        except Exception as e:  # noqa: BLE001 (handed to the reader, which falls back)
            self._put(e)

    def read(self, size=-1):
        """`size` bytes (all that are left if fewer, or if `size` < 0), as from a file."""
        pieces = []
        while size != 0 and self.item is not None:
            if self.offset == len(self.item):
                item = self.queue.get()
                if isinstance(item, Exception):
                    raise item
                self.item, self.offset = (None, 0) if item is None else (memoryview(item), 0)
                continue
            end = len(self.item) if size < 0 else min(len(self.item), self.offset + size)
            pieces.append(self.item[self.offset:end])
            size -= end - self.offset if size > 0 else 0
            self.position += end - self.offset
            self.offset = end
        return b"".join(pieces)

    def tell(self):
        return self.position

    def seek(self, position, whence=0):
        """Within the head only (Pillow goes back to the start, then to the image data)."""
        position = position + (self.position if whence == 1 else 0)
        if whence == 2 or self.item is None or self.item.obj is not self.head \
                or position > len(self.head):
            raise OSError("this stream seeks only within its first chunks")
        self.offset = self.position = position
        return position

    def close(self):
        self.stop.set()
        self.thread.join()


def _read_plain_png(data) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(RGB, alpha) of a `_plain_png` file as io.read_image reads it, in about half its time;
    None for another file, or whatever this way cannot read (io.read_image then says why)."""
    png = _plain_png(data)
    if png is None:
        return None
    stream = _StoredPng(png)
    try:
        with Image.open(stream, formats=["PNG"]) as image:
            image.load()
            return _to_arrays(image, "image")
    except Exception:  # noqa: BLE001
        return None
    finally:
        stream.close()


def write_result(path_stem, rgb, photo: Photo):
    """Writes the result as `path_stem` + the format's extension (atomically); returns the path."""
    content, extension, _ = encode_result(rgb, photo)
    path = path_stem + extension
    with io.atomic_file(path) as f:
        f.write(content)
    return path
