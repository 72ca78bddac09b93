"""Host-side image and mask I/O for inference, the Python API and evaluation.

Photos are read as uint8 RGB in display orientation (EXIF applied); masks as uint8 [H, W] with
255 = hole and 0 = known pixels, the convention of the paper (Sec. 4.1, "1 indicates the hole").
Everything here is NumPy + Pillow: no TensorFlow import, so a front end can check its inputs
before paying for the model.

Every bad-input error is an `InputError` whose message starts with the file it is about.

Every name is importable from here (``from hifill_tf.io import read_image``); the code lives in:

- ``errors``: `InputError`, `EmptyMaskError` (and the message helpers);
- ``read``: files -> arrays: `read_image` (EXIF, RGBA, CMYK, 16-bit), `read_mask`; the size
  limit is `MAX_PIXELS`, here in the package;
- ``masks``: the mask rule (`hole_mask`, `HOLE_THRESHOLD`, `mask_from_alpha`), `mask_coverage`,
  `validate_mask`, `dilate_mask`;
- ``write``: `FORMATS` / `IMAGE_EXTENSIONS`, `atomic_file` (the one atomic write: images,
  weights, JSON, tables), `encode_image`, `write_image_atomic`, `same_file`;
- ``batches``: `find_images`, `match_masks` / `MaskMatches`;
- ``pictures``: `side_by_side` (demo picture), `comparison_picture` (methods in columns, for
  evaluation), `crop_boxes`.
"""

# Largest photo accepted, in pixels. 16K x 8K is 134 Mpx; 300 Mpx leaves room for panoramas while
# still stopping a decompression bomb (a 300 Mpx RGB array is 0.9 GB). Read at call time, so a
# user with the memory can raise it: `hifill_tf.io.MAX_PIXELS = 600_000_000`. Defined here, not
# in `read`, so that setting it on the package is what counts.
MAX_PIXELS = 300_000_000

from hifill_tf.io.errors import EmptyMaskError, InputError  # noqa: E402
from hifill_tf.io.masks import (  # noqa: E402
    HOLE_THRESHOLD,
    dilate_mask,
    hole_mask,
    mask_coverage,
    mask_from_alpha,
    validate_mask,
)
from hifill_tf.io.read import read_image, read_mask  # noqa: E402
from hifill_tf.io.write import (  # noqa: E402
    FORMATS,
    IMAGE_EXTENSIONS,
    atomic_file,
    encode_image,
    same_file,
    write_image_atomic,
)
from hifill_tf.io.batches import MaskMatches, find_images, match_masks  # noqa: E402
from hifill_tf.io.pictures import comparison_picture, crop_boxes, side_by_side  # noqa: E402

__all__ = [
    "EmptyMaskError",
    "FORMATS",
    "HOLE_THRESHOLD",
    "IMAGE_EXTENSIONS",
    "InputError",
    "MAX_PIXELS",
    "MaskMatches",
    "atomic_file",
    "comparison_picture",
    "crop_boxes",
    "dilate_mask",
    "encode_image",
    "find_images",
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
