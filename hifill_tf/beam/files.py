"""Files on any Beam filesystem (local, gs://, s3://, ...): atomic writes, local copies to read.

Outputs are written to a hidden temporary name beside the output and then renamed, so a reader
(or a re-run with --skip_existing) sees either no file or the complete one, whichever attempt of
a retried bundle wrote it. A killed worker can leave its temporary file behind; `remove_temps`
deletes them at the end of the run that follows.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

# `.<output name>.<8 hex digits>.tmp`, the pattern of io.write_image_atomic's temporary files.
_TEMP = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")
_GLOB_CHARS = re.compile(r"[\[*?]")


def is_local(path) -> bool:
    return FileSystems.get_scheme(os.fspath(path)) in (None, "file")


def pattern_root(pattern: str) -> str:
    """The folder a glob starts from: outputs keep their path relative to it.

    `photos/*.jpg` -> `photos`, `gs://b/in/**/*.png` -> `gs://b/in`, a single file -> its folder.
    (Beam's filesystems list from the same place: the part before the first glob character.)
    """
    match = _GLOB_CHARS.search(pattern)
    prefix = pattern[:match.start()] if match else pattern
    if prefix.endswith("/"):
        return prefix.rstrip("/") or "/"
    return FileSystems.split(prefix)[0]


def relative_to(path: str, root: str) -> str:
    """`path` below `root` with '/' separators (both as Beam's match gives them)."""
    root = root.rstrip("/") + "/"
    if not path.startswith(root):
        raise ValueError(f"{path} is not under {root}")
    return path[len(root):]


def write_atomic(path: str, data: bytes) -> None:
    """Writes `data` to `path` through a temporary name in the same folder, then renames it."""
    folder, name = FileSystems.split(path)
    temp = FileSystems.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        with FileSystems.create(temp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
            if is_local(temp):  # survive a power cut too, as io.write_image_atomic does
                f.flush()
                os.fsync(f.fileno())
        FileSystems.rename([temp], [path])
    except BaseException:
        with contextlib.suppress(Exception):
            FileSystems.delete([temp])
        raise


def read_text(path: str) -> str | None:
    """The file's text, or None when it does not exist."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read().decode("utf-8")


def remove_temps(folder: str) -> list[str]:
    """Deletes temporary files that killed writers left anywhere under `folder`; returns them."""
    pattern = FileSystems.join(folder, "**")
    found = FileSystems.match([pattern])[0].metadata_list
    stale = [m.path for m in found if _TEMP.fullmatch(FileSystems.split(m.path)[1])]
    if stale:
        FileSystems.delete(stale)
    return stale


@contextlib.contextmanager
def local_copy(path):
    """A local file name for `path`: the path itself when local, else a temporary download.

    The library reads files by name (Pillow); the download keeps the file name, and callers put
    the original path back into messages.
    """
    if path is None or is_local(path):
        yield path
        return
    folder = tempfile.mkdtemp(prefix="hifill-beam-")
    try:
        local = os.path.join(folder, FileSystems.split(path)[1])
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source, \
                open(local, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)
