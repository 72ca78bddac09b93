"""The flags the front ends share (infer.py, export.py, the Beam pipeline, the server, the
evaluation), defined once so that their names, bounds and help read the same everywhere.

Each front end calls the ``define_*`` functions it needs at import, then `check_one_model` in
its flag checks. No TensorFlow: ``--help`` and a flag error answer at once.
"""

from absl import flags

FLAGS = flags.FLAGS

_MODEL_HELP = {
    "weights": "Generator weights (.npz, hifill_tf.weights.save_generator_weights). Default: the "
               "bundled weights.",
    "saved_model": "Instead of --weights: a SavedModel directory written by export.py.",
    "checkpoint": "Instead of --weights: a train.py --model_dir; its latest checkpoint (or its "
                  "state/ folder) is used.",
}


def define_model(*sources):
    """--weights and the other model sources named (``"saved_model"``, ``"checkpoint"``)."""
    for name in ("weights", *sources):
        flags.DEFINE_string(name, None, _MODEL_HELP[name])


def check_one_model():
    """The usage error for more than one model source, else None."""
    given = [f"--{name}" for name in _MODEL_HELP if name in FLAGS and FLAGS[name].value]
    if len(given) > 1:
        return f"give {' or '.join(given)}, not both" if len(given) == 2 else \
            f"give one of {', '.join(given)}"
    return None


def define_max_pixels(saved_model=True):
    flags.DEFINE_integer(
        "max_pixels", None, "Pixel budget of the network input: the photo is averaged down by an "
        "integer factor to fit it, and CRA restores the full resolution (§4.1). Default: the "
        "budget stored with the weights (bundled model: 65536 = 256x256, the size it was "
        "trained for), else 262144 (512x512)."
        + (" Fixed at export for --saved_model." if saved_model else ""), lower_bound=256)


def define_feather():
    flags.DEFINE_integer("feather", 0, "Blend a soft seam this many pixels wide around the hole "
                         "(0 = hard paste: everything outside the hole stays bit-identical). Not "
                         "available with --saved_model.", lower_bound=0)


def define_quality():
    flags.DEFINE_integer("quality", 95, "JPEG / WebP quality of the outputs.", lower_bound=1,
                         upper_bound=100)


def define_mask_reading():
    """--mask_from_alpha, --dilate and --resize_mask: how a photo's hole is read."""
    flags.DEFINE_bool("mask_from_alpha", False, "Fill the photo's transparent pixels "
                      "(alpha < 128) instead of reading a mask file.")
    flags.DEFINE_integer("dilate", 0, "Grow the hole by this many pixels (a disk) before "
                         "filling: covers the soft edges and shadows a hand-drawn mask misses.",
                         lower_bound=0)
    flags.DEFINE_bool("resize_mask", False, "Resize (nearest neighbour) a mask whose size "
                      "differs from the photo's, instead of failing.")


def saved_model_notes():
    """Notes for flags that a SavedModel ignores (its budget and paste are fixed at export)."""
    notes = []
    if "saved_model" in FLAGS and FLAGS.saved_model:
        if "max_pixels" in FLAGS and FLAGS["max_pixels"].present:
            notes.append("note: --max_pixels is ignored with --saved_model (fixed at export)")
        if "feather" in FLAGS and FLAGS.feather:
            notes.append("note: --feather is ignored with --saved_model (hard paste)")
    return notes
