"""Bad-input errors of the host-side I/O, and the helpers that word their messages."""

from __future__ import annotations

import os


class InputError(ValueError):
    """Bad input: the message names the file (when there is one) and what is wrong with it."""


class EmptyMaskError(InputError):
    """The mask has no hole pixels: callers return the photo unchanged and say so."""


def _err(path, message: str, kind: type[InputError] = InputError) -> InputError:
    return kind(f"{os.fspath(path)}: {message}" if path is not None else message)


def _size(width: int, height: int) -> str:
    return f"{width}x{height}"
