"""hifill_tf: HiFill (Contextual Residual Aggregation) in TensorFlow 2 / Keras 3.

    import hifill_tf
    result = hifill_tf.inpaint(image, mask)   # uint8 [H, W, 3], mask [H, W]
"""

__version__ = "0.1.0"

from hifill_tf.api import inpaint  # noqa: E402,F401
from hifill_tf.models.discriminator import Discriminator  # noqa: E402,F401
from hifill_tf.models.generator import Generator  # noqa: E402,F401
