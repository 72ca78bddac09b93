"""hifill_tf: HiFill (Contextual Residual Aggregation) in TensorFlow 2 / Keras 3.

    import hifill_tf
    result = hifill_tf.inpaint(image, mask)   # uint8 [H, W, 3], mask [H, W]
"""

import importlib
import sys

__version__ = "0.1.0"

# The public names load TensorFlow, so they are imported on first use (PEP 562): a front end
# that needs only ``hifill_tf.io`` (``infer.py --help``, a flag error) answers without it.
_LAZY = {"inpaint": "hifill_tf.api", "Discriminator": "hifill_tf.models.discriminator",
         "Generator": "hifill_tf.models.generator"}
__all__ = ["inpaint", "Generator", "Discriminator"]


def lazy_names(package, names):
    """PEP 562 ``__getattr__`` and ``__dir__`` for ``package`` whose ``names`` ({name: module})
    are imported on first use; also used by ``hifill_tf.data``."""
    namespace = vars(sys.modules[package])  # the package is in sys.modules while it initialises

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(list(namespace) + list(names))

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
