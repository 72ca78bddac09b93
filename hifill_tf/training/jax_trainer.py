"""Algorithm 1 on the JAX backend: the loop behind ``train.py --backend=jax``.

The same options, losses and defaults as the TensorFlow trainer (``trainer.train``): per
generator update, ``critic_steps`` WGAN-GP critic updates on fresh batches, alpha ~ U[0, 1] per
example, beta, the reconstruction weights, seeds. No TensorFlow is imported, so it runs on a
machine that has JAX alone (the GPU machine of ``tools/gpu_train.sh``):

- views come from ``hifill_tf.data.numpy_feed.ViewFeed`` (the reduction of ``cra.reduce_photo``
  in NumPy, holes from a pool pre-rendered by the TF ``MaskGenerator``);
- the whole generator update, critic updates included, is one ``jax.jit`` function over
  ``stateless_call`` and ``stateless_apply``; the critic updates are a ``lax.scan``;
- the state is ``training.state``'s by-name folder, which the TF trainer reads too;
- validation scores the generator at network resolution (no CRA, which is TensorFlow) against
  OpenCV Telea on fixed held-out views, logged to ``validation-network.jsonl``; ``best.npz``
  is the best generator by that hole L1.

``--mixed_precision`` is ``mixed_bfloat16`` here: bfloat16 has float32's range, so no loss
scaling.
"""

import dataclasses
import json
import math
import os
import signal
import time

import jax
import jax.numpy as jnp
import keras
import numpy as np
from PIL import Image

from hifill_tf.console import format_seconds
from hifill_tf.io import atomic_file
from hifill_tf.models.discriminator import Discriminator
from hifill_tf.models.generator import Generator
from hifill_tf.training import losses, state
from hifill_tf.training.config import CONFIG_FILE, DEFAULTS, STATE_DIR, TrainingError, check_config
from hifill_tf.weights import save_generator_weights
BEST_WEIGHTS = "best.npz"
VALIDATION_LOG = "validation-network.jsonl"
LOSS_NAMES = ("g_loss", "rec_loss", "coarse_rec_loss", "adv_loss", "d_loss", "wasserstein",
              "gradient_penalty")


def uses_critic(config):
    return config["adversarial_weight"] > 0 and config["critic_steps"] > 0


def build(config):
    """(generator, critic, g_optimizer, d_optimizer or None), built."""
    if config["mixed_precision"]:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    generator = Generator(coarse_gate=config["coarse_gate"], refine_gate=config["refine_gate"])
    generator.build()
    critic = Discriminator()
    size = config["image_size"]
    critic(np.zeros([1, size, size, 3], np.float32))

    def adam(lr):  # (0.5, 0.9): the WGAN-GP paper's Adam settings, as the TF trainer
        return keras.optimizers.Adam(lr, beta_1=config["beta_1"], beta_2=config["beta_2"])

    g_optimizer = adam(config["g_lr"])
    g_optimizer.build(generator.trainable_variables)
    d_optimizer = None
    if uses_critic(config):
        d_optimizer = adam(config["d_lr"])
        d_optimizer.build(critic.trainable_variables)
    return generator, critic, g_optimizer, d_optimizer


def make_train_step(generator, critic, g_optimizer, d_optimizer, config):
    """The jitted update ``(state, images, masks) -> (state, losses)``.

    ``state`` = (g_trainable, g_non_trainable, g_optimizer, d_trainable, d_non_trainable,
    d_optimizer, key) variable values; ``images`` [G, B, S, S, 3] and ``masks``
    [G, B, S, S, 1] hold G = critic_steps + 1 fresh batches (G = 1 without a critic), the
    last one for the generator.
    """
    critic_on = uses_critic(config)
    hole_w, context_w = config["hole_weight"], config["context_weight"]

    def critic_fn(d_trainable, d_non_trainable):
        def scores(x):
            return critic.stateless_call(d_trainable, d_non_trainable, x, training=True)[0]
        return scores

    def generator_loss(g_trainable, g_non_trainable, d_trainable, d_non_trainable, image, mask):
        outputs, g_non_trainable = generator.stateless_call(
            g_trainable, g_non_trainable, image, mask, training=True)
        rec = losses.reconstruction_loss(outputs["refined"], image, mask, hole_w, context_w)
        coarse = losses.reconstruction_loss(outputs["coarse"], image, mask, hole_w, context_w)
        total = rec + config["coarse_weight"] * coarse  # Eq. (14) without the adversarial term
        adv = jnp.zeros([])
        if critic_on:
            adv = losses.adversarial_loss(critic_fn(d_trainable, d_non_trainable)(
                outputs["inpainted"]))
            total = total + config["adversarial_weight"] * adv
        return total, (g_non_trainable, rec, coarse, adv)

    def critic_loss(d_trainable, d_non_trainable, real, fake, alpha):
        scores = critic_fn(d_trainable, d_non_trainable)
        wasserstein = losses.critic_loss(scores(real), scores(fake))
        penalty = losses.gradient_penalty(critic, real, fake, alpha, critic_fn=scores)
        return wasserstein + config["gp_weight"] * penalty, (wasserstein, penalty)

    def step(train_state, images, masks):
        g_tv, g_ntv, g_ov, d_tv, d_ntv, d_ov, key = train_state
        logs = {}
        if critic_on:
            def critic_update(carry, batch):
                d_tv, d_ov, key = carry
                image, mask = batch
                key, alpha_key = jax.random.split(key)
                outputs, _ = generator.stateless_call(g_tv, g_ntv, image, mask, training=True)
                fake = jax.lax.stop_gradient(outputs["inpainted"])
                alpha = jax.random.uniform(alpha_key, (image.shape[0], 1, 1, 1))  # Algorithm 1
                (loss, (wasserstein, penalty)), grads = jax.value_and_grad(
                    critic_loss, has_aux=True)(d_tv, d_ntv, image, fake, alpha)
                d_tv, d_ov = d_optimizer.stateless_apply(d_ov, grads, d_tv)
                return (d_tv, d_ov, key), (loss, wasserstein, penalty)

            (d_tv, d_ov, key), (d_loss, wasserstein, penalty) = jax.lax.scan(
                critic_update, (d_tv, d_ov, key), (images[:-1], masks[:-1]))
            logs.update(d_loss=d_loss[-1], wasserstein=wasserstein[-1],
                        gradient_penalty=penalty[-1])
        (g_loss, (g_ntv, rec, coarse, adv)), grads = jax.value_and_grad(
            generator_loss, has_aux=True)(g_tv, g_ntv, d_tv, d_ntv, images[-1], masks[-1])
        g_tv, g_ov = g_optimizer.stateless_apply(g_ov, grads, g_tv)
        logs.update(g_loss=g_loss, rec_loss=rec, coarse_rec_loss=coarse, adv_loss=adv)
        return (g_tv, g_ntv, g_ov, d_tv, d_ntv, d_ov, key), logs

    return jax.jit(step, donate_argnums=0)


def _values(variables):
    return [v.value for v in variables]


def gather_state(generator, critic, g_optimizer, d_optimizer, key):
    return (_values(generator.trainable_variables), _values(generator.non_trainable_variables),
            _values(g_optimizer.variables), _values(critic.trainable_variables),
            _values(critic.non_trainable_variables),
            _values(d_optimizer.variables) if d_optimizer is not None else [], key)


def scatter_state(train_state, generator, critic, g_optimizer, d_optimizer):
    """Write the step's values back into the Keras variables (before saving or validating)."""
    g_tv, g_ntv, g_ov, d_tv, d_ntv, d_ov, _ = train_state
    pairs = [(generator.trainable_variables, g_tv), (generator.non_trainable_variables, g_ntv),
             (g_optimizer.variables, g_ov), (critic.trainable_variables, d_tv),
             (critic.non_trainable_variables, d_ntv)]
    if d_optimizer is not None:
        pairs.append((d_optimizer.variables, d_ov))
    for variables, values in pairs:
        for variable, value in zip(variables, values):
            variable.assign(value)


class NetworkValidator:
    """Fixed held-out views at network resolution: the model and Telea in the same holes.

    Each photo of ``directory`` is resized (Lanczos) so its long side is ``size`` (a multiple
    of 16) and padded (symmetric) to ``size`` x ``size`` for the network; hole k of photo i is pool mask ``seed + i * holes + k``
    (``numpy_feed.HolePool``) resized to it. Scored in the hole on the unpadded part as
    ``hifill_tf.evaluate`` scores. No CRA (TensorFlow): the TF trainer's ``Validator`` scores
    the same weights through CRA.
    """

    def __init__(self, directory, size, hole_pool, holes=2, seed=1234):
        from hifill_tf.data.files import list_image_files
        from hifill_tf.data.numpy_feed import nearest_index
        from hifill_tf.io import read_image

        self.size = size
        self.cases = []
        for index, path in enumerate(list_image_files(directory)):
            photo = read_image(path)[0]
            scale = size / max(photo.shape[:2])
            w, h = (max(16, round(photo.shape[1] * scale)), max(16, round(photo.shape[0] * scale)))
            truth = np.asarray(Image.fromarray(photo).resize((w, h), Image.Resampling.LANCZOS))
            for k in range(holes):
                canvas = hole_pool.mask((seed + index * holes + k) % len(hole_pool)) != 0
                mask = canvas[np.ix_(nearest_index(hole_pool.side, h),
                                     nearest_index(hole_pool.side, w))]
                blanked = np.where(mask[..., None], np.uint8(0), truth)
                self.cases.append((truth, mask, blanked))
        from hifill_tf.evaluate import baselines

        self.telea = self._score([baselines.telea(b, m.astype(np.uint8) * 255)
                                  for _, m, b in self.cases])

    def _score(self, outputs):
        from hifill_tf.evaluate import _summary, image_metrics

        rows = []
        for output, (truth, mask, _) in zip(outputs, self.cases):
            row = image_metrics(output, truth, mask.astype(np.uint8) * 255, with_ms_ssim=False)
            rows.append({**row, "seconds": math.nan, "hole_fraction": float(np.mean(mask))})
        summary = _summary("validation", "", rows)
        return {k: summary[k] for k in ("hole_l1", "hole_psnr", "sharpness")}

    def __call__(self, predict, batch=8):
        """Scores of ``predict(image [N, S, S, 3] in [-1, 1], mask [N, S, S, 1]) -> inpainted``.

        Every case is padded (symmetric) to S x S and run in batches of ``batch`` (the last one
        padded with repeats), so a jitted ``predict`` compiles once.
        """
        images, holes = [], []
        for truth, mask, _ in self.cases:
            h, w = mask.shape
            pad = ((0, self.size - h), (0, self.size - w))
            images.append(np.pad(truth, pad + ((0, 0),), mode="symmetric"))
            holes.append(np.pad(mask, pad, mode="symmetric"))
        images = np.stack(images).astype(np.float32) / 127.5 - 1.0
        holes = np.stack(holes)[..., None].astype(np.float32)
        filled = []
        for start in range(0, len(images), batch):
            index = np.minimum(np.arange(start, start + batch), len(images) - 1)
            filled.append(np.asarray(predict(images[index], holes[index]), np.float32))
        filled = np.concatenate(filled)[:len(images)]
        outputs = []
        for (truth, mask, _), output in zip(self.cases, filled):
            h, w = mask.shape
            pixels = np.clip(np.round((output[:h, :w] + 1.0) * 127.5), 0, 255).astype(np.uint8)
            outputs.append(np.where(mask[..., None], pixels, truth))
        model = self._score(outputs)
        return {**model, **{f"telea_{k}": v for k, v in self.telea.items()}}


def _write_json(path, data):
    with atomic_file(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)


class _StopFlag:
    def __init__(self):
        self.signal = None

    def __call__(self, signum, frame):
        self.signal = signum


def _restore(config, generator, critic, g_optimizer, d_optimizer, progress):
    """(step, images seen at that step, random key) from the state folder or a fresh start."""
    directory = os.path.join(config["model_dir"], STATE_DIR)
    if state.has_state(directory):
        try:
            meta = state.load_state(directory, generator, critic, g_optimizer, d_optimizer)
        except state.StateError as error:
            raise TrainingError(str(error)) from error
        # The meta's step, not Adam's count: a compact state restarts Adam at 0.
        step = int(meta.get("step", np.asarray(g_optimizer.iterations.numpy())))
        progress(f"resumed from {directory} at step {step}")
        key = np.asarray(meta.get("key", [0, config["seed"]]), np.uint32)
        return step, meta.get("images_seen", config["images_seen_before"]), key
    if config["init_generator"]:
        from hifill_tf import loading

        try:
            source = loading.load_weights_into(generator, config["init_generator"])
        except loading.ModelError as error:
            raise TrainingError(f"--init_generator {error}") from error
        progress(f"generator initialised from {source.path}")
    return 0, config["images_seen_before"], np.asarray(jax.random.key_data(
        jax.random.PRNGKey(config["seed"])), np.uint32)


def train(config, progress=print):
    """Train until ``config['steps']`` generator updates or ``train_minutes``; resume from the
    state folder of ``model_dir`` if there is one. Returns a summary dict."""
    from hifill_tf.data.numpy_feed import HolePool, ViewFeed

    config = {**DEFAULTS, **config}
    check_config(config)
    if not config["hole_pool"]:
        raise TrainingError("--backend=jax needs --hole_pool (python -m hifill_tf.data.numpy_feed "
                            "render-holes, where TensorFlow is installed)")
    model_dir = config["model_dir"]
    os.makedirs(model_dir, exist_ok=True)
    state_dir = os.path.join(model_dir, STATE_DIR)
    start_step = state.read_meta(state_dir).get("step", 0) if state.has_state(state_dir) else 0
    if start_step >= config["steps"]:
        progress(f"already at step {start_step} >= --steps {config['steps']}; nothing to do")
        return dict(step=start_step, seconds=0.0, images=0)
    size, batch = config["image_size"], config["batch_size"]
    group = config["critic_steps"] + 1 if uses_critic(config) else 1
    images_per_step = batch * group
    pool = HolePool.load(config["hole_pool"])
    # The feed forks its workers before JAX starts threads. A different seed per resumption,
    # so a resumed run sees new views and holes.
    feed = ViewFeed(config["data"], size, images_per_step, holes=pool,
                    factor_range=(config["factor_min"], config["factor_max"]),
                    seed=config["seed"] + start_step, workers=config["feed_workers"],
                    color_augment=config["color_augment"], copy=False)
    try:
        return _train(config, feed, pool, start_step, images_per_step, progress)
    finally:
        feed.close()


def _train(config, feed, pool, start_step, images_per_step, progress):
    generator, critic, g_optimizer, d_optimizer = models = build(config)
    _, images_at_start, key = _restore(config, generator, critic, g_optimizer, d_optimizer,
                                       progress)
    _write_json(os.path.join(config["model_dir"], CONFIG_FILE),
                {**config, "resumed_at_step": start_step})
    progress(f"data: {len(feed.paths)} photos from {config['data']}, {len(feed.skipped)} "
             f"skipped; {jax.devices()[0].platform} {jax.devices()[0].device_kind}")
    validator = _network_validator(config, pool, progress)
    run = _Run(config=config, models=models, validator=validator, progress=progress,
               start_step=start_step, images_at_start=images_at_start,
               images_per_step=images_per_step)
    step_fn = make_train_step(generator, critic, g_optimizer, d_optimizer, config)
    train_state = gather_state(generator, critic, g_optimizer, d_optimizer, jnp.asarray(key))
    stop = _StopFlag()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.time()
    batches = _device_batches(feed, images_per_step // config["batch_size"], config["batch_size"])
    try:
        step = run.loop(step_fn, train_state, batches, stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    seconds = time.time() - started
    images = (step - start_step) * images_per_step
    progress(f"done: step {step}, {images} images in {format_seconds(seconds)} "
             f"({images / max(seconds, 1e-9):.1f} img/s with start-up)")
    return dict(step=step, seconds=seconds, images=images, signal=stop.signal)


def _network_validator(config, pool, progress):
    """The ``NetworkValidator`` of ``--validation_dir``, or None without one."""
    if not config["validation_dir"]:
        return None
    size = config["image_size"]
    validator = NetworkValidator(config["validation_dir"], size, pool, config["validation_holes"])
    progress(f"validation: {len(validator.cases)} views at {size} px; Telea hole L1 "
             f"{validator.telea['hole_l1']:.2f}")
    return validator


def _device_batches(feed, group, batch):
    """The feed's batches on the device as ([G, B, S, S, 3], [G, B, S, S, 1]), transferred."""
    on_cpu = jax.devices()[0].platform == "cpu"
    # The feed's arrays are views into its ring (copy=False: one host copy less a batch),
    # valid until the next batch is asked for: the transfer finishes before that.
    # On the CPU a device array may share the host memory: it gets a copy of its own.
    own = np.array if on_cpu else (lambda x: x)
    shape = (group, batch)
    for data in feed:
        yield jax.block_until_ready(
            (jax.device_put(own(data["image"].reshape(shape + data["image"].shape[1:]))),
             jax.device_put(own(data["mask"].reshape(shape + data["mask"].shape[1:])))))


@dataclasses.dataclass
class _Run:
    """One run of the loop: its models and what it writes to ``model_dir`` (the state folder,
    ``validation-network.jsonl``, ``best.npz``)."""

    config: dict
    models: tuple  # generator, critic, g_optimizer, d_optimizer (None without a critic)
    validator: object  # a NetworkValidator, or None
    progress: object
    start_step: int
    images_at_start: int  # images seen before start_step, by this and earlier runs
    images_per_step: int
    best: float = dataclasses.field(init=False)  # the lowest validation hole L1 so far
    model_dir: str = dataclasses.field(init=False)
    predict: object = dataclasses.field(init=False)  # the jitted generator call, for validation

    def __post_init__(self):
        self.model_dir = self.config["model_dir"]
        self.best = _best_so_far(os.path.join(self.model_dir, VALIDATION_LOG))
        generator = self.models[0]
        self.predict = jax.jit(lambda tv, ntv, image, mask: generator.stateless_call(
            tv, ntv, image, mask)[0]["inpainted"])

    def images_seen(self, step):  # across runs and stages of other batch or group sizes
        return self.images_at_start + (step - self.start_step) * self.images_per_step

    def save(self, train_state, step):
        scatter_state(train_state, *self.models)
        meta = dict(step=step, images_seen=self.images_seen(step), config=self.config,
                    key=np.asarray(train_state[-1]).tolist(), backend="jax")
        state.save_state(os.path.join(self.model_dir, STATE_DIR), *self.models, meta)

    def validate(self, train_state, step):
        started = time.time()
        metrics = self.validator(lambda image, mask: self.predict(train_state[0], train_state[1],
                                                                  image, mask))
        images = self.images_seen(step)
        record = {"step": step, "images_seen": images, **metrics}
        with open(os.path.join(self.model_dir, VALIDATION_LOG), "a") as f:
            f.write(json.dumps(record) + "\n")
        improved = metrics["hole_l1"] < self.best
        if improved:
            scatter_state(train_state, *self.models)
            size = self.config["image_size"]
            save_generator_weights(self.models[0], os.path.join(self.model_dir, BEST_WEIGHTS),
                                   network_pixels=size * size)
            self.best = metrics["hole_l1"]
        self.progress(
            f"validation at step {step} ({images} images, network resolution): hole L1 "
            f"{metrics['hole_l1']:.2f} (Telea {metrics['telea_hole_l1']:.2f}), sharpness "
            f"{metrics['sharpness']:.3f}" + ("; best so far, saved" if improved else "")
            + f" [{time.time() - started:.1f} s]")

    def report(self, step, logs, step_time):
        """Log the losses of ``step``; a non-finite one stops the run."""
        values = {k: float(v) for k, v in logs.items()}
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            raise TrainingError(f"non-finite loss at step {step}: {bad}; the last good "
                                f"state is in {os.path.join(self.model_dir, STATE_DIR)}")
        self.progress(f"step {step}/{self.config['steps']}  {step_time:.3f} s/step  "
                      f"{self.images_per_step / step_time:.1f} img/s  "
                      + "  ".join(f"{k}={values[k]:.4g}" for k in LOSS_NAMES if k in values))

    def loop(self, step_fn, train_state, batches, stop):
        """Steps until ``steps``, ``train_minutes`` or a signal; saves and validates at the end.
        Returns the step reached."""
        config = self.config
        deadline = (math.inf if not config["train_minutes"]
                    else time.time() + 60 * config["train_minutes"])
        step = self.start_step
        window_start, window_steps = time.time(), 0
        upcoming = next(batches)
        while step < config["steps"] and time.time() < deadline and stop.signal is None:
            train_state, logs = step_fn(train_state, *upcoming)
            upcoming = next(batches)  # made while the device runs the step
            step += 1
            window_steps += 1
            if step % config["log_every"] == 0 or step == config["steps"]:
                self.report(step, logs, (time.time() - window_start) / window_steps)
                window_start, window_steps = time.time(), 0
            paused = time.time()  # saving and validating are not training: images/s leaves them out
            if step % config["checkpoint_every"] == 0:
                jax.block_until_ready(train_state)
                paused = time.time()
                self.save(train_state, step)
            if self.validator is not None and step % config["validate_every"] == 0:
                self.validate(train_state, step)
            window_start += time.time() - paused
        self.save(train_state, step)
        if self.validator is not None and step % config["validate_every"] != 0:
            self.validate(train_state, step)
        return step


def _best_so_far(path):
    if not os.path.exists(path):
        return math.inf
    with open(path) as f:
        return min((json.loads(line)["hole_l1"] for line in f if line.strip()), default=math.inf)
