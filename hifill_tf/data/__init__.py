"""Training input pipeline and random hole masks (§3.5)."""

from hifill_tf.data.masks import MaskGenerator, sample_mask
from hifill_tf.data.pipeline import DatasetInfo, list_image_files, make_dataset

__all__ = ["DatasetInfo", "MaskGenerator", "list_image_files", "make_dataset", "sample_mask"]
