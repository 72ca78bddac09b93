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
from hifill_tf import flags as shared_flags
from hifill_tf.export.output_dir import check_output_dir
from hifill_tf.imports import skip_unused_imports
from hifill_tf.loading import ModelError, find_model, generator_from

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None, "Where to write the SavedModel, e.g. models/hifill/1 "
                    "(TensorFlow Serving loads numbered version folders).")
shared_flags.define_model("checkpoint")
shared_flags.define_max_pixels(saved_model=False)
flags.adopt_module_key_flags(shared_flags)  # --help lists them with this program's own
flags.DEFINE_bool("overwrite", False, "Replace an existing export in --output_dir.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        # TensorFlow logs hundreds of INFO lines while saving (renamed capture inputs); -v 0 shows them.
        logging.set_verbosity(logging.WARNING)
    if problem := shared_flags.check_one_model():
        sys.exit(f"export.py: {problem}")
    output_dir = os.path.abspath(FLAGS.output_dir)
    try:
        find_model(FLAGS.weights, checkpoint=FLAGS.checkpoint)
        check_output_dir(output_dir, FLAGS.overwrite)  # before the slow part
    except (ModelError, FileExistsError) as error:
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
        generator, description = generator_from(FLAGS.weights or FLAGS.checkpoint)
        print(f"Exporting the generator from {description} to {output_dir} (tracing takes a "
              "while)...", flush=True)
        start = time.time()
        max_pixels = cra.network_pixels(generator, FLAGS.max_pixels)
        signatures = saved_model.export_saved_model(generator, output_dir, max_pixels,
                                                    overwrite=FLAGS.overwrite)
    except (ModelError, FileExistsError, ValueError) as error:
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
