"""hifill_tf.data.containers: photos inside Qt rcc, Eet, jigzo and zip containers.

Each container is built here by hand from its format description, so the readers are checked
against bytes laid out independently of them.
"""

import struct
import zipfile
import zlib

import pytest

from hifill_tf.data import containers
from shared import rcc_file


PHOTO = bytes(range(256)) * 40  # compresses well, so the zlib record is shorter than the data
NOTE = b"stored as it is"


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reads_stored_and_compressed_files(tmp_path, version):
    blob = rcc_file({"/img/animals/cat.webp": (PHOTO, True), "/img/readme.txt": (NOTE, False),
                 "/top.txt": (b"top", False)}, version=version)
    assert len(blob) < len(PHOTO)  # the compressed record really is compressed
    tree = containers.rcc_tree(blob)
    assert sorted(tree) == ["/img/animals/cat.webp", "/img/readme.txt", "/top.txt"]
    assert tree["/img/animals/cat.webp"][0] == containers.RCC_COMPRESSED
    path = tmp_path / "a.rcc"
    path.write_bytes(blob)
    read = containers.open_container(str(path))
    assert read("/img/animals/cat.webp") == PHOTO
    assert read("/img/readme.txt") == NOTE
    assert containers.read_member(str(path), "/top.txt") == b"top"
    with pytest.raises(containers.ContainerError, match=r"a\.rcc::/img/dog\.webp: no such member"):
        read("/img/dog.webp")


def test_rcc_errors_name_the_file_and_member(tmp_path):
    path = tmp_path / "bad.rcc"
    path.write_bytes(rcc_file({"/z.bin": (PHOTO, False)}, zstd={"/z.bin"}))
    with pytest.raises(containers.ContainerError, match=r"bad\.rcc::/z\.bin: zstd-compressed"):
        containers.read_member(str(path), "/z.bin")

    blob = bytearray(rcc_file({"/p.bin": (PHOTO, True)}))
    qcompress_length = struct.unpack_from(">I", blob, 12)[0] + 4  # after the record's length
    struct.pack_into(">I", blob, qcompress_length, len(PHOTO) + 1)
    path.write_bytes(bytes(blob))
    with pytest.raises(containers.ContainerError, match=r"inflates to 10240 bytes; its header says 10241"):
        containers.read_member(str(path), "/p.bin")

    path.write_bytes(b"QRES" + bytes(20))
    with pytest.raises(containers.ContainerError, match=r"bad\.rcc: not a Qt resource file"):
        containers.open_container(str(path))
    path.write_bytes(rcc_file({"/p.bin": (PHOTO, False)})[:60])  # cut inside the data
    with pytest.raises(containers.ContainerError, match=r"bad\.rcc: malformed \.rcc file"):
        containers.open_container(str(path))


def _eet(entries):
    """An Eet (format 2) file of entries {name: (bytes, flags)}: header, directory, names, data."""
    header = struct.pack(">3I", containers.EET_MAGIC, len(entries), 0)
    names = b"".join(name.encode() + b"\0" for name in entries)
    names_at = len(header) + 24 * len(entries)
    data_at = names_at + len(names)
    directory, data, name_pos = b"", b"", names_at
    for name, (content, flags) in entries.items():
        directory += struct.pack(">6I", data_at + len(data), len(content), len(content), name_pos,
                                 len(name) + 1, flags)
        name_pos += len(name) + 1
        data += content
    return header + directory + names + data


def test_eet_reads_stored_entries_only(tmp_path):
    path = tmp_path / "Bamboo.edj"
    path.write_bytes(_eet({"edje/file": (b"lz4 data", 0x51), "edje/images/0": (PHOTO, 0),
                           "edje/images/1": (NOTE, 0)}))
    read = containers.open_container(str(path))
    assert read("edje/images/0") == PHOTO and read("edje/images/1") == NOTE
    with pytest.raises(containers.ContainerError, match=r"Bamboo\.edj::edje/file: compressed.*0x51"):
        read("edje/file")
    path.write_bytes(struct.pack(">3I", 0x1EE7FF00, 0, 0))  # format 1
    with pytest.raises(containers.ContainerError, match="not an Eet file of format 2"):
        containers.open_container(str(path))


def test_pzl_and_zip_members(tmp_path):
    mapping = b"#texture map data\nimage 0 0 4 3 1 1\n"
    puzzle = (b"PzlF\n0.1\nbike-3x4\nhttp://example.org/\nbike-3x4.map\n%d\n" % len(mapping)
              + mapping + b"bike-3x4-t.jpg\n%d\n" % len(NOTE) + NOTE
              + b"\nbike-3x4.jpg\n%d\n" % len(PHOTO) + PHOTO + b"\n")
    pzl = tmp_path / "bike-3x4.pzl"
    pzl.write_bytes(puzzle)
    read = containers.open_container(str(pzl))
    assert read("bike-3x4.jpg") == PHOTO and read("bike-3x4-t.jpg") == NOTE
    with pytest.raises(containers.ContainerError, match="no such member"):
        read("bike-3x4.map")  # the map is text of the header, not a member

    sh3f = tmp_path / "Scopia.sh3f"
    with zipfile.ZipFile(sh3f, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("scopia/frame1/chambord.jpg", PHOTO)
    assert containers.read_member(str(sh3f), "scopia/frame1/chambord.jpg") == PHOTO
    with pytest.raises(containers.ContainerError, match=r"Scopia\.sh3f::x\.jpg: no such member"):
        containers.read_member(str(sh3f), "x.jpg")
    other = tmp_path / "photo.tar"
    other.write_bytes(b"")
    with pytest.raises(containers.ContainerError, match=r"unknown container type '\.tar'"):
        containers.open_container(str(other))
