"""The methods compared: ``hifill`` (the model with CRA), ``bicubic`` (its low-resolution
output up-sampled bicubically, the §4.4 baseline) and ``telea`` (OpenCV); `run_method` by name.

TensorFlow and OpenCV are imported on first use.
"""

import numpy as np

METHODS = ("hifill", "bicubic", "telea")


def _paste(filled, image, hole):
    return np.where(hole[..., None], filled, image)


def telea(image, mask, radius=3):
    """OpenCV Telea inpainting, pasted into the hole (outside pixels are ``image``'s)."""
    cv2 = _import_cv2()
    hole = np.asarray(mask) != 0
    filled = cv2.inpaint(np.ascontiguousarray(image), hole.astype(np.uint8) * 255, radius,
                         cv2.INPAINT_TELEA)
    return _paste(filled, image, hole)


def _import_cv2():
    try:
        import cv2
    except ImportError as e:
        raise ImportError("the 'telea' method needs OpenCV: pip install opencv-python-headless "
                          f"(or leave telea out of the methods); import failed: {e}") from e
    return cv2


_low_functions = {}


def bicubic_function(generator, max_pixels=None):
    """``tf.function`` (uint8 [H, W, 3], uint8 [H, W]) -> uint8 [H, W, 3]: the §4.4 baseline.

    The network input is built as in ``cra.inpaint_tensor`` (same plan, mirror padding,
    averaging, hole of the low-resolution pixels); the low-resolution ``inpainted`` output is
    up-sampled bicubically over the padded grid, cropped and pasted into the hole.
    """
    import tensorflow as tf

    from hifill_tf import cra

    max_pixels = cra.network_pixels(generator, max_pixels)
    key = (id(generator), max_pixels)
    if key in _low_functions:
        return _low_functions[key][1]

    def run(image, mask):
        hole = (mask > 0)[..., None]
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        # The same network input as CRA, so the two methods differ only in up-sampling.
        padded, _, low, low_hole, _ = cra.network_input(image, hole, max_pixels)
        inpainted, _ = cra.run_network(generator, low[None], low_hole[None])
        up = tf.image.resize(inpainted, tf.shape(padded)[:2], method="bicubic")
        up = tf.cast(tf.clip_by_value(tf.round(up[0, :height, :width]), 0.0, 255.0), tf.uint8)
        return tf.where(hole, up, image)

    function = tf.function(run, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                                 tf.TensorSpec([None, None], tf.uint8)],
                           autograph=False)  # as api.inpaint_function: cra needs none
    _low_functions[key] = (generator, function)  # the generator keeps id(generator) unique
    return function


def bicubic(image, mask, generator, max_pixels=None):
    """The model's low-resolution fill up-sampled bicubically and pasted (no CRA), uint8 [H, W, 3]."""
    hole = (np.asarray(mask) != 0).astype(np.uint8)
    return bicubic_function(generator, max_pixels)(image, hole).numpy()


def hifill(image, mask, generator, max_pixels=None):
    """``hifill_tf.inpaint``: the model with CRA."""
    from hifill_tf import api

    return api.inpaint(image, mask, generator=generator, max_pixels=max_pixels)


def run_method(method, image, mask, generator=None, max_pixels=None):
    """Fill ``image``'s hole with one of METHODS; returns uint8 [H, W, 3]."""
    if method == "hifill":
        return hifill(image, mask, generator, max_pixels)
    if method == "bicubic":
        return bicubic(image, mask, generator, max_pixels)
    if method == "telea":
        return telea(image, mask)
    raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
