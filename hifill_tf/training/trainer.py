"""The training loop behind train.py: data, strategy, checkpoints, logging.

One linear function, :func:`train`, in the spirit of big_vision's train.py.
Checkpoints (``tf.train.Checkpoint``; a ``.keras`` file would not restore the
optimizers of a model with a custom ``compile``) hold the generator's and the
critic's variables under their names (``generator/<layer>.<variable>``), both
optimizers and the random state, so running again with the same ``model_dir``
resumes at the same step with the same weights, optimizer state and random
stream, and a checkpoint of another architecture fails to load by name
instead of loading into the wrong layers.
"""

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
    CHECKPOINT_DIR, CONFIG_FILE, DEFAULTS, STATE_DIR, TrainingError, check_config, read_config)
from hifill_tf.training.gan import HiFillGAN
from hifill_tf.training.optimizers import FusedAdam
from hifill_tf.weights import load_generator_weights, save_generator_weights

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
    step_var = gan.g_optimizer.iterations
    if manager.latest_checkpoint:
        restore_checkpoint(gan, manager.latest_checkpoint, checkpoint)
        progress(f"resumed from {manager.latest_checkpoint} at step {int(step_var.numpy())}")
    elif state.has_state(os.path.join(model_dir, STATE_DIR)):
        directory = os.path.join(model_dir, STATE_DIR)
        try:
            state.load_state(directory, gan.generator, gan.discriminator, gan.g_optimizer,
                             gan.d_optimizer)
        except state.StateError as error:
            raise TrainingError(str(error)) from error
        progress(f"resumed from {directory} at step {int(step_var.numpy())}")
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
    # The preview images are the first batch's (first replica's part), which still trains: a
    # second iterator over the dataset would optimise and start its pipeline again (~1 s).
    first_batch = next(iterator)
    preview = strategy.experimental_local_results(first_batch)[0]
    preview = {k: v[:4, -1] for k, v in preview.items()}
    batches = itertools.chain([first_batch], iterator)

    validator = None
    if config["validation_dir"]:
        from hifill_tf.training.validation import Validator

        validator = Validator(config["validation_dir"], config["validation_long_side"],
                              config["validation_holes"],
                              max_pixels=config["image_size"] ** 2)
        progress(f"validation: {len(validator.cases)} cases from {config['validation_dir']}; "
                 f"Telea hole L1 {validator.telea['hole_l1']:.2f}")
    best = _best_so_far(model_dir)

    # autograph=False: the step's loops and branches are on Python values (critic_steps,
    # uses_critic), so there is nothing to convert, and converting it took a second.
    step_fn = tf.function(gan.train_step, jit_compile=config["jit_compile"], autograph=False)

    @tf.function(autograph=False)
    def distributed_step(batch):
        strategy.run(step_fn, args=(batch,))
        return {name: tracker.result() for name, tracker in gan.trackers.items()}

    writer = tf.summary.create_file_writer(os.path.join(model_dir, "tensorboard"))
    stop = _StopFlag()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    images_per_step = global_batch * (config["critic_steps"] + 1 if gan.uses_critic else 1)
    started = time.time()
    deadline = math.inf if not config["train_minutes"] else started + 60 * config["train_minutes"]
    window_start, window_steps = time.time(), 0
    step = start_step

    def save():
        manager.save(checkpoint_number=step)
        state.save_state(os.path.join(model_dir, STATE_DIR), gan.generator, gan.discriminator,
                         gan.g_optimizer, gan.d_optimizer,
                         dict(step=step, config=config, backend="tensorflow",
                              images_seen=config["images_seen_before"] + step * images_per_step))

    try:
        while step < config["steps"] and time.time() < deadline:
            logs = distributed_step(next(batches))
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
                         f"{images_per_step / step_time:.1f} img/s  ETA {format_seconds(eta)}  "
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
            if validator is not None and step % config["validate_every"] == 0:
                best = _validate(validator, gan, preview, writer, step, config, best,
                                 images_per_step, progress)
            if step % config["checkpoint_every"] == 0:
                save()
            if stop.signal is not None:
                break
        if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f"-{step}"):
            save()
        if validator is not None and step % config["validate_every"] and time.time() >= deadline:
            best = _validate(validator, gan, preview, writer, step, config, best,
                             images_per_step, progress)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        writer.flush()
    seconds = time.time() - started
    images = (step - start_step) * images_per_step
    if stop.signal is not None:
        progress(f"stopped by signal {stop.signal} at step {step}; checkpoint saved; run again "
                 f"with the same --model_dir to resume")
    progress(f"done: step {step}, {images} images in {format_seconds(seconds)}")
    return dict(step=step, seconds=seconds, images=images, signal=stop.signal)


def _best_so_far(model_dir):
    """The lowest validation hole L1 logged in ``model_dir`` (inf if none)."""
    path = os.path.join(model_dir, VALIDATION_LOG)
    if not os.path.exists(path):
        return math.inf
    with open(path) as f:
        return min((json.loads(line)["hole_l1"] for line in f if line.strip()), default=math.inf)


def _validate(validator, gan, preview, writer, step, config, best, images_per_step, progress):
    """Score the model on the validation cases; log them; keep the best generator by hole L1."""
    from hifill_tf.training.validation import attention_statistics

    started = time.time()
    metrics = validator(gan.generator)
    outputs = gan.generator(preview["image"], preview["mask"])
    metrics["attention_sources"], metrics["attention_largest"] = attention_statistics(
        outputs["scores"], preview["mask"])
    images = config["images_seen_before"] + step * images_per_step
    with writer.as_default(step=step):
        for k, v in metrics.items():
            tf.summary.scalar(f"validation/{k}", v)
        tf.summary.scalar("validation/images_seen", images)
    record = {"step": step, "images_seen": images, **metrics}
    with open(os.path.join(config["model_dir"], VALIDATION_LOG), "a") as f:
        f.write(json.dumps(record) + "\n")
    improved = metrics["hole_l1"] < best
    if improved:
        save_generator_weights(gan.generator, os.path.join(config["model_dir"], BEST_WEIGHTS),
                               network_pixels=config["image_size"] ** 2)
        best = metrics["hole_l1"]
    progress(f"validation at step {step} ({images} images): hole L1 {metrics['hole_l1']:.2f} "
             f"(Telea {metrics['telea_hole_l1']:.2f}), PSNR {metrics['hole_psnr']:.2f} "
             f"(Telea {metrics['telea_hole_psnr']:.2f}), sharpness {metrics['sharpness']:.3f}, "
             f"attention: {metrics['attention_sources']:.0f} sources, largest weight "
             f"{metrics['attention_largest']:.3f}" + ("; best so far, saved" if improved else "")
             + f" [{time.time() - started:.1f} s]")
    return best


def _init_generator(generator, source):
    """Initialise from a weights .npz file or a training folder (``hifill_tf.loading``)."""
    from hifill_tf import loading

    try:
        return loading.load_weights_into(generator, source)
    except loading.ModelError as error:
        raise TrainingError(f"--init_generator {error}") from error
