"""Folders of photos: `find_images`, and `match_masks` (each photo's mask by file stem)."""

from __future__ import annotations

import os
from typing import NamedTuple

from hifill_tf.io.errors import _err
from hifill_tf.io.write import FORMATS, same_file


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
