"""Tests for hifill_tf.training.gan: Algorithm 1's train step (the losses: tests/test_losses.py)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import keras
import tensorflow as tf

from hifill_tf.models.discriminator import Discriminator
from hifill_tf.models.generator import Generator
from hifill_tf.training import losses
from hifill_tf.training.gan import HiFillGAN
from hifill_tf.training.optimizers import FusedAdam
import reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------
# Data: synthetic textures, so the tests need nothing outside the repository.
# ----------------------------------------------------------------------------

def _texture(size, seed):
    """A smooth multi-frequency RGB texture with some grain, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(2, 8, 2)
        px, py = rng.uniform(0, 2 * np.pi, 2)
        channels.append(0.5 * np.sin(2 * np.pi * fx * x + px) * np.cos(2 * np.pi * fy * y + py)
                        + 0.3 * (x - 0.5) + 0.2 * rng.uniform(-1, 1, (size, size)))
    return np.clip(np.stack(channels, -1), -1, 1).astype(np.float32)


def _batch(rng, batch, groups, size):
    """{"image", "mask"} [batch, groups, size, size, C]: texture crops, rectangular holes."""
    source = _texture(3 * size, seed=int(rng.integers(1 << 30)))
    images = np.zeros((batch, groups, size, size, 3), np.float32)
    masks = np.zeros((batch, groups, size, size, 1), np.float32)
    for b in range(batch):
        for g in range(groups):
            top, left = rng.integers(0, 2 * size, 2)
            images[b, g] = source[top:top + size, left:left + size]
            h, w = rng.integers(size // 4, size // 2 + 1, 2)
            top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
            masks[b, g, top:top + h, left:left + w] = 1.0
    return {"image": images, "mask": masks}


def _values(variables):
    return [np.array(v) for v in variables]


def _changed(before, variables):
    return [not np.array_equal(b, np.array(v)) for b, v in zip(before, variables)]


def _make_gan(size, **kwargs):
    gan = HiFillGAN(Generator(), Discriminator(), **kwargs)
    # The trainer's optimizer (tests/test_optimizers.py checks it against Adam's equations).
    gan.compile(g_optimizer=FusedAdam(1e-4, beta_1=0.5, beta_2=0.9),
                d_optimizer=FusedAdam(1e-4, beta_1=0.5, beta_2=0.9))
    gan.build_all(size)
    return gan


# ----------------------------------------------------------------------------
# The paper's weights (the losses themselves: tests/test_losses.py).
# ----------------------------------------------------------------------------

def test_gan_defaults_are_the_papers():
    gan = HiFillGAN(Generator(), Discriminator())
    assert (gan.hole_weight, gan.context_weight) == (1.0, 1.2)
    assert (gan.critic_steps, gan.gp_weight, gan.adversarial_weight) == (5, 10.0, 1e-4)


# ----------------------------------------------------------------------------
# Algorithm 1 bookkeeping with stand-in networks (fast, eager).
# ----------------------------------------------------------------------------

class _TinyGenerator(keras.Model):
    """Stand-in with the Generator's call signature; remembers its inputs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(3, 1)
        self.seen = []

    def call(self, image, mask, training=None):
        self.seen.append(np.array(image))
        out = self.conv(tf.concat([image * (1 - mask), mask], axis=-1))
        return {"coarse": out, "refined": out, "inpainted": out * mask + image * (1 - mask)}


def test_critic_gets_fresh_slices_and_uniform_alpha(monkeypatch):
    # Algorithm 1: critic update i sees slice i with its own alpha ~ U[0, 1];
    # the generator update sees the last slice.
    draws = []
    original = losses.gradient_penalty

    def recording(critic, real, fake, alpha):
        draws.append((np.array(real), np.array(alpha)))
        return original(critic, real, fake, alpha)

    monkeypatch.setattr(losses, "gradient_penalty", recording)
    generator = _TinyGenerator()
    critic = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
    gan = HiFillGAN(generator, critic, critic_steps=5, seed=7)
    gan.compile(keras.optimizers.SGD(1e-3), keras.optimizers.SGD(1e-3))
    data = _batch(np.random.default_rng(5), batch=400, groups=6, size=4)
    gan.train_step(data)

    assert len(draws) == 5
    for step, (real, alpha) in enumerate(draws):
        np.testing.assert_array_equal(real, data["image"][:, step])
        assert alpha.shape == (400, 1, 1, 1)
    np.testing.assert_array_equal(generator.seen[-1], data["image"][:, -1])
    alphas = np.concatenate([alpha.ravel() for _, alpha in draws])
    assert alphas.min() >= 0.0 and alphas.max() <= 1.0
    assert not np.array_equal(draws[0][1], draws[1][1]), "alpha must be redrawn for every update"
    # Kolmogorov-Smirnov distance to U[0, 1]; 1.63 / sqrt(n) is the 1% critical value.
    ordered = np.sort(alphas)
    n = ordered.size
    ks = max(np.max(np.arange(1, n + 1) / n - ordered), np.max(ordered - np.arange(n) / n))
    assert ks < 1.63 / np.sqrt(n), ks


@pytest.mark.parametrize("kwargs", [dict(critic_steps=0), dict(adversarial_weight=0.0)])
def test_no_critic_update_without_adversarial_term(kwargs):
    # Eager: whether the critic runs is decided in Python (uses_critic), the
    # same in a traced step, and a trace would cost seconds per case.
    gan = _make_gan(32, **kwargs)
    critic_before = _values(gan.discriminator.weights)
    generator_before = _values(gan.generator.trainable_variables)
    data = _batch(np.random.default_rng(6), batch=1, groups=gan.critic_steps + 1, size=32)
    logs = gan.train_step(data)
    assert int(gan.g_optimizer.iterations) == 1
    assert int(gan.d_optimizer.iterations) == 0
    assert not any(_changed(critic_before, gan.discriminator.weights))
    assert any(_changed(generator_before, gan.generator.trainable_variables))
    for name in ("adv_loss", "d_loss", "wasserstein", "gradient_penalty"):
        assert float(logs[name]) == 0.0, name
    np.testing.assert_allclose(float(logs["g_loss"]),
                               float(logs["rec_loss"]) + float(logs["coarse_rec_loss"]), rtol=1e-6)


# ----------------------------------------------------------------------------
# The real networks through a compiled train step (Algorithm 1 with 2 critic updates: the
# count is a parameter, and each update is one more trace of the networks; the paper's 5 is
# the default, checked above, and the 5-slice loop is checked with tiny networks).
# ----------------------------------------------------------------------------

CRITIC_STEPS = 2


@pytest.fixture(scope="module")
def adversarial_run():
    """Two compiled steps of the paper's GAN (2 critic updates each) on one
    fixed 32x32 batch; records what each step reported and what it should have."""
    keras.utils.set_random_seed(0)
    gan = _make_gan(32, seed=1, critic_steps=CRITIC_STEPS)
    data = _batch(np.random.default_rng(7), batch=2, groups=CRITIC_STEPS + 1, size=32)
    image, mask = data["image"][:, -1], data["mask"][:, -1]
    step = tf.function(gan.train_step, autograph=False)  # as the trainer traces it
    generator_start = _values(gan.generator.trainable_variables)
    critic_start = _values(gan.discriminator.trainable_variables)
    history = []
    for _ in range(2):
        # The generator has no dropout or batch statistics: its outputs before
        # the step are the ones the generator update sees.
        outputs = gan.generator(image, mask, training=True)
        refined, coarse = outputs["refined"].numpy(), outputs["coarse"].numpy()
        gan.reset_metrics()
        logs = {k: float(v) for k, v in step(data).items()}
        # The generator update does not touch the critic: it is still the
        # critic that scored the fakes of that update.
        pasted = refined * mask + image * (1 - mask)
        history.append(dict(
            logs=logs,
            g_iterations=int(gan.g_optimizer.iterations),
            d_iterations=int(gan.d_optimizer.iterations),
            rec=reference.reconstruction_loss(refined, image, mask),
            coarse_rec=reference.reconstruction_loss(coarse, image, mask),
            adv=-float(np.mean(gan.discriminator(pasted, training=True).numpy())),
        ))
    return dict(gan=gan, step=step, history=history,
                generator_start=generator_start, critic_start=critic_start)


@pytest.mark.slow
def test_critic_steps_critic_updates_per_generator_update(adversarial_run):
    history = adversarial_run["history"]
    counts = [(h["g_iterations"], h["d_iterations"]) for h in history]
    assert counts == [(1, CRITIC_STEPS), (2, 2 * CRITIC_STEPS)]
    assert adversarial_run["step"].experimental_get_tracing_count() == 1


@pytest.mark.slow
def test_reported_losses_follow_eq_9_to_14(adversarial_run):
    for h in adversarial_run["history"]:
        logs = h["logs"]
        assert all(np.isfinite(list(logs.values()))), logs
        np.testing.assert_allclose(logs["rec_loss"], h["rec"], rtol=1e-5)
        np.testing.assert_allclose(logs["coarse_rec_loss"], h["coarse_rec"], rtol=1e-5)
        np.testing.assert_allclose(logs["adv_loss"], h["adv"], rtol=1e-4, atol=1e-6)
        # Eq. (14) with the coarse network's own reconstruction loss.
        np.testing.assert_allclose(
            logs["g_loss"], logs["rec_loss"] + logs["coarse_rec_loss"] + 1e-4 * logs["adv_loss"],
            rtol=1e-6)
        # Eq. (9), sigma = 10 (last critic update of the step).
        np.testing.assert_allclose(
            logs["d_loss"], logs["wasserstein"] + 10.0 * logs["gradient_penalty"], rtol=1e-6)
        assert logs["gradient_penalty"] > 0


@pytest.mark.slow
def test_adversarial_steps_train_both_networks(adversarial_run):
    gan, (first, second) = adversarial_run["gan"], adversarial_run["history"]
    generator_changed = _changed(adversarial_run["generator_start"], gan.generator.trainable_variables)
    critic_changed = _changed(adversarial_run["critic_start"], gan.discriminator.trainable_variables)
    # The score's bias cancels in E[D(x~)] - E[D(x)] and has no input
    # gradient: it is the one critic variable that never moves.
    names = [v.path for v in gan.discriminator.trainable_variables]
    assert [n.split("/", 1)[1] for n, c in zip(names, critic_changed) if not c] == ["score/bias"]
    # Every layer of the generator gets a gradient: all biases move. (At
    # Glorot init the signal shrinks through the gated layers, so the early
    # coarse kernels' gradients are below Adam's epsilon and move by less
    # than a float32 ulp in two steps.)
    generator_names = [v.path for v in gan.generator.trainable_variables]
    assert all(c for n, c in zip(generator_names, generator_changed) if n.endswith("bias"))
    assert np.mean(generator_changed) > 0.5, np.mean(generator_changed)
    # Same batch twice: more critic updates lower the critic's loss.
    for name in ("d_loss", "g_loss", "adv_loss", "wasserstein", "gradient_penalty"):
        assert first["logs"][name] != second["logs"][name], name
    assert second["logs"]["d_loss"] < first["logs"]["d_loss"]


def test_reconstruction_only_overfits_one_batch():
    # critic_steps=0: the warm-up of reconstruction only; ten compiled steps
    # on one fixed 64x64 batch must lower both reconstruction losses.
    keras.utils.set_random_seed(0)
    gan = HiFillGAN(Generator(), Discriminator(), critic_steps=0, seed=1)
    gan.compile(FusedAdam(1e-3), FusedAdam(1e-3))
    gan.build_all(64)
    data = _batch(np.random.default_rng(8), batch=2, groups=1, size=64)
    before = _values(gan.generator.trainable_variables)
    critic_before = _values(gan.discriminator.weights)
    step = tf.function(gan.train_step, autograph=False)  # as the trainer traces it
    rec, coarse = [], []
    for _ in range(10):
        gan.reset_metrics()
        logs = step(data)
        rec.append(float(logs["rec_loss"]))
        coarse.append(float(logs["coarse_rec_loss"]))
    assert np.all(np.isfinite(rec + coarse))
    assert rec[-1] < 0.95 * rec[0], rec
    assert coarse[-1] < coarse[0], coarse
    assert np.sum(np.diff(rec) < 0) >= 8, rec
    assert np.mean(_changed(before, gan.generator.trainable_variables)) > 0.9
    assert not any(_changed(critic_before, gan.discriminator.weights))
    assert int(gan.d_optimizer.iterations) == 0 and int(gan.g_optimizer.iterations) == 10


# ----------------------------------------------------------------------------
# tf.distribute: two CPU replicas must reproduce the single-device step.
# ----------------------------------------------------------------------------

_MIRRORED_SCRIPT = textwrap.dedent('''
    import json

    import numpy as np
    import tensorflow as tf

    # Two logical CPUs; only possible before TensorFlow initialises.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    from hifill_tf.models.discriminator import Discriminator
    from hifill_tf.models.generator import Generator
    from hifill_tf.training import losses
    from hifill_tf.training.gan import HiFillGAN

    # Every replica draws alpha from the same seed state, so the replicas'
    # draws cannot equal the single device's draw for the whole batch. Use a
    # per-sample alpha that is a function of the sample instead.
    penalty = losses.gradient_penalty
    def sample_alpha_penalty(critic, real, fake, alpha):
        alpha = 0.5 + 0.4 * tf.tanh(10.0 * tf.reduce_mean(real, axis=[1, 2, 3], keepdims=True))
        return penalty(critic, real, fake, alpha)
    losses.gradient_penalty = sample_alpha_penalty

    SIZE = 32
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, 2, SIZE, SIZE, 3)).astype(np.float32)
    masks = np.zeros((2, 2, SIZE, SIZE, 1), np.float32)
    masks[0, :, 8:24, 4:20] = 1.0
    masks[1, :, 2:18, 12:30] = 1.0
    batch = {"image": images, "mask": masks}

    def make_gan():
        # SGD, not Adam: Adam's first update is (almost) invariant to the
        # gradient's scale and would hide a replica-count factor. A large
        # adversarial weight makes the critic's path visible in the generator.
        gan = HiFillGAN(Generator(), Discriminator(), critic_steps=1, adversarial_weight=0.5, seed=3)
        gan.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
        gan.build_all(SIZE)
        return gan

    keras.utils.set_random_seed(0)
    reference = make_gan()
    # Zero biases give the fresh generator outputs of ~1e-7 in the hole (float
    # noise), and the critic's leaky ReLUs then switch on rounding noise:
    # random biases make the comparison well conditioned.
    for v in reference.generator.weights + reference.discriminator.weights:
        if v.path.endswith("bias"):
            v.assign(rng.normal(0, 0.1, v.shape).astype(np.float32))
    g0, d0 = reference.generator.get_weights(), reference.discriminator.get_weights()
    ref_logs = {k: float(v) for k, v in reference.train_step(batch).items()}

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        gan = make_gan()
    gan.generator.set_weights(g0)
    gan.discriminator.set_weights(d0)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(2)
    distributed = next(iter(strategy.experimental_distribute_dataset(dataset)))
    step = tf.function(gan.train_step, autograph=False)  # as the trainer traces it

    @tf.function(autograph=False)
    def distributed_step(data):  # as hifill_tf.training.trainer does
        local = strategy.run(step, args=(data,))
        return local, {name: t.result() for name, t in gan.trackers.items()}

    local, merged = distributed_step(distributed)

    def deltas(model, start):
        return [np.array(v) - w for v, w in zip(model.weights, start)]

    result = dict(
        replicas=strategy.num_replicas_in_sync,
        reference=ref_logs,
        merged={k: float(v) for k, v in merged.items()},
        local={k: [float(x) for x in strategy.experimental_local_results(v)] for k, v in local.items()},
        iterations=[int(np.array(gan.g_optimizer.iterations)), int(np.array(gan.d_optimizer.iterations))],
        alphas=[np.array(a).ravel().tolist() for a in strategy.experimental_local_results(
            strategy.run(tf.function(lambda: gan.interpolation_alpha(4))))],
    )
    for name, start in (("generator", g0), ("discriminator", d0)):
        want = deltas(getattr(reference, name), start)
        got = deltas(getattr(gan, name), start)
        norm = np.sqrt(sum(np.sum(d ** 2) for d in want))
        result[name] = dict(
            norm=float(norm),
            ratio=float(np.sqrt(sum(np.sum(d ** 2) for d in got)) / norm),
            difference=float(np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(want, got))) / norm),
        )

    # The trainer's FusedAdam under the strategy: each replica's gradient is summed across
    # replicas, then every device's copy gets the same fused update as keras Adam's.
    from hifill_tf.training.optimizers import FusedAdam
    def adam_copies(cls):
        with strategy.scope():
            variables = [keras.Variable(np.full(s, 0.5, np.float32)) for s in [(3, 3, 2, 4), (4,)]]
            optimizer = cls(0.01, beta_1=0.5, beta_2=0.9)
            optimizer.build(variables)
        def replica_step():
            scale = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group + 1, tf.float32)
            grads = [scale * tf.reshape(tf.range(tf.size(v), dtype=tf.float32), v.shape) / 10
                     for v in variables]
            optimizer.apply(grads, variables)
        apply = tf.function(lambda: strategy.run(replica_step), autograph=False)
        for _ in range(3):
            apply()
        return [[np.array(c).tolist() for c in strategy.experimental_local_results(v.value)]
                for v in variables]
    result["adam"] = dict(fused=adam_copies(FusedAdam), keras=adam_copies(keras.optimizers.Adam))
    print("RESULT " + json.dumps(result))
''')


@pytest.mark.slow
def test_mirrored_strategy_matches_single_device(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED_SCRIPT)
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])

    assert result["replicas"] == 2
    assert result["iterations"] == [1, 1]
    # Each replica draws its own interpolation weights (not one seed state's draw twice).
    first, second = result["alphas"]
    assert len(first) == 4 and first != second
    for name, want in result["reference"].items():
        # Trackers read across replicas, and the mean of the replicas' own
        # results (what keras fit reports), are the single-device losses.
        np.testing.assert_allclose(result["merged"][name], want, rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(np.mean(result["local"][name]), want, rtol=1e-4, atol=1e-6,
                                   err_msg=name)
    # The same update: a per-replica gradient that is summed but not divided
    # by the number of replicas would give a ratio of 2.
    for name in ("generator", "discriminator"):
        stats = result[name]
        assert stats["norm"] > 0, name
        assert abs(stats["ratio"] - 1.0) < 1e-3, (name, stats)
        assert stats["difference"] < 1e-3, (name, stats)
    # FusedAdam under MirroredStrategy: both device copies equal keras Adam's, which equal
    # Adam's equations for the summed gradient (3 times the first replica's, replicas 1 and 2).
    from reference import numpy_adam
    fused, plain = (result["adam"][k] for k in ("fused", "keras"))
    for i, shape in enumerate([(3, 3, 2, 4), (4,)]):
        summed = 3 * np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 10
        want = numpy_adam([np.full(shape, 0.5, np.float32)], [[summed]] * 3, 0.01, 0.5, 0.9, 1e-7)[0]
        for copy in range(2):
            np.testing.assert_allclose(fused[i][copy], want, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(fused[i][copy], plain[i][copy], rtol=1e-6, atol=1e-7)
