"""The Python API: ``hifill_tf.inpaint(image, mask)`` on NumPy arrays."""

import threading

import numpy as np
import tensorflow as tf

from hifill_tf import cra
from hifill_tf.io import EmptyMaskError, InputError, hole_mask, validate_mask

MIN_SIDE = cra.CELL  # the mirror padding to the attention cells needs one cell of image

_lock = threading.Lock()
_default_generator = None
_functions = {}


def default_generator():
    """The bundled default generator (loaded once)."""
    global _default_generator
    with _lock:
        if _default_generator is None:
            from hifill_tf.weights import load_generator

            _default_generator = load_generator()
        return _default_generator


def inpaint_function(generator, max_pixels=None, feather=0):
    """A function (uint8 [H, W, 3], bool hole [H, W]) -> uint8 [H, W, 3].

    One ``tf.function`` per generator and feather, traced once for every size and budget:
    the budget is an input of the graph, so trying another ``max_pixels`` costs no new trace.
    """
    budget = tf.constant(cra.network_pixels(generator, max_pixels), tf.int32)
    key = (id(generator), feather)
    with _lock:
        if key not in _functions:
            _functions[key] = (generator, tf.function(
                lambda image, mask, budget: cra.inpaint_tensor(generator, image, mask, budget,
                                                               feather),
                input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                 tf.TensorSpec([None, None], tf.bool),
                                 tf.TensorSpec([], tf.int32)],
                # The graph has no Python control flow on tensors (cra uses tf.cond and
                # tf.while_loop itself): without autograph the first call traces in about
                # half the time (cold start of infer.py).
                autograph=False))
        traced = _functions[key][1]
    return lambda image, mask: traced(image, mask, budget)


def inpaint(image, mask, generator=None, max_pixels=None, feather=0, name=None):
    """Fill the hole of a photo of any size with HiFill + CRA.

    Args:
        image: uint8 [H, W, 3].
        mask: [H, W] (or [H, W, 1]) bool, integer or float, read by ``io.hole_mask``:
            bool as given, integers > 127 (a 0/1 mask: 1), floats > 0.5 are the hole.
        generator: a :class:`hifill_tf.Generator`; None = the bundled default.
        max_pixels: pixel budget of the network input; None = the one stored with the
            generator's weights (the bundled model: 256 * 256), else 512 * 512.
        feather: width in pixels of a soft seam blended outside the hole
            (0 = hard paste, the outside stays bit-identical).
        name: file name to use in error messages.
    Returns uint8 [H, W, 3]: pixels outside the hole are the input's.
    Raises :class:`hifill_tf.io.InputError` on bad input; an empty mask returns
    a copy of the image.
    """
    label = name or "image"
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{label}: expected uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.shape != image.shape[:2]:
        raise InputError(f"{label}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                         f"{image.shape[1]}x{image.shape[0]}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputError(f"{label}: image is {image.shape[1]}x{image.shape[0]}; both sides must be "
                         f"at least {MIN_SIDE} pixels")
    mask = hole_mask(mask, label)  # bool, passed as it is: no full-size copy in another type
    try:
        validate_mask(mask, name)
    except EmptyMaskError:
        return image.copy()
    generator = generator or default_generator()
    return inpaint_function(generator, max_pixels, int(feather))(image, mask).numpy()
