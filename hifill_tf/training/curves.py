"""The learning curve of training runs: validation hole L1 and sharpness against images seen.

``python -m hifill_tf.training.curves [LABEL=]validation.jsonl ... --output curve.png`` plots
the records that ``trainer.train`` (``validation.jsonl``) and ``jax_trainer.train``
(``validation-network.jsonl``) write, with Telea's score as a line.
"""

import argparse
import json


def read_log(paths):
    """Validation records (``validation.jsonl`` lines) of one or more runs, by images seen."""
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


def main(argv=None):
    parser = argparse.ArgumentParser(description="Plot the learning curve of validation.jsonl logs.")
    parser.add_argument("logs", nargs="+", metavar="[LABEL=]PATH",
                        help="validation.jsonl files; a LABEL= prefix starts a new stage (colour)")
    parser.add_argument("--output", required=True, help="PNG to write")
    arguments = parser.parse_args(argv)
    print(plot_learning_curve(_stages(arguments.logs), arguments.output))


if __name__ == "__main__":
    main()
