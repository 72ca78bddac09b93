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


def read_log(paths):
    """Validation records (``validation.jsonl`` lines) of one or more runs, by images seen."""
    import json

    records = []
    for path in paths:
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return sorted(records, key=lambda r: r["images_seen"])


def plot_learning_curve(records, path, title="Validation: in-hole L1 (lower is better)"):
    """PNG of validation hole L1 (and sharpness below it) against images seen; Telea as a line.

    ``records`` is one run's list of validation records, or a dict {stage label: records} to
    show the stages of a run (say reconstruction, then the adversarial fine-tune) in their own
    colours on one images-seen axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = records if isinstance(records, dict) else {"hifill_tf (with CRA)": records}
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.2), dpi=110, sharex=True,
                                         gridspec_kw={"height_ratios": [2, 1]})
    for label, stage in stages.items():
        images = [r["images_seen"] for r in stage]
        top.plot(images, [r["hole_l1"] for r in stage], marker=".", label=label)
        bottom.plot(images, [r["sharpness"] for r in stage], marker=".", label=label)
    last = [r for stage in stages.values() for r in stage][-1]
    top.axhline(last["telea_hole_l1"], color="tab:red", linestyle="--", label="OpenCV Telea")
    bottom.axhline(last["telea_sharpness"], color="tab:red", linestyle="--")
    top.set_ylabel("in-hole L1 (0-255)")
    top.set_title(title)
    top.legend()
    bottom.set_ylabel("sharpness (1 = truth)")
    bottom.set_xlabel("training images seen")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _stages(arguments):
    """``[LABEL=]PATH ...`` -> {label: records}; files without a label join the one before."""
    stages, label = {}, None
    for argument in arguments:
        name, _, path = argument.rpartition("=")
        label = name or label or "hifill_tf (with CRA)"
        stages[label] = read_log([path]) + stages.get(label, [])
        stages[label].sort(key=lambda r: r["images_seen"])
    return stages


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Plot the learning curve of validation.jsonl logs.")
    parser.add_argument("logs", nargs="+", metavar="[LABEL=]PATH",
                        help="validation.jsonl files; a LABEL= prefix starts a new stage (colour)")
    parser.add_argument("--output", required=True, help="PNG to write")
    arguments = parser.parse_args()
    print(plot_learning_curve(_stages(arguments.logs), arguments.output))
