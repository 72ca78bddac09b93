"""Validation during training: the model against OpenCV Telea on fixed held-out cases.

Each case is a held-out photo resized to one size (long side ``long_side``, aspect kept) with
a seeded hole, scored in the hole as ``hifill_tf.evaluate`` scores it, through the path a
user gets (``hifill_tf.inpaint``: the network at its budget, then CRA). Telea's numbers are
computed once; the model's every time, so the two curves share their cases exactly.
"""

import math

import numpy as np
from PIL import Image

from hifill_tf import evaluate
from hifill_tf.data.masks import sample_mask
from hifill_tf.data.files import list_image_files
from hifill_tf.io import read_image


class Validator:
    """Fixed validation cases and their Telea scores.

    Args:
        directory: folder of held-out photos (searched as training folders are).
        long_side: the photos are resized (Lanczos) so their long side is this many pixels.
        holes: seeded holes per photo (10-25% of the image, strokes and objects).
        seed: hole k of photo i uses ``seed + i * holes + k``.
        max_pixels: the network budget to run the model at (None: the model's own).
    """

    def __init__(self, directory, long_side=1024, holes=2, seed=1234, max_pixels=None):
        self.max_pixels = max_pixels
        self.cases = []
        for index, path in enumerate(list_image_files(directory)):
            photo = read_image(path)[0]
            scale = long_side / max(photo.shape[:2])
            size = tuple(max(evaluate.MIN_SIDE, round(n * scale)) for n in photo.shape[1::-1])  # (W, H)
            truth = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))
            for k in range(holes):
                mask = sample_mask(size[1], size[0], seed + index * holes + k, min_area=0.10,
                                   max_area=0.25)
                blanked = np.where(mask[..., None] != 0, np.uint8(0), truth)
                self.cases.append((path, truth, mask, blanked))
        self.telea = self._score(lambda blanked, mask: evaluate.telea(blanked, mask))

    def _score(self, method):
        rows = []
        for _, truth, mask, blanked in self.cases:
            row = evaluate.image_metrics(method(blanked, mask), truth, mask, with_ms_ssim=False)
            rows.append({**row, "seconds": math.nan, "hole_fraction": float(np.mean(mask != 0))})
        summary = evaluate._summary("validation", "", rows)  # pooled as the quality report is
        return {k: summary[k] for k in ("hole_l1", "hole_psnr", "sharpness")}

    def __call__(self, generator):
        """The model's scores, with Telea's beside them (keys ``telea_*``)."""
        from hifill_tf import api

        model = self._score(lambda blanked, mask: api.inpaint(blanked, mask, generator=generator,
                                                              max_pixels=self.max_pixels))
        return {**model, **{f"telea_{k}": v for k, v in self.telea.items()}}


def attention_statistics(scores, mask):
    """(mean number of attention sources, mean largest weight per hole target) of a batch.

    scores [B, n, n] laid out [source, target]; sources are cells with any non-zero weight;
    targets are cells of the hole (``mask`` [B, H, W, 1], 1 = hole, on the 16-pixel grid).
    A near-uniform attention has a largest weight near 1 / sources.
    """
    import tensorflow as tf

    from hifill_tf.models.generator import cell_mask

    shape = tf.shape(mask)
    hole_cells = tf.reshape(cell_mask(mask), [shape[0], -1])
    sources = tf.reduce_sum(tf.cast(tf.reduce_max(scores, axis=2) > 0, tf.float32), axis=1)
    largest = tf.reduce_max(scores, axis=1)  # [B, targets]
    targets = tf.cast(hole_cells > 0, tf.float32)
    mean_largest = tf.reduce_sum(largest * targets) / tf.maximum(tf.reduce_sum(targets), 1.0)
    return float(tf.reduce_mean(sources)), float(mean_largest)
