"""Score generator weights with the TF trainer's validation (CRA at 256 x 256, Telea beside it).

    python training_runs/default/gen3/score.py WEIGHTS.npz --validation_dir DIR \
        --images_seen N --step S --log validation.jsonl

The GPU run validates at network resolution only (``jax_trainer.NetworkValidator``: no CRA
without TensorFlow); this adds the record the learning curve uses (``Validator``: the photos at
a 1024-pixel long side, 2 seeded holes each, through ``hifill_tf.inpaint``), so GPU weights sit
on the same axis as generations 1 and 2.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))

from hifill_tf.training.validation import Validator  # noqa: E402
from hifill_tf.weights import load_generator  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("weights")
parser.add_argument("--validation_dir", required=True)
parser.add_argument("--images_seen", type=int, required=True)
parser.add_argument("--step", type=int, default=0)
parser.add_argument("--log", required=True, help="validation.jsonl to append the record to")
parser.add_argument("--max_pixels", type=int, default=256 * 256)
arguments = parser.parse_args()

validator = Validator(arguments.validation_dir, 1024, 2, max_pixels=arguments.max_pixels)
metrics = validator(load_generator(arguments.weights))
record = {"step": arguments.step, "images_seen": arguments.images_seen,
          "weights": os.path.basename(arguments.weights), **metrics}
with open(arguments.log, "a") as f:
    f.write(json.dumps(record) + "\n")
print(json.dumps(record))
