"""Training input pipeline and random hole masks (§3.5).

The public names load TensorFlow, so they are imported on first use (PEP 562, as in
``hifill_tf``): ``python -m hifill_tf.data.photos``, which only downloads and checks files,
starts without it.
"""

import importlib

_LAZY = {"MaskGenerator": "hifill_tf.data.masks", "sample_mask": "hifill_tf.data.masks",
         "DatasetInfo": "hifill_tf.data.pipeline", "list_image_files": "hifill_tf.data.pipeline",
         "make_dataset": "hifill_tf.data.pipeline"}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hifill_tf.data' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
