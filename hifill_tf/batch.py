"""The rules of a batch of photos, shared by infer.py and the Beam pipeline: how one photo and
its mask are read, what an empty mask means, how a failure is worded, the closing summary.

No TensorFlow: a batch checks and reads its photos before the model loads.
"""

import os

from hifill_tf import io
from hifill_tf.console import format_seconds

# Every photo of a batch ends as one of these: filled, written unchanged because its mask is
# empty, left alone because its output exists, or failed (the batch goes on past it).
STATUSES = ("done", "unchanged", "skipped", "failed")


def read_example(image_path, mask_path=None, *, from_alpha=False, resize_mask=False, dilate=0):
    """The photo and its hole mask (uint8, 255 = hole), as the command-line front ends read them.

    Returns (rgb uint8 [H, W, 3], mask uint8 [H, W], notes). With `from_alpha` the photo's
    transparent pixels are the hole and `mask_path` is unused; `dilate` grows the hole. Raises
    `io.InputError` whose message names the file and, where a flag is the fix, the flag.
    """
    rgb, alpha = io.read_image(image_path)
    notes = []
    if from_alpha:
        if alpha is None:
            raise io.InputError(f"{os.fspath(image_path)}: has no alpha channel; "
                                "--mask_from_alpha fills transparent pixels")
        mask = io.mask_from_alpha(alpha)
    else:
        try:
            mask = io.read_mask(mask_path, rgb.shape, resize=resize_mask)
        except io.InputError as e:  # say it in flags, not in Python
            raise io.InputError(str(e).replace("pass resize=True", "pass --resize_mask")) from None
        if alpha is not None:
            notes.append("alpha dropped")
    if dilate:
        mask = io.dilate_mask(mask, dilate)
    return rgb, mask, notes


def hole_coverage(mask, label):
    """The hole's fraction of the photo, or None for an empty mask: that photo is written
    unchanged and the model is not called. Other bad masks raise `io.InputError`."""
    try:
        return io.validate_mask(mask, label)
    except io.EmptyMaskError:
        return None


def failure_message(path, error: BaseException) -> str:
    """The one-line reason for a photo that failed: an InputError already names its file."""
    if isinstance(error, io.InputError):
        return str(error)
    return f"{os.fspath(path)}: {type(error).__name__}: {error}"


def batch_summary(counts, failed, seconds, extra=()):
    """The closing line of a batch: done, unchanged, skipped, failed (then ``extra``), time."""
    parts = [f"{counts['done']} done"]
    if counts.get("unchanged"):
        parts.append(f"{counts['unchanged']} unchanged (empty mask)")
    if counts.get("skipped"):
        parts.append(f"{counts['skipped']} skipped (output exists)")
    parts.append(f"{failed} failed")
    return f"{', '.join([*parts, *extra])} in {format_seconds(seconds)}"
