"""The training loop behind train.py: data, strategy, checkpoints, logging.

One linear function, :func:`train`, in the spirit of big_vision's train.py.
Checkpoints hold both networks and both optimizers (``tf.train.Checkpoint``;
a ``.keras`` file would not restore the optimizers of a model with a custom
``compile``), so running again with the same ``model_dir`` resumes at the
same step with the same optimizer state.
"""

import json
import logging
import math
import os
import signal
import time

import keras
import tensorflow as tf

from hifill_tf.data.pipeline import make_dataset
from hifill_tf.models.discriminator import Discriminator
from hifill_tf.models.generator import Generator
from hifill_tf.training.gan import HiFillGAN
from hifill_tf.weights import load_generator_weights

logger = logging.getLogger("hifill_tf.train")

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"

# Defaults of every option train() understands; train.py's flags mirror them.
DEFAULTS = dict(
    data="", tfds_data_dir=None, image_size=512, batch_size=8, steps=300_000,
    mode="crop", scale_min=None, scale_max=None, color_augment=False,
    g_lr=1e-4, d_lr=1e-4, beta_1=0.5, beta_2=0.9,
    critic_steps=5, gp_weight=10.0, hole_weight=1.0, context_weight=1.2,
    adversarial_weight=1e-4, coarse_weight=1.0,
    coarse_gate="sc", refine_gate="pw",
    mask_kind="mixed", min_area=0.02, max_area=0.25, mask_templates_dir=None,
    mask_render_side=None,
    checkpoint_every=1000, keep_checkpoints=3, log_every=50, image_every=500,
    strategy="default", mixed_precision=False, jit_compile=False, seed=0,
    init_generator=None,
)


class TrainingError(RuntimeError):
    """Training cannot go on (bad configuration or a non-finite loss)."""


def make_strategy(name):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"--strategy must be default, mirrored or multi_worker; got {name!r}")


def build_gan(config):
    """The GAN and its optimizers, as the configuration describes them."""
    generator = Generator(coarse_gate=config["coarse_gate"], refine_gate=config["refine_gate"])
    gan = HiFillGAN(
        generator, Discriminator(), critic_steps=config["critic_steps"],
        gp_weight=config["gp_weight"], hole_weight=config["hole_weight"],
        context_weight=config["context_weight"],
        adversarial_weight=config["adversarial_weight"],
        coarse_weight=config["coarse_weight"], seed=config["seed"])

    def adam(lr):
        # beta_1 = 0.5, beta_2 = 0.9: the WGAN-GP paper's Adam settings.
        optimizer = keras.optimizers.Adam(lr, beta_1=config["beta_1"], beta_2=config["beta_2"])
        if config["mixed_precision"]:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    gan.compile(adam(config["g_lr"]), adam(config["d_lr"]) if gan.uses_critic else None)
    gan.build_all(config["image_size"])
    return gan


def checkpoint_for(gan):
    objects = dict(generator=gan.generator, discriminator=gan.discriminator,
                   g_optimizer=gan.g_optimizer)
    if gan.d_optimizer is not None:
        objects["d_optimizer"] = gan.d_optimizer
    return tf.train.Checkpoint(**objects)


def read_config(model_dir):
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def load_generator(model_dir):
    """The generator of the latest checkpoint in ``model_dir`` (for export)."""
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))
    if latest is None:
        raise FileNotFoundError(f"{model_dir}: no checkpoint found in {CHECKPOINT_DIR}/")
    return _restore_generator(read_config(model_dir) or DEFAULTS, latest), latest


def _restore_generator(config, path):
    # The generator keeps its layers in Python lists and dicts, which
    # tf.train.Checkpoint does not follow; its variables are reached through
    # the optimizer that tracks them. So restore the whole GAN as train() saved it.
    config = {**DEFAULTS, **config, "mixed_precision": False}
    gan = build_gan(config)
    checkpoint_for(gan).restore(path).assert_existing_objects_matched()
    return gan.generator


def _grouped_dataset(config, global_batch, seed):
    """Batches of [B, critic_steps + 1, S, S, C]: one fresh batch per update."""
    group = config["critic_steps"] + 1 if config["adversarial_weight"] > 0 else 1
    scale_range = None
    if config["scale_min"] is not None:
        scale_range = (config["scale_min"], config["scale_max"] or math.inf)
    mask_kwargs = dict(kind=config["mask_kind"], min_area=config["min_area"],
                       max_area=config["max_area"], templates_dir=config["mask_templates_dir"])
    if config["mask_render_side"]:
        mask_kwargs["max_render_side"] = config["mask_render_side"]
    dataset, info = make_dataset(
        config["data"], config["image_size"], global_batch * group, mode=config["mode"],
        scale_range=scale_range, seed=seed, mask_kwargs=mask_kwargs,
        tfds_data_dir=config["tfds_data_dir"], color_augment=config["color_augment"])
    size = config["image_size"]

    def regroup(batch):
        return {"image": tf.reshape(batch["image"], [global_batch, group, size, size, 3]),
                "mask": tf.reshape(batch["mask"], [global_batch, group, size, size, 1])}

    return dataset.map(regroup).prefetch(2), info


def _image_grid(batch, outputs):
    """Rows of input | masked | coarse | refined (pasted), for TensorBoard."""
    image, mask = batch["image"], batch["mask"]
    masked = image * (1.0 - mask) + mask  # hole shown white
    coarse = outputs["coarse"] * mask + image * (1.0 - mask)
    row = tf.concat([image, masked, coarse, outputs["inpainted"]], axis=2)
    return (row + 1.0) / 2.0


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop saves a checkpoint and exits."""

    def __init__(self):
        self.signal = None

    def __call__(self, signum, frame):
        self.signal = signum


def train(config, progress=print):
    """Train until ``config['steps']`` generator updates; resume if a checkpoint exists.

    Returns a summary dict (final step, seconds, images seen). Raises
    :class:`TrainingError` on a non-finite loss (the last good checkpoint is
    kept). Handles SIGINT/SIGTERM by saving a checkpoint at the current step.
    """
    config = {**DEFAULTS, **config}
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0" and not tf.config.list_physical_devices("GPU"):
        progress("warning: oneDNN is on; its CPU backprop-filter kernel may corrupt the heap in "
                 "training (set TF_ENABLE_ONEDNN_OPTS=0 before importing TensorFlow)")
    model_dir = config["model_dir"]
    if config["image_size"] < 64 or config["image_size"] % 64:
        # The generator needs multiples of 16; the critic's six stride-2 convolutions 64.
        raise TrainingError(f"--image_size must be a positive multiple of 64; got {config['image_size']}")
    os.makedirs(model_dir, exist_ok=True)
    if config["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = make_strategy(config["strategy"])
    replicas = strategy.num_replicas_in_sync
    global_batch = config["batch_size"]
    if global_batch % replicas:
        raise TrainingError(f"--batch_size {global_batch} is not divisible by {replicas} replicas")

    with strategy.scope():
        gan = build_gan(config)
    checkpoint = checkpoint_for(gan)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(model_dir, CHECKPOINT_DIR), max_to_keep=config["keep_checkpoints"])
    step_var = gan.g_optimizer.iterations
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        progress(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}")
    elif config["init_generator"]:
        source, path = _init_generator(gan.generator, config["init_generator"])
        progress(f"generator initialised from {source} ({path})")
    start_step = int(step_var.numpy())
    _write_json(os.path.join(model_dir, CONFIG_FILE), {**config, "resumed_at_step": start_step})
    if start_step >= config["steps"]:
        progress(f"already at step {start_step} >= --steps {config['steps']}; nothing to do")
        return dict(step=start_step, seconds=0.0, images=0)

    # A different seed per resumption, so a resumed run sees new crops and masks.
    dataset, info = _grouped_dataset(config, global_batch, seed=config["seed"] + start_step)
    progress(f"data: {info.num_files} files from {info.source}, {info.num_skipped} skipped"
             + (f" ({', '.join(os.path.basename(p) for p in info.skipped_files)})"
                if info.num_skipped else ""))
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    preview = next(iter(dataset))
    preview = {k: v[: min(4, global_batch), -1] for k, v in preview.items()}

    step_fn = tf.function(gan.train_step, jit_compile=config["jit_compile"])

    @tf.function
    def distributed_step(batch):
        strategy.run(step_fn, args=(batch,))
        return {name: tracker.result() for name, tracker in gan.trackers.items()}

    writer = tf.summary.create_file_writer(os.path.join(model_dir, "tensorboard"))
    stop = _StopFlag()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    images_per_step = global_batch * (config["critic_steps"] + 1 if gan.uses_critic else 1)
    started = time.time()
    window_start, window_steps = time.time(), 0
    step = start_step
    try:
        while step < config["steps"]:
            logs = distributed_step(next(iterator))
            step = int(step_var.numpy())
            window_steps += 1
            values = {k: float(v) for k, v in logs.items()}
            bad = {k: v for k, v in values.items() if not math.isfinite(v)}
            if bad:
                raise TrainingError(
                    f"non-finite loss at step {step}: {bad}; stopped without saving; the last "
                    f"good checkpoint is {manager.latest_checkpoint or 'none (nothing saved yet)'}")
            if step % config["log_every"] == 0 or step == config["steps"]:
                elapsed = time.time() - window_start
                step_time = elapsed / window_steps
                eta = step_time * (config["steps"] - step)
                with writer.as_default(step=step):
                    for k, v in values.items():
                        tf.summary.scalar(f"loss/{k}", v)
                    tf.summary.scalar("perf/step_seconds", step_time)
                    tf.summary.scalar("perf/images_per_second", images_per_step / step_time)
                progress(f"step {step}/{config['steps']}  {step_time:.2f} s/step  "
                         f"{images_per_step / step_time:.1f} img/s  ETA {_hms(eta)}  "
                         + "  ".join(f"{k}={v:.4g}" for k, v in values.items()
                                     if k in ("g_loss", "rec_loss", "d_loss", "gradient_penalty")))
                for tracker in gan.trackers.values():
                    tracker.reset_state()
                window_start, window_steps = time.time(), 0
            if step % config["image_every"] == 0:
                outputs = gan.generator(preview["image"], preview["mask"])
                with writer.as_default(step=step):
                    tf.summary.image("input_masked_coarse_refined", _image_grid(preview, outputs),
                                     max_outputs=4)
            if step % config["checkpoint_every"] == 0:
                manager.save(checkpoint_number=step)
            if stop.signal is not None:
                break
        if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f"-{step}"):
            manager.save(checkpoint_number=step)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        writer.flush()
    seconds = time.time() - started
    images = (step - start_step) * images_per_step
    if stop.signal is not None:
        progress(f"stopped by signal {stop.signal} at step {step}; checkpoint saved; run again "
                 f"with the same --model_dir to resume")
    progress(f"done: step {step}, {images} images in {_hms(seconds)}")
    return dict(step=step, seconds=seconds, images=images, signal=stop.signal)


def _init_generator(generator, source):
    """Initialise from a model_dir (latest checkpoint) or a weights .npz file."""
    if source.endswith(".npz"):
        load_generator_weights(generator, source)
        return "weights file", source
    latest = tf.train.latest_checkpoint(os.path.join(source, CHECKPOINT_DIR))
    if latest is None:
        raise TrainingError(f"--init_generator {source}: no checkpoint in {CHECKPOINT_DIR}/")
    trained = _restore_generator(read_config(source) or {}, latest)
    generator.set_weights(trained.get_weights())
    return "checkpoint", latest


def _hms(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
