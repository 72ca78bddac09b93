"""Training throughput on CPU: images per second of one full HiFillGAN step.

    python bench/train_bench.py            # full run: 256 and 512, XLA off and on
    python bench/train_bench.py --quick    # 256 only, 2 timed steps: checks the script runs

A full step (Algorithm 1) is ``critic_steps`` (5) critic updates, each on a
fresh batch, then one generator update on another fresh batch: it consumes
``batch * (critic_steps + 1)`` images, the count used for images/s. The
reconstruction-only step (``adversarial_weight=0, critic_steps=0``, the
warm-up stage) consumes ``batch`` images. The step is ``HiFillGAN.train_step``
wrapped in ``tf.function(jit_compile=...)``, as ``hifill_tf.training.trainer``
does; batches are synthetic tensors made once, so no input pipeline is timed.

oneDNN is off: its Conv2DBackpropFilter kernel corrupts the heap on the
generator's backward pass in TF 2.21 (see ``hifill_tf.training``), so
training runs without it and so does this benchmark.
"""

import os
import sys

# Before TensorFlow is imported anywhere, as train.py does (see hifill_tf/training/__init__.py).
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["256", "512"], "Square crop sizes.")
flags.DEFINE_integer("batch_size", 2, "Images per update (the paper's batch is larger; CPU RAM "
                     "and time limit it here).")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings: off, on (tf.function(jit_compile=True)).")
flags.DEFINE_list("steps", ["gan", "reconstruction"], "Steps to time: gan (5 critic + 1 generator "
                  "update) and/or reconstruction (generator only, no critic).")
flags.DEFINE_integer("critic_steps", 5, "Critic updates per generator update in the gan step.")
flags.DEFINE_integer("repeats", 5, "Timed steps per configuration, interleaved; median reported.")
flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, XLA compilation, optimizer slots).")
flags.DEFINE_bool("quick", False, "256 only, 1 warm-up and 2 timed steps: checks the script runs.")


def synthetic_batch(batch, group, size, seed=0):
    """{"image", "mask"} [batch, group, size, size, C]: uniform noise and one box per slot
    (10-25% of the area). Content does not change the cost: every op is dense."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    masks = np.zeros([batch, group, size, size, 1], np.float32)
    for b in range(batch):
        for g in range(group):
            side = int(size * np.sqrt(rng.uniform(0.10, 0.25)))
            y, x = rng.integers(0, size - side, 2)
            masks[b, g, y:y + side, x:x + side] = 1.0
    images = rng.uniform(-1.0, 1.0, [batch, group, size, size, 3]).astype(np.float32)
    return {"image": tf.constant(images), "mask": tf.constant(masks)}


def main(argv):
    del argv
    load_start = os.getloadavg()
    if FLAGS.quick:
        FLAGS.sizes, FLAGS.repeats, FLAGS.warmup = ["256"], 2, 1
    import keras
    import tensorflow as tf

    from hifill_tf.training.trainer import DEFAULTS, build_gan

    tf.get_logger().setLevel("ERROR")
    for step in FLAGS.steps:
        if step not in ("gan", "reconstruction"):
            raise app.UsageError(f"--steps takes gan and/or reconstruction; got {step!r}")
    for mode in FLAGS.xla:
        if mode not in ("off", "on"):
            raise app.UsageError(f"--xla takes off and/or on; got {mode!r}")

    rows = []
    batch = FLAGS.batch_size
    for size in (int(s) for s in FLAGS.sizes):
        functions, images_per_step = {}, {}
        for step in FLAGS.steps:
            gan_step = step == "gan"
            keras.utils.set_random_seed(0)
            gan = build_gan({**DEFAULTS, "image_size": size, "batch_size": batch,
                             "critic_steps": FLAGS.critic_steps if gan_step else 0,
                             "adversarial_weight": DEFAULTS["adversarial_weight"] if gan_step else 0.0})
            group = FLAGS.critic_steps + 1 if gan.uses_critic else 1
            data = synthetic_batch(batch, group, size)
            for mode in FLAGS.xla:
                fn = tf.function(gan.train_step, jit_compile=mode == "on")

                def run(fn=fn, data=data):
                    logs = fn(data)
                    return float(logs["g_loss"])  # a host read: the step has finished

                functions[(step, mode)] = run
                images_per_step[(step, mode)] = batch * group
        print(f"[{size}x{size}] {len(functions)} configurations: {FLAGS.warmup} warm-up + "
              f"{FLAGS.repeats} timed steps each, interleaved ...", file=sys.stderr, flush=True)
        results = common.measure(functions, FLAGS.repeats, FLAGS.warmup)
        for (step, mode), r in results.items():
            rate = images_per_step[(step, mode)] / r["median"]
            off = results.get((step, "off"))
            vs_off = f"{off['median'] / r['median']:.2f}x" if off else "-"
            label = (f"full: {FLAGS.critic_steps} critic + 1 generator update" if step == "gan"
                     else "reconstruction only")
            rows.append([f"{size}x{size}", label, mode, batch, images_per_step[(step, mode)],
                         common.fmt_seconds(r["median"]),
                         f"{common.fmt_seconds(r['min'])} - {common.fmt_seconds(r['max'])}",
                         r["runs"], f"{rate:.2f}", vs_off])

    print("## Training step throughput (CPU)\n")
    print("\n".join(common.machine_lines(
        xla="per row (tf.function(gan.train_step, jit_compile=True) when on)",
        extra=[f"{FLAGS.warmup} warm-up step(s), then {FLAGS.repeats} timed steps per row, rows "
               "of a size interleaved; median reported",
               "synthetic in-memory batches; Adam as in training (beta_1 0.5, beta_2 0.9), "
               "WGAN-GP critic with gradient penalty"],
        load_start=load_start)))
    print()
    print(common.markdown_table(
        ["size", "step", "XLA", "batch", "images per step", "median step", "min - max", "runs",
         "images/s", "speed-up vs XLA off"], rows))


if __name__ == "__main__":
    app.run(main)
