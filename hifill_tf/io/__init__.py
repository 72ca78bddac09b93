"""Host-side image and mask I/O for inference, the Python API and evaluation.

Photos are read as uint8 RGB in display orientation (EXIF applied); masks as uint8 [H, W] with
255 = hole and 0 = known pixels, the convention of the paper (Sec. 4.1, "1 indicates the hole").
Everything here is NumPy + Pillow: no TensorFlow import, so a front end can check its inputs
before paying for the model.

Every bad-input error is an `InputError` whose message starts with the file it is about.

Every name is importable from here (``from hifill_tf.io import read_image``); the code lives in:

- ``errors``: `InputError`, `EmptyMaskError` (and the message helpers);
- ``read``: files -> arrays: `read_image` (EXIF, RGBA, CMYK, 16-bit), `read_mask`;
- ``limits``: `MAX_PHOTO_PIXELS`, the largest photo read (a user may raise it);
- ``masks``: the mask rule (`hole_mask`, `HOLE_THRESHOLD`, `mask_from_alpha`), `mask_coverage`,
  `validate_mask`, `dilate_mask`;
- ``write``: `FORMATS` / `IMAGE_EXTENSIONS`, `atomic_file` (the one atomic write: images,
  weights, JSON, tables), `encode_image`, `write_image_atomic`, `same_file`;
- ``batches``: `find_images`, `match_masks` / `MaskMatches`;
- ``pictures``: `side_by_side` (demo picture), `comparison_picture` (methods in columns, for
  evaluation), `crop_boxes`.
"""

from hifill_tf.io import limits
from hifill_tf.io.errors import EmptyMaskError, InputError
from hifill_tf.io.masks import (
    HOLE_THRESHOLD,
    dilate_mask,
    hole_mask,
    mask_coverage,
    mask_from_alpha,
    validate_mask,
)
from hifill_tf.io.read import read_image, read_mask
from hifill_tf.io.write import (
    FORMATS,
    IMAGE_EXTENSIONS,
    atomic_file,
    encode_image,
    same_file,
    write_image_atomic,
)
from hifill_tf.io.batches import MaskMatches, find_images, match_masks
from hifill_tf.io.pictures import comparison_picture, crop_boxes, side_by_side

__all__ = [
    "EmptyMaskError",
    "FORMATS",
    "HOLE_THRESHOLD",
    "IMAGE_EXTENSIONS",
    "InputError",
    "MaskMatches",
    "atomic_file",
    "comparison_picture",
    "crop_boxes",
    "dilate_mask",
    "encode_image",
    "find_images",
    "limits",
    "hole_mask",
    "mask_coverage",
    "mask_from_alpha",
    "match_masks",
    "read_image",
    "read_mask",
    "same_file",
    "side_by_side",
    "validate_mask",
    "write_image_atomic",
]
