"""The options of training and their checks, without TensorFlow.

``train.py`` checks its flags here before it imports TensorFlow (seconds), so a bad
configuration is one clear error at once; ``trainer.train`` checks the same again. Also the
layout of a training folder (``--model_dir``), which both trainers write and
``hifill_tf.loading`` reads.
"""

import json
import os

# A training folder: the run's options, TensorFlow checkpoints (the TF trainer) and the compact
# resumable state by name (``training.state``; both trainers).
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
STATE_DIR = "state"

# Defaults of every option trainer.train() understands; train.py's flags mirror them.
DEFAULTS = dict(
    data="", tfds_data_dir=None, image_size=512, batch_size=8, steps=300_000,
    mode="crop", factor_min=1, factor_max=None, color_augment=False,
    g_lr=1e-4, d_lr=1e-4, beta_1=0.5, beta_2=0.9,
    critic_steps=5, gp_weight=10.0, hole_weight=1.0, context_weight=1.2,
    adversarial_weight=1e-4, coarse_weight=1.0,
    coarse_gate="sc", refine_gate="pw",
    mask_kind="mixed", min_area=0.02, max_area=0.25, mask_templates_dir=None,
    mask_render_side=None,
    checkpoint_every=1000, keep_checkpoints=3, log_every=50, image_every=500,
    strategy="default", mixed_precision=False, jit_compile=False, seed=0,
    init_generator=None,
    validation_dir=None, validate_every=500, validation_long_side=1024, validation_holes=2,
    images_seen_before=0,
    backend="tensorflow", train_minutes=None, hole_pool=None, feed_workers=None,
)
BACKENDS = ("tensorflow", "jax")


class TrainingError(RuntimeError):
    """Training cannot go on (bad configuration or a non-finite loss)."""


def check_config(config):
    """Raise TrainingError for a configuration no model can train with."""
    if config["backend"] not in BACKENDS:
        raise TrainingError(f"--backend must be one of {', '.join(BACKENDS)}; got {config['backend']!r}")
    if config["train_minutes"] is not None and config["train_minutes"] <= 0:
        raise TrainingError(f"--train_minutes must be positive; got {config['train_minutes']}")
    if config["image_size"] < 64 or config["image_size"] % 64:
        # The generator needs multiples of 16; the critic's six stride-2 convolutions 64.
        raise TrainingError(f"--image_size must be a positive multiple of 64; got {config['image_size']}")


def read_config(model_dir):
    """The options a training folder was run with, or None."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
