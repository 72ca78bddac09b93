"""Training throughput on CPU: images per second of one HiFillGAN step, per runtime configuration.

    python bench/train_bench.py                  # today vs default vs jax, 256 and 512, both steps
    python bench/train_bench.py --quick          # 256 reconstruction only, few steps: checks the script
    python bench/train_bench.py --sizes=256 --steps=reconstruction --check   # + gradient check

A full step (Algorithm 1) is ``critic_steps`` (5) critic updates, each on a
fresh batch, then one generator update on another fresh batch: it consumes
``batch * (critic_steps + 1)`` images, the count used for images/s. The
reconstruction-only step (``adversarial_weight=0, critic_steps=0``, the
warm-up stage) consumes ``batch`` images. The step is ``HiFillGAN.train_step``
wrapped in ``tf.function(jit_compile=...)``, as ``hifill_tf.training.trainer``
does; batches are synthetic tensors made once, so no input pipeline is timed.

Runtime configurations (``--configs``), each in its own worker process because
TensorFlow reads the oneDNN variable once, at import, and Keras fixes its backend
per process:

- ``today``: oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``, TF's Eigen kernels), the reference the
  others are compared with;
- ``default``: ``hifill_tf.training.cpu.TRAINING_ENV``, what ``train.py`` runs with (oneDNN on);
- ``jax``: ``train.py --backend=jax`` on the CPU (``KERAS_BACKEND=jax``, ``JAX_PLATFORMS=cpu``):
  the step of ``hifill_tf.training.jax_trainer`` (``build``, ``make_train_step``,
  ``gather_state``), one ``jax.jit`` function, so always XLA (one row per step whatever
  ``--xla`` says). The same batches in its layout [G, B, S, S, C]; each step ends with
  ``jax.block_until_ready``.

All workers of a size are started first; then the parent asks them for one
step each, round robin, so load from other processes hits every configuration
alike. ``--check`` also compares one generator update's gradients of every
configuration with ``today``'s on the same weights (the ``jax`` worker loads
today's by variable name) and batch.
"""

import importlib.util
import json
import os
import runpy
import subprocess
import sys
import time
from importlib.metadata import version

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (imports no TensorFlow)

from absl import app, flags  # noqa: E402

CPU = runpy.run_path(os.path.join(common.REPO, "hifill_tf", "training", "cpu.py"))
JAX_ENV = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
CONFIGS = {"today": CPU["ONEDNN_OFF_ENV"], "default": CPU["TRAINING_ENV"], "jax": JAX_ENV}

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["256", "512"], "Square crop sizes.")
flags.DEFINE_integer("batch_size", 2, "Images per update (the paper's batch is larger; CPU RAM "
                     "and time limit it here).")
flags.DEFINE_list("configs", list(CONFIGS), f"Runtime configurations: {', '.join(CONFIGS)}.")
flags.DEFINE_list("xla", ["off"], "XLA settings of the TF configurations: off, on "
                  "(tf.function(jit_compile=True)); jax is always XLA (jax.jit).")
flags.DEFINE_list("steps", ["reconstruction", "gan"], "Steps to time: reconstruction (generator "
                  "only, no critic) and/or gan (5 critic + 1 generator update).")
flags.DEFINE_integer("critic_steps", 5, "Critic updates per generator update in the gan step.")
flags.DEFINE_integer("repeats", 20, "Timed steps per configuration, interleaved; median reported.")
flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, XLA compilation, optimizer slots).")
flags.DEFINE_bool("check", False, "Compare one reconstruction update's generator gradients "
                  "with today's (same weights, same batch) and require finite losses.")
flags.DEFINE_float("target", 2.0, "Required speed-up of default over today (reconstruction, "
                   "smallest size, XLA off).")
flags.DEFINE_bool("quick", False, "256 reconstruction only, 1 warm-up and 3 timed steps.")
flags.DEFINE_string("worker", None, "Internal: JSON spec of a worker process.")


# ---------------------------------------------------------------- worker process

def synthetic_batch(batch, group, size, seed=0):
    """NumPy {"image", "mask"} [batch, group, size, size, C], the TF trainer's layout: uniform
    noise and one box per slot (10-25% of the area). Content does not change the cost: every
    op is dense."""
    import numpy as np

    rng = np.random.default_rng(seed)
    masks = np.zeros([batch, group, size, size, 1], np.float32)
    for b in range(batch):
        for g in range(group):
            side = int(size * np.sqrt(rng.uniform(0.10, 0.25)))
            y, x = rng.integers(0, size - side, 2)
            masks[b, g, y:y + side, x:x + side] = 1.0
    images = rng.uniform(-1.0, 1.0, [batch, group, size, size, 3]).astype(np.float32)
    return {"image": images, "mask": masks}


def step_config(spec, gan_step=None):
    """The training configuration of the worker's step (``gan_step=False``: reconstruction)."""
    from hifill_tf.training.config import DEFAULTS

    gan_step = spec["step"] == "gan" if gan_step is None else gan_step
    return {**DEFAULTS, "image_size": spec["size"], "batch_size": spec["batch"],
            "critic_steps": spec["critic_steps"] if gan_step else 0,
            "adversarial_weight": DEFAULTS["adversarial_weight"] if gan_step else 0.0}


def run_worker(spec):
    """Build the GAN under spec["env"], then serve commands on stdin: "step" runs one
    step, "grads PATH" saves one generator update's gradients and the weights they were
    taken at; one JSON reply per line."""
    os.environ.update(spec["env"])  # before TensorFlow or Keras is imported
    if spec["config"] == "jax":
        return run_jax_worker(spec)
    import keras
    import numpy as np
    import tensorflow as tf

    from hifill_tf.training.state import variable_key
    from hifill_tf.training.trainer import build_gan

    tf.get_logger().setLevel("ERROR")
    size, batch = spec["size"], spec["batch"]
    keras.utils.set_random_seed(0)
    gan = build_gan(step_config(spec))
    group = spec["critic_steps"] + 1 if gan.uses_critic else 1
    data = {k: tf.constant(v) for k, v in synthetic_batch(batch, group, size).items()}
    fn = tf.function(gan.train_step, jit_compile=spec["xla"] == "on", autograph=False)
    onednn = CPU["onednn_enabled"]()
    print(json.dumps({"ready": True, "onednn": onednn, "images": batch * group}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "step":
            start = time.perf_counter()
            logs = fn(data)
            loss = float(logs["g_loss"])  # a host read: the step has finished
            print(json.dumps({"seconds": time.perf_counter() - start, "loss": loss}), flush=True)
        elif command[0] == "grads":
            # Fresh weights (seed 0) on a fixed batch: every configuration sees the same.
            keras.utils.set_random_seed(0)
            config = step_config(spec, gan_step=False)
            fresh = build_gan(config)
            image, mask = data["image"][:, -1], data["mask"][:, -1]
            variables = fresh.generator.trainable_variables
            with tf.GradientTape() as tape:
                outputs = fresh.generator(image, mask, training=True)
                loss = sum(reconstruction_losses(outputs, image, mask, config))
            grads = tape.gradient(loss, variables)
            np.savez(command[1], loss=float(loss),
                     **{f"g/{variable_key(v)}": g.numpy() for v, g in zip(variables, grads)},
                     **{f"w/{variable_key(v)}": v.numpy() for v in variables})
            print(json.dumps({"loss": float(loss)}), flush=True)
        elif command[0] == "quit":
            break


def run_jax_worker(spec):
    """``run_worker`` for the jax configuration: the step of ``jax_trainer``; "grads PATH
    WEIGHTS" takes the gradients at the weights saved in WEIGHTS (a TF worker's file)."""
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np

    from hifill_tf.training import jax_trainer
    from hifill_tf.training.state import variable_key

    size, batch = spec["size"], spec["batch"]
    config = step_config(spec)
    keras.utils.set_random_seed(0)
    parts = jax_trainer.build(config)  # generator, critic, g_optimizer, d_optimizer
    step_fn = jax_trainer.make_train_step(*parts, config)
    group = config["critic_steps"] + 1 if jax_trainer.uses_critic(config) else 1
    data = synthetic_batch(batch, group, size)
    # [G, B, S, S, C], the critic's batches first: the JAX trainer's layout of the same views.
    images, masks = (jax.device_put(np.swapaxes(data[k], 0, 1)) for k in ("image", "mask"))
    key = jnp.asarray(jax.random.key_data(jax.random.PRNGKey(config["seed"])))
    # The step donates its state, the Keras variables' own buffers among them: from here on
    # only train_state holds the values.
    train_state = jax_trainer.gather_state(*parts, key)
    print(json.dumps({"ready": True, "onednn": None, "images": batch * group,
                      "device": str(jax.devices()[0])}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "step":
            start = time.perf_counter()
            train_state, logs = step_fn(train_state, images, masks)
            jax.block_until_ready((train_state, logs))
            seconds = time.perf_counter() - start
            print(json.dumps({"seconds": seconds, "loss": float(logs["g_loss"])}), flush=True)
        elif command[0] == "grads":
            config = step_config(spec, gan_step=False)
            generator = jax_trainer.build(config)[0]
            with np.load(command[2]) as reference:
                for variable in generator.trainable_variables:
                    variable.assign(reference[f"w/{variable_key(variable)}"])
            image, mask = data["image"][:, -1], data["mask"][:, -1]
            variables = generator.trainable_variables
            non_trainable = [v.value for v in generator.non_trainable_variables]

            def loss_fn(trainable):
                outputs, _ = generator.stateless_call(trainable, non_trainable, image, mask,
                                                      training=True)
                return sum(reconstruction_losses(outputs, image, mask, config))

            loss, grads = jax.value_and_grad(loss_fn)([v.value for v in variables])
            np.savez(command[1], loss=float(loss),
                     **{f"g/{variable_key(v)}": np.asarray(g) for v, g in zip(variables, grads)})
            print(json.dumps({"loss": float(loss)}), flush=True)
        elif command[0] == "quit":
            break


def reconstruction_losses(outputs, image, mask, config):
    """Eq. (13) of the refined and (weighted) the coarse output: Eq. (14) without the critic."""
    from hifill_tf.training import losses

    rec = losses.reconstruction_loss(outputs["refined"], image, mask, config["hole_weight"],
                                     config["context_weight"])
    coarse = losses.reconstruction_loss(outputs["coarse"], image, mask, config["hole_weight"],
                                        config["context_weight"])
    return rec, config["coarse_weight"] * coarse


class Worker:
    def __init__(self, spec):
        self.spec = spec
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        for name in ("TF_ENABLE_ONEDNN_OPTS", "KERAS_BACKEND", "JAX_PLATFORMS"):
            env.pop(name, None)  # the spec decides
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), f"--worker={json.dumps(spec)}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._reply()

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.spec} died with exit code {self.proc.wait()} "
                               "(a crash here is what --check looks for)")
        return json.loads(line)

    def ask(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self):
        try:
            self.ask("quit")
        except (BrokenPipeError, RuntimeError, ValueError):
            pass
        self.proc.wait(timeout=60)


# ---------------------------------------------------------------- parent

def compare_gradients(workers, tmpdir):
    """Rows: per configuration, max over variables of |g - g_today| / |g_today| (L2).

    The TF workers take the gradients at the same seeded weights; the jax worker, whose
    initialisation draws other numbers, at the weights today's worker saved."""
    import numpy as np

    def path(key):
        return os.path.join(tmpdir, f"{'-'.join(map(str, key))}.npz")

    rows = []
    for key, worker in workers.items():  # TF first: the jax workers read today's weights
        if key[0] != "jax":
            worker.ask(f"grads {path(key)}")
    for key, worker in workers.items():
        if key[0] == "jax" and ("today",) + key[1:3] + ("off",) in workers:
            worker.ask(f"grads {path(key)} {path(('today',) + key[1:3] + ('off',))}")
    for key in workers:
        config, size, step, xla = key
        ref_key = ("today", size, step, "off")
        if config == "today" and xla == "off" or ref_key not in workers:
            continue
        got = np.load(path(key))
        ref = np.load(path(ref_key))
        names = [k for k in ref.files if k.startswith("g/")]
        errors = [np.linalg.norm(got[k] - ref[k]) / max(np.linalg.norm(ref[k]), 1e-30)
                  for k in names]
        finite = all(np.isfinite(got[k]).all() for k in got.files)
        rows.append([f"{size}x{size}", step, config, xla, f"{float(got['loss']):.6f}",
                     f"{float(ref['loss']):.6f}", f"{max(errors):.2e}", f"{np.median(errors):.2e}",
                     common.verdict(finite and max(errors) < 1e-3)])
    return rows


def main(argv):
    del argv
    if FLAGS.worker:
        return run_worker(json.loads(FLAGS.worker))
    load_start = os.getloadavg()
    if FLAGS.quick:
        FLAGS.sizes, FLAGS.steps, FLAGS.repeats, FLAGS.warmup = ["256"], ["reconstruction"], 3, 1
    for name, allowed in (("steps", ("gan", "reconstruction")), ("xla", ("off", "on")),
                          ("configs", tuple(CONFIGS))):
        for value in getattr(FLAGS, name):
            if value not in allowed:
                raise app.UsageError(f"--{name} takes {', '.join(allowed)}; got {value!r}")
    if "jax" in FLAGS.configs and importlib.util.find_spec("jax") is None:
        raise app.UsageError("--configs=jax needs JAX: pip install 'jax[cpu]' (in the test "
                             "extra), or leave jax out of --configs")

    rows, check_rows, onednn, speedups, jax_ratios = [], [], {}, {}, []
    batch = FLAGS.batch_size
    for size in (int(s) for s in FLAGS.sizes):
        workers = {}
        print(f"[{size}x{size}] starting workers ...", file=sys.stderr, flush=True)
        try:
            for config in FLAGS.configs:
                for step in FLAGS.steps:
                    for xla in ["on"] if config == "jax" else FLAGS.xla:
                        key = (config, size, step, xla)
                        workers[key] = Worker(dict(config=config, env=CONFIGS[config], size=size,
                                                   batch=batch, step=step, xla=xla,
                                                   critic_steps=FLAGS.critic_steps))
                        onednn[config] = workers[key].info["onednn"]
            losses = {key: [] for key in workers}

            def make(key):
                def run():
                    reply = workers[key].ask("step")
                    losses[key].append(reply["loss"])
                return run

            print(f"[{size}x{size}] {len(workers)} configurations: {FLAGS.warmup} warm-up + "
                  f"{FLAGS.repeats} timed steps each, interleaved ...", file=sys.stderr, flush=True)
            results = common.measure({key: make(key) for key in workers}, FLAGS.repeats, FLAGS.warmup)
            if FLAGS.check:
                import tempfile

                with tempfile.TemporaryDirectory() as tmpdir:
                    check_rows += compare_gradients(workers, tmpdir)
        finally:
            for worker in workers.values():
                worker.close()
        for key, r in results.items():
            config, _, step, xla = key
            images = workers[key].info["images"]
            ref = results.get(("today", size, step, "off"))
            ratio = ref["median"] / r["median"] if ref else None
            if xla == "off" and config == "default" and step == "reconstruction" and ratio:
                speedups[size] = ratio
            tf_default = results.get(("default", size, step, "off"))
            if config == "jax" and tf_default:
                jax_ratios.append(f"{size}x{size} {step} "
                                  f"{tf_default['median'] / r['median']:.2f}x")
            finite = all(map(lambda v: v == v and abs(v) != float("inf"), losses[key]))
            label = (f"full: {FLAGS.critic_steps} critic + 1 generator" if step == "gan"
                     else "reconstruction only")
            onednn_cell = "n/a" if onednn[config] is None else "on" if onednn[config] else "off"
            rows.append([f"{size}x{size}", label, config, onednn_cell, xla,
                         batch, images, common.fmt_seconds(r["median"]),
                         f"{common.fmt_seconds(r['min'])} - {common.fmt_seconds(r['max'])}",
                         r["runs"], f"{images / r['median']:.2f}",
                         f"{ratio:.2f}x" if ratio else "-", "yes" if finite else "**NO**"])

    print("## Training step throughput (CPU): today's configuration, the default and JAX\n")
    jax_note = []
    if "jax" in FLAGS.configs:
        jax_note = [f"JAX {version('jax')}, jaxlib {version('jaxlib')} (jax rows: "
                    "hifill_tf.training.jax_trainer's step, one jax.jit function, batches "
                    "[G, B, S, S, C], each step ended by jax.block_until_ready)"]
    print("\n".join(common.machine_lines(
        xla="per row (tf.function(gan.train_step, jit_compile=True) when on; jax rows: jax.jit)",
        onednn=onednn.get("default", False),
        extra=["configurations: " + "; ".join(f"{c} = {CONFIGS[c]}" for c in FLAGS.configs)
               + " (one worker process per row)", *jax_note,
               f"{FLAGS.warmup} warm-up step(s), then {FLAGS.repeats} timed steps per row, rows "
               "of a size interleaved step by step; median reported",
               "synthetic in-memory batches; Adam as in training (beta_1 0.5, beta_2 0.9), "
               "WGAN-GP critic with gradient penalty"],
        load_start=load_start)))
    print()
    print(common.markdown_table(
        ["size", "step", "config", "oneDNN", "XLA", "batch", "images per step", "median step",
         "min - max", "runs", "images/s", "vs today", "losses finite"], rows))
    if check_rows:
        print("\n### Gradients of one reconstruction update of the generator vs today's (same "
              "weights, and the batch of the row's step)\n")
        print(common.markdown_table(
            ["size", "worker", "config", "XLA", "loss", "today's loss",
             "max rel. L2 error (over variables)", "median", "< 1e-3 and finite"], check_rows))
    if jax_ratios:
        print("\nJAX trainer vs TF default (XLA off), ratio of images/s: " + "; ".join(jax_ratios))
    if speedups:
        size = min(speedups)
        print(f"\nTarget: default >= {FLAGS.target:.1f}x today's images/s (reconstruction, "
              f"{size}x{size}, XLA off): {speedups[size]:.2f}x "
              f"{common.verdict(speedups[size] >= FLAGS.target)}")


if __name__ == "__main__":
    app.run(main)
