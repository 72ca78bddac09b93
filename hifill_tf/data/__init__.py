"""Training input pipeline and random hole masks (§3.5).

The public names load TensorFlow, so they are imported on first use (PEP 562, as in
``hifill_tf``): ``python -m hifill_tf.data.photos``, which only downloads and checks files,
starts without it.
"""

from hifill_tf.lazy import lazy_names

_LAZY = {"MaskGenerator": "hifill_tf.data.masks", "sample_mask": "hifill_tf.data.masks",
         "DatasetInfo": "hifill_tf.data.pipeline", "list_image_files": "hifill_tf.data.files",
         "make_dataset": "hifill_tf.data.pipeline"}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
