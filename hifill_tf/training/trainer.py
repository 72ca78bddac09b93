"""The training loop behind train.py: data, strategy, checkpoints, logging.

One function, :func:`train`, reads top to bottom in the spirit of big_vision's train.py;
its steps are the functions below it and ``_Run`` (the loop, saving, logging, validation).
Checkpoints (``tf.train.Checkpoint``; a ``.keras`` file would not restore the
optimizers of a model with a custom ``compile``) hold the generator's and the
critic's variables under their names (``generator/<layer>.<variable>``), both
optimizers and the random state, so running again with the same ``model_dir``
resumes at the same step with the same weights, optimizer state and random
stream, and a checkpoint of another architecture fails to load by name
instead of loading into the wrong layers.
"""

import dataclasses
import itertools
import json
import logging
import math
import os
import signal
import time

import keras
import tensorflow as tf

from hifill_tf.console import format_seconds
from hifill_tf.data.pipeline import make_dataset
from hifill_tf.io import atomic_file
from hifill_tf.models.discriminator import Discriminator
from hifill_tf.models.generator import Generator, paste
from hifill_tf.training import cpu, state
from hifill_tf.training.checkpoints import checkpoint_for, restore_checkpoint
from hifill_tf.training.config import (
    CHECKPOINT_DIR, CONFIG_FILE, DEFAULTS, STATE_DIR, TrainingError, check_config)
from hifill_tf.training.gan import HiFillGAN
from hifill_tf.training.optimizers import FusedAdam
from hifill_tf.weights import save_generator_weights

logger = logging.getLogger("hifill_tf.train")


VALIDATION_LOG = "validation.jsonl"
BEST_WEIGHTS = "best.npz"


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
        optimizer = FusedAdam(lr, beta_1=config["beta_1"], beta_2=config["beta_2"])
        if config["mixed_precision"]:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    gan.compile(adam(config["g_lr"]), adam(config["d_lr"]) if gan.uses_critic else None)
    gan.build_all(config["image_size"])
    return gan


def _write_json(path, data):
    with atomic_file(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)


def _grouped_dataset(config, global_batch, seed):
    """Batches of [B, critic_steps + 1, S, S, C]: one fresh batch per update."""
    group = config["critic_steps"] + 1 if config["adversarial_weight"] > 0 else 1
    mask_kwargs = dict(kind=config["mask_kind"], min_area=config["min_area"],
                       max_area=config["max_area"], templates_dir=config["mask_templates_dir"])
    if config["mask_render_side"]:
        mask_kwargs["max_render_side"] = config["mask_render_side"]
    dataset, info = make_dataset(
        config["data"], config["image_size"], global_batch * group, mode=config["mode"],
        factor_range=(config["factor_min"], config["factor_max"]), seed=seed, mask_kwargs=mask_kwargs,
        tfds_data_dir=config["tfds_data_dir"], color_augment=config["color_augment"])
    size = config["image_size"]

    def regroup(batch):
        return {"image": tf.reshape(batch["image"], [global_batch, group, size, size, 3]),
                "mask": tf.reshape(batch["mask"], [global_batch, group, size, size, 1])}

    # The input pipeline shares the cores with the train step: on 2 cores, one private thread
    # for it kept the oneDNN step nearer its synthetic-batch time (bench/train_bench.py).
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    regroup = tf.autograph.experimental.do_not_convert(regroup)  # as make_dataset's maps
    return dataset.map(regroup).prefetch(2).with_options(options), info


def _image_grid(batch, outputs):
    """Rows of input | masked | coarse | refined (pasted), for TensorBoard."""
    image, mask = batch["image"], batch["mask"]
    masked = image * (1.0 - mask) + mask  # hole shown white
    coarse = paste(outputs["coarse"], image, mask)
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
    if not tf.config.list_physical_devices("GPU") and not cpu.onednn_enabled():
        progress("note: oneDNN is off; CPU training is about 2.5x slower (see "
                 "hifill_tf/training/cpu.py)")
    model_dir = config["model_dir"]
    check_config(config)
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
    start_step = _resume(gan, checkpoint, manager, config, progress)
    _write_json(os.path.join(model_dir, CONFIG_FILE), {**config, "resumed_at_step": start_step})
    if start_step >= config["steps"]:
        progress(f"already at step {start_step} >= --steps {config['steps']}; nothing to do")
        return dict(step=start_step, seconds=0.0, images=0)

    batches, preview = _training_batches(config, strategy, global_batch, start_step, progress)
    run = _Run(config=config, gan=gan, manager=manager, preview=preview,
               validator=_validator(config, progress), progress=progress,
               images_per_step=global_batch * (config["critic_steps"] + 1 if gan.uses_critic else 1),
               writer=tf.summary.create_file_writer(os.path.join(model_dir, "tensorboard")))
    distributed_step = _distributed_step(gan, strategy, config)
    stop = _StopFlag()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.time()
    deadline = math.inf if not config["train_minutes"] else started + 60 * config["train_minutes"]
    try:
        step = run.loop(distributed_step, batches, stop, start_step, deadline)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        run.writer.flush()
    seconds = time.time() - started
    images = (step - start_step) * run.images_per_step
    if stop.signal is not None:
        progress(f"stopped by signal {stop.signal} at step {step}; checkpoint saved; run again "
                 f"with the same --model_dir to resume")
    progress(f"done: step {step}, {images} images in {format_seconds(seconds)}")
    return dict(step=step, seconds=seconds, images=images, signal=stop.signal)


def _resume(gan, checkpoint, manager, config, progress):
    """Load the latest checkpoint, else the state folder, else ``--init_generator`` if given;
    returns the step to start at."""
    step_var = gan.g_optimizer.iterations
    directory = os.path.join(config["model_dir"], STATE_DIR)
    if manager.latest_checkpoint:
        restore_checkpoint(gan, manager.latest_checkpoint, checkpoint)
        progress(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}")
    elif state.has_state(directory):
        try:
            state.load_state(directory, gan.generator, gan.discriminator, gan.g_optimizer,
                             gan.d_optimizer)
        except state.StateError as error:
            raise TrainingError(str(error)) from error
        progress(f"resumed from {directory} at step {int(step_var.numpy())}")
    elif config["init_generator"]:
        source, path = _init_generator(gan.generator, config["init_generator"])
        progress(f"generator initialised from {source} ({path})")
    return int(step_var.numpy())


def _training_batches(config, strategy, global_batch, start_step, progress):
    """(the distributed batches, a preview of four examples of the first one)."""
    # A different seed per resumption, so a resumed run sees new crops and masks.
    dataset, info = _grouped_dataset(config, global_batch, seed=config["seed"] + start_step)
    progress(f"data: {info.num_files} files from {info.source}, {info.num_skipped} skipped"
             + (f" ({', '.join(os.path.basename(p) for p in info.skipped_files)})"
                if info.num_skipped else ""))
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    # The preview images are the first batch's (first replica's part), which still trains: a
    # second iterator over the dataset would optimise and start its pipeline again (~1 s).
    first_batch = next(iterator)
    preview = strategy.experimental_local_results(first_batch)[0]
    preview = {k: v[:4, -1] for k, v in preview.items()}
    return itertools.chain([first_batch], iterator), preview


def _validator(config, progress):
    """The ``Validator`` of ``--validation_dir``, or None without one."""
    if not config["validation_dir"]:
        return None
    from hifill_tf.training.validation import Validator

    validator = Validator(config["validation_dir"], config["validation_long_side"],
                          config["validation_holes"], max_pixels=config["image_size"] ** 2)
    progress(f"validation: {len(validator.cases)} cases from {config['validation_dir']}; "
             f"Telea hole L1 {validator.telea['hole_l1']:.2f}")
    return validator


def _distributed_step(gan, strategy, config):
    """One generator update (with its critic updates) on every replica; returns the losses."""
    # autograph=False: the step's loops and branches are on Python values (critic_steps,
    # uses_critic), so there is nothing to convert, and converting it took a second.
    step_fn = tf.function(gan.train_step, jit_compile=config["jit_compile"], autograph=False)

    @tf.function(autograph=False)
    def distributed_step(batch):
        strategy.run(step_fn, args=(batch,))
        return {name: tracker.result() for name, tracker in gan.trackers.items()}

    return distributed_step


def _best_so_far(model_dir):
    """The lowest validation hole L1 logged in ``model_dir`` (inf if none)."""
    path = os.path.join(model_dir, VALIDATION_LOG)
    if not os.path.exists(path):
        return math.inf
    with open(path) as f:
        return min((json.loads(line)["hole_l1"] for line in f if line.strip()), default=math.inf)


@dataclasses.dataclass
class _Run:
    """One run of the loop: what it trains and what it writes (checkpoints, the state folder,
    TensorBoard, the validation log and ``best.npz``)."""

    config: dict
    gan: HiFillGAN
    manager: tf.train.CheckpointManager
    preview: dict  # four examples of the first batch: TensorBoard images, attention statistics
    validator: object  # a validation.Validator, or None
    progress: object
    images_per_step: int
    writer: object  # TensorBoard's
    best: float = dataclasses.field(init=False)  # the lowest validation hole L1 so far

    def __post_init__(self):
        self.best = _best_so_far(self.config["model_dir"])

    def images_seen(self, step):
        return self.config["images_seen_before"] + step * self.images_per_step

    def save(self, step):
        gan = self.gan
        self.manager.save(checkpoint_number=step)
        state.save_state(os.path.join(self.config["model_dir"], STATE_DIR), gan.generator,
                         gan.discriminator, gan.g_optimizer, gan.d_optimizer,
                         dict(step=step, config=self.config, backend="tensorflow",
                              images_seen=self.images_seen(step)))

    def losses(self, step, logs):
        """The step's losses as floats; a non-finite one stops the run without saving."""
        values = {k: float(v) for k, v in logs.items()}
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            latest = self.manager.latest_checkpoint
            raise TrainingError(
                f"non-finite loss at step {step}: {bad}; stopped without saving; the last "
                f"good checkpoint is {latest or 'none (nothing saved yet)'}")
        return values

    def report(self, step, values, step_time):
        """Losses and speed to TensorBoard and the log; the loss trackers start again."""
        steps = self.config["steps"]
        eta = step_time * (steps - step)
        with self.writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(f"loss/{k}", v)
            tf.summary.scalar("perf/step_seconds", step_time)
            tf.summary.scalar("perf/images_per_second", self.images_per_step / step_time)
        self.progress(f"step {step}/{steps}  {step_time:.2f} s/step  "
                      f"{self.images_per_step / step_time:.1f} img/s  ETA {format_seconds(eta)}  "
                      + "  ".join(f"{k}={v:.4g}" for k, v in values.items()
                                  if k in ("g_loss", "rec_loss", "d_loss", "gradient_penalty")))
        for tracker in self.gan.trackers.values():
            tracker.reset_state()

    def show_preview(self, step):
        outputs = self.gan.generator(self.preview["image"], self.preview["mask"])
        with self.writer.as_default(step=step):
            tf.summary.image("input_masked_coarse_refined", _image_grid(self.preview, outputs),
                             max_outputs=4)

    def loop(self, distributed_step, batches, stop, step, deadline):
        """Steps from ``step`` until ``steps``, ``deadline`` or a signal; returns the last step.
        The run ends saved, and validated if it ran out of time between validations."""
        config, validator = self.config, self.validator
        window_start, window_steps = time.time(), 0
        while step < config["steps"] and time.time() < deadline:
            logs = distributed_step(next(batches))
            step = int(self.gan.g_optimizer.iterations.numpy())
            window_steps += 1
            values = self.losses(step, logs)
            if step % config["log_every"] == 0 or step == config["steps"]:
                self.report(step, values, (time.time() - window_start) / window_steps)
                window_start, window_steps = time.time(), 0
            if step % config["image_every"] == 0:
                self.show_preview(step)
            if validator is not None and step % config["validate_every"] == 0:
                self.validate(step)
            if step % config["checkpoint_every"] == 0:
                self.save(step)
            if stop.signal is not None:
                break
        latest = self.manager.latest_checkpoint
        if latest is None or not latest.endswith(f"-{step}"):
            self.save(step)
        if validator is not None and step % config["validate_every"] and time.time() >= deadline:
            self.validate(step)
        return step

    def validate(self, step):
        """Score the model on the validation cases; log them; keep the best generator by hole L1."""
        from hifill_tf.training.validation import attention_statistics

        gan, preview, config = self.gan, self.preview, self.config
        started = time.time()
        metrics = self.validator(gan.generator)
        outputs = gan.generator(preview["image"], preview["mask"])
        metrics["attention_sources"], metrics["attention_largest"] = attention_statistics(
            outputs["scores"], preview["mask"])
        images = self.images_seen(step)
        with self.writer.as_default(step=step):
            for k, v in metrics.items():
                tf.summary.scalar(f"validation/{k}", v)
            tf.summary.scalar("validation/images_seen", images)
        record = {"step": step, "images_seen": images, **metrics}
        with open(os.path.join(config["model_dir"], VALIDATION_LOG), "a") as f:
            f.write(json.dumps(record) + "\n")
        improved = metrics["hole_l1"] < self.best
        if improved:
            save_generator_weights(gan.generator, os.path.join(config["model_dir"], BEST_WEIGHTS),
                                   network_pixels=config["image_size"] ** 2)
            self.best = metrics["hole_l1"]
        self.progress(
            f"validation at step {step} ({images} images): hole L1 {metrics['hole_l1']:.2f} "
            f"(Telea {metrics['telea_hole_l1']:.2f}), PSNR {metrics['hole_psnr']:.2f} "
            f"(Telea {metrics['telea_hole_psnr']:.2f}), sharpness {metrics['sharpness']:.3f}, "
            f"attention: {metrics['attention_sources']:.0f} sources, largest weight "
            f"{metrics['attention_largest']:.3f}" + ("; best so far, saved" if improved else "")
            + f" [{time.time() - started:.1f} s]")


def _init_generator(generator, source):
    """Initialise from a weights .npz file or a training folder (``hifill_tf.loading``)."""
    from hifill_tf import loading

    try:
        return loading.load_weights_into(generator, source)
    except loading.ModelError as error:
        raise TrainingError(f"--init_generator {error}") from error
