"""hifill_tf: HiFill (Contextual Residual Aggregation) in TensorFlow 2 / Keras 3.

    import hifill_tf
    result = hifill_tf.inpaint(image, mask)   # uint8 [H, W, 3], mask [H, W]
"""

import importlib

__version__ = "0.1.0"

# The public names load TensorFlow, so they are imported on first use (PEP 562): a front end
# that needs only ``hifill_tf.io`` (``infer.py --help``, a flag error) answers without it.
_LAZY = {"inpaint": "hifill_tf.api", "Discriminator": "hifill_tf.models.discriminator",
         "Generator": "hifill_tf.models.generator"}
__all__ = ["inpaint", "Generator", "Discriminator"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hifill_tf' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
