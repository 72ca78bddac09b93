"""Export HiFill as a SavedModel for TensorFlow Serving (generator + CRA graph).

  python export.py --output_dir models/hifill/1                          # bundled weights
  python export.py --output_dir models/hifill/1 --weights my_weights.npz
  python export.py --output_dir models/hifill/1 --checkpoint runs/hifill --overwrite

Signatures: serving_default (uint8 image and mask, any size), inpaint_bytes
(PNG/JPEG bytes in, PNG bytes out) and generator_512 (the raw network); see
hifill_tf/export/saved_model.py. TensorFlow Serving wants a numbered version
folder (models/hifill/1) under the model's base path (models/hifill).
"""

import os
import sys
import time

from absl import app, flags, logging

# TensorFlow loads only once the flags, files and output folder are checked (hifill_tf.cra and
# hifill_tf.export.saved_model import it): --help and a mistyped flag or path answer in a
# fraction of a second.
from hifill_tf.cli_util import skip_unused_imports
from hifill_tf.export.output_dir import check_output_dir
from hifill_tf.weights import DEFAULT_WEIGHTS, load_generator

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None, "Where to write the SavedModel, e.g. models/hifill/1 "
                    "(TensorFlow Serving loads numbered version folders).")
flags.DEFINE_string("weights", None, "Generator weights .npz (hifill_tf.weights.save_generator_weights); "
                    "default: the bundled hifill_tf/weights/hifill_default.npz.")
flags.DEFINE_string("checkpoint", None, "Instead of --weights: a train.py --model_dir; exports the "
                    "generator of its latest checkpoint.")
flags.DEFINE_integer("max_pixels", None, "Pixel budget of the network input: larger photos "
                     "run the network on an averaged-down copy (§4.1). Default: the budget stored "
                     "with the weights (bundled model: 65536 = 256x256), else 262144 (512x512).")
flags.DEFINE_bool("overwrite", False, "Replace an existing export in --output_dir.")
flags.mark_flag_as_required("output_dir")


def _weights_path():
    """The weights file to export (None with --checkpoint); FileNotFoundError if it is missing."""
    if FLAGS.checkpoint:
        return None
    path = FLAGS.weights or DEFAULT_WEIGHTS
    if not os.path.exists(path):
        if FLAGS.weights:
            raise FileNotFoundError(f"{path}: weights file not found")
        raise FileNotFoundError(
            f"{path}: the bundled default weights are not installed; pass --weights FILE.npz "
            "(saved by hifill_tf.weights.save_generator_weights) or --checkpoint MODEL_DIR "
            "(a train.py --model_dir)")
    return path


def _load_generator(weights_path):
    """(generator, description of where its weights came from)."""
    if weights_path is None:
        from hifill_tf.training import trainer  # the training stack, only when asked for

        generator, path = trainer.load_generator(FLAGS.checkpoint)
        return generator, f"checkpoint {path}"
    return load_generator(weights_path), f"weights {weights_path}"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        # TensorFlow logs hundreds of INFO lines while saving (renamed capture inputs); -v 0 shows them.
        logging.set_verbosity(logging.WARNING)
    if FLAGS.weights and FLAGS.checkpoint:
        sys.exit("export.py: give --weights or --checkpoint, not both")
    output_dir = os.path.abspath(FLAGS.output_dir)
    try:
        weights_path = _weights_path()
        check_output_dir(output_dir, FLAGS.overwrite)  # before the slow part
    except (FileNotFoundError, FileExistsError) as error:
        sys.exit(f"export.py: {error}")

    skip_unused_imports()  # before TensorFlow loads: a faster start, less memory

    from hifill_tf import cra
    from hifill_tf.export import saved_model

    if FLAGS.max_pixels is not None:
        try:
            cra.check_budget(FLAGS.max_pixels)  # the one budget check, before the slow part
        except ValueError as error:
            sys.exit(f"export.py: --{error}")
    try:
        generator, source = _load_generator(weights_path)
        print(f"Exporting the generator from {source} to {output_dir} (tracing takes a while)...",
              flush=True)
        start = time.time()
        max_pixels = cra.network_pixels(generator, FLAGS.max_pixels)
        signatures = saved_model.export_saved_model(generator, output_dir, max_pixels,
                                                    overwrite=FLAGS.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        sys.exit(f"export.py: {error}")

    size = sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(output_dir) for name in names)
    print("Signatures:")
    for line in saved_model.describe_signatures(signatures):
        print(f"  {line}")
    print(f"Inspect with: saved_model_cli show --dir {output_dir} --all")
    print(f"Exported in {time.time() - start:.0f} s: {output_dir} ({size / 1e6:.1f} MB, "
          f"max_pixels {max_pixels})")


if __name__ == "__main__":
    app.run(main)
