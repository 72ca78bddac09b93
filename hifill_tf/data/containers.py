"""Files inside the containers that some Debian packages ship their photographs in.

A manifest path `FILE::MEMBER` names MEMBER inside FILE. `open_container(FILE)` reads and
indexes FILE once and returns a function MEMBER -> bytes; the format follows FILE's extension:

- `.rcc`: a Qt binary resource file (gcompris-qt-data). MEMBER is the resource path,
  e.g. `/gcompris/src/activities/.../fish1.webp`.
- `.edj`: an Enlightenment Eet file (enlightenment-data). MEMBER is an Eet entry name, e.g.
  `edje/images/0`; the backgrounds store each resolution as a plain JPEG entry.
- `.pzl`: a jigzo puzzle. MEMBER is one of its embedded files, e.g. `bike-3x4.jpg` (the texture
  atlas whose top-left corner holds the puzzle's picture).
- `.sh3f`: a Sweet Home 3D furniture library, a zip archive.

Only what these packages hold is decoded: stored and zlib-compressed rcc resources, stored Eet
entries. Anything else (zstd rcc resources, compressed or ciphered Eet entries) raises
ContainerError naming the file and member rather than returning wrong bytes.
"""

import io
import os
import struct
import zipfile
import zlib

RCC_COMPRESSED = 0x01  # zlib, as qCompress writes it: 4-byte big-endian length, zlib stream
RCC_DIRECTORY = 0x02
RCC_COMPRESSED_ZSTD = 0x04
EET_MAGIC = 0x1EE70F42  # Eet file format 2 (EET_MAGIC_FILE2)
_MALFORMED = (struct.error, IndexError, ValueError, UnicodeDecodeError, zlib.error,
              zipfile.BadZipFile)


class ContainerError(ValueError):
    """A container or member cannot be read: the message names it and says why."""


def open_container(path):
    """A function member -> bytes over the container at `path`."""
    readers = {".rcc": rcc_reader, ".edj": eet_reader, ".pzl": pzl_reader, ".sh3f": zip_reader}
    kind = os.path.splitext(path)[1]
    if kind not in readers:
        raise ContainerError(f"{path}: unknown container type {kind!r} (.rcc, .edj, .pzl or .sh3f)")
    with open(path, "rb") as f:
        blob = f.read()
    try:
        read = readers[kind](blob)
    except ContainerError as error:
        raise ContainerError(f"{path}: {error}") from None
    except _MALFORMED as error:
        raise ContainerError(f"{path}: malformed {kind} file ({error})") from None

    def read_member(member):
        try:
            return read(member)
        except KeyError:
            raise ContainerError(f"{path}::{member}: no such member") from None
        except ContainerError as error:
            raise ContainerError(f"{path}::{member}: {error}") from None
        except _MALFORMED as error:
            raise ContainerError(f"{path}::{member}: malformed ({error})") from None

    return read_member


def read_member(path, member):
    return open_container(path)(member)


# ---------------------------------------------------------------------------------------------
# Qt resource files (rcc)
# ---------------------------------------------------------------------------------------------


def rcc_tree(blob):
    """{resource path: (flags, offset of its data record)} of a Qt binary resource file.

    Layout (qtbase src/corelib/io/qresource.cpp): "qres", then big-endian version, tree, data
    and names offsets (version 3 adds a flags word). Tree nodes are 14 bytes (version 1) or
    22 (2 and 3, with a modification time): name offset (4), flags (2), then for a directory
    child count (4) and first child index (4), for a file locale (4) and data offset (4).
    A name is length (2), hash (4), UTF-16BE characters; a data record is length (4), bytes.
    """
    if blob[:4] != b"qres":
        raise ContainerError("not a Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack_from(">4I", blob, 4)
    if version not in (1, 2, 3):
        raise ContainerError(f"rcc format version must be 1, 2 or 3; got {version}")
    node_size = 14 if version == 1 else 22

    def name(offset):
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6
        return blob[start:start + 2 * length].decode("utf-16-be")

    files = {}
    pending = [(0, "")]  # node index, path of its parent folder
    while pending:
        index, parent = pending.pop()
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, node)
        path = f"{parent}/{name(name_offset)}" if index else ""  # the root has no name
        if flags & RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", blob, node + 6)
            if first <= index:  # children always follow their parent; this guards against loops
                raise ContainerError(f"directory node {index} points back to node {first}")
            pending.extend((child, path) for child in range(first, first + count))
        else:
            (offset,) = struct.unpack_from(">I", blob, node + 10)
            files[path] = (flags, data + offset)
    return files


def rcc_reader(blob):
    files = rcc_tree(blob)

    def read(member):
        flags, offset = files[member]
        (size,) = struct.unpack_from(">I", blob, offset)
        payload = blob[offset + 4:offset + 4 + size]
        if len(payload) != size:
            raise ContainerError(f"data record of {size} bytes runs past the end of the file")
        if flags & RCC_COMPRESSED_ZSTD:
            raise ContainerError("zstd-compressed resource (flag 0x04): not supported")
        if not flags & RCC_COMPRESSED:
            return payload
        (expected,) = struct.unpack_from(">I", payload)
        data = zlib.decompress(payload[4:])
        if len(data) != expected:
            raise ContainerError(f"inflates to {len(data)} bytes; its header says {expected}")
        return data

    return read


# ---------------------------------------------------------------------------------------------
# Enlightenment Eet files (edj)
# ---------------------------------------------------------------------------------------------


def eet_reader(blob):
    """Stored Eet entries by name.

    Layout (efl src/lib/eet/eet_lib.c, format 2): big-endian magic, entry count and dictionary
    count, then per entry data offset, stored size, decoded size, name offset, name size
    (with its NUL) and flags (bit 0 compressed, bit 1 ciphered, bit 2 alias).
    """
    magic, count, _ = struct.unpack_from(">3I", blob, 0)
    if magic != EET_MAGIC:
        raise ContainerError(f"not an Eet file of format 2 (magic {magic:#010x})")
    entries = {}
    for i in range(count):
        offset, size, _, name_offset, name_size, flags = struct.unpack_from(">6I", blob, 12 + 24 * i)
        name = blob[name_offset:name_offset + name_size].rstrip(b"\0").decode("utf-8")
        entries[name] = (offset, size, flags)

    def read(member):
        offset, size, flags = entries[member]
        if flags & 0x7:
            raise ContainerError(f"compressed, ciphered or alias entry (flags {flags:#x}): "
                                 "not supported")
        if offset + size > len(blob):
            raise ContainerError(f"entry of {size} bytes runs past the end of the file")
        return blob[offset:offset + size]

    return read


# ---------------------------------------------------------------------------------------------
# jigzo puzzles (pzl) and zip archives (sh3f)
# ---------------------------------------------------------------------------------------------


def pzl_reader(blob):
    """The embedded files of a jigzo puzzle.

    Layout (as the jigzo-data files hold it): the lines "PzlF", version, name, URL, map name and
    the map's length in bytes, the map text, then files, each as a line with its name, a line
    with its length and its bytes.
    """
    lines = blob.split(b"\n", 6)
    if lines[0] != b"PzlF" or len(lines) < 7:
        raise ContainerError("not a jigzo puzzle (no 'PzlF' header)")
    files = {}
    pos = sum(len(line) + 1 for line in lines[:6]) + int(lines[5])
    while pos < len(blob):
        if blob[pos:pos + 1] == b"\n":  # a blank line may follow a file
            pos += 1
            continue
        name_end = blob.index(b"\n", pos)
        size_end = blob.index(b"\n", name_end + 1)
        size = int(blob[name_end + 1:size_end])
        if size_end + 1 + size > len(blob):
            raise ContainerError(f"file of {size} bytes runs past the end of the puzzle")
        files[blob[pos:name_end].decode("utf-8")] = (size_end + 1, size)
        pos = size_end + 1 + size
    return lambda member: blob[files[member][0]:sum(files[member])]


def zip_reader(blob):
    archive = zipfile.ZipFile(io.BytesIO(blob))
    return archive.read
