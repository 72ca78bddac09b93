"""hifill_tf: HiFill (Contextual Residual Aggregation) in TensorFlow 2 / Keras 3.

    import hifill_tf
    result = hifill_tf.inpaint(image, mask)   # uint8 [H, W, 3], mask [H, W]
"""

from hifill_tf.lazy import lazy_names
from hifill_tf.version import __version__  # noqa: F401 (public)

# The public names load TensorFlow, so they are imported on first use (PEP 562): a front end
# that needs only ``hifill_tf.io`` (``infer.py --help``, a flag error) answers without it.
_LAZY = {"inpaint": "hifill_tf.api", "Discriminator": "hifill_tf.models.discriminator",
         "Generator": "hifill_tf.models.generator"}
__all__ = ["inpaint", "Generator", "Discriminator"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
