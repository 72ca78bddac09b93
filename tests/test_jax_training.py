"""The JAX trainer (``training/jax_trainer.py``) against the TF one, and the state both read.

Keras fixes its backend per process: the JAX side runs in a subprocess with
``KERAS_BACKEND=jax``, the TF side in this process.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hifill_tf.training import state
from hifill_tf.training.config import DEFAULTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE, BATCH = 64, 2


def run_jax(code, **env):
    """Run ``code`` under the JAX backend; returns its last stdout line parsed as JSON."""
    environment = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", **env}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _batch(group, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (BATCH, group, SIZE, SIZE, 3)).astype(np.float32)
    mask = np.zeros((BATCH, group, SIZE, SIZE, 1), np.float32)
    mask[:, :, 16:40, 8:44] = 1.0
    return image, mask


JAX_STEP = """
import json, sys
import jax, numpy as np
from hifill_tf.training import jax_trainer, state
config = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.loads(open({config!r}).read())
g, d, go, do = jax_trainer.build(config)
state.load_state({before!r}, g, d, go, do)
step = jax_trainer.make_train_step(g, d, go, do, config)
train_state = jax_trainer.gather_state(g, d, go, do, jax.random.key_data(jax.random.PRNGKey(0)))
data = np.load({batch!r})
image, mask = (np.swapaxes(data[k], 0, 1) for k in ("image", "mask"))  # [G, B, ...]
train_state, logs = step(train_state, image, mask)
jax_trainer.scatter_state(train_state, g, d, go, do)
state.save_state({after!r}, g, d, go, do)
print(json.dumps({{k: float(v) for k, v in logs.items()}}))
"""


def _moments(path):
    with np.load(path) as data:
        return {k: data[k].view(np.uint16) for k in data.files if not k.startswith("__")}


def test_one_reconstruction_step_matches_between_backends(tmp_path):
    """Same weights, same batch, one Adam step: the same losses, gradients (Adam's first
    moment is (1 - beta_1) g) and updated weights on TF and JAX."""
    import ml_dtypes

    from hifill_tf.training import trainer

    config = {**DEFAULTS, "image_size": SIZE, "batch_size": BATCH, "adversarial_weight": 0.0,
              "g_lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "hole_weight": 6.0}
    gan = trainer.build_gan(config)
    before, after = str(tmp_path / "before"), str(tmp_path / "tf")
    state.save_state(before, gan.generator, gan.discriminator, gan.g_optimizer)
    image, mask = _batch(1)
    np.savez(tmp_path / "batch.npz", image=image, mask=mask)
    (tmp_path / "config.json").write_text(json.dumps(config))
    logs = gan.train_step({"image": image, "mask": mask})  # eager: no trace to pay for
    state.save_state(after, gan.generator, gan.discriminator, gan.g_optimizer)

    jax_logs = run_jax(JAX_STEP.format(config=str(tmp_path / "config.json"), before=before,
                                       batch=str(tmp_path / "batch.npz"),
                                       after=str(tmp_path / "jax")))
    for name in ("rec_loss", "coarse_rec_loss", "g_loss"):
        assert jax_logs[name] == pytest.approx(float(logs[name]), rel=1e-5), name

    def values(path):
        with np.load(path) as data:
            return {k: data[k].view(ml_dtypes.bfloat16).astype(np.float32)
                    for k in data.files if k.startswith("m/")}

    m_tf, m_jax = values(f"{after}/g_optimizer.npz"), values(str(tmp_path / "jax/g_optimizer.npz"))
    assert m_tf.keys() == m_jax.keys() and len(m_tf) > 100
    difference = np.sqrt(sum(np.sum((m_tf[k] - m_jax[k]) ** 2) for k in m_tf))
    norm = np.sqrt(sum(np.sum(m_tf[k] ** 2) for k in m_tf))
    assert norm > 0 and difference / norm < 1e-2  # bfloat16 storage: ~4e-3 per element

    with np.load(f"{after}/generator.npz") as a, np.load(str(tmp_path / "jax/generator.npz")) as b, \
            np.load(f"{before}/generator.npz") as start:
        moved = [k for k in a.files if not k.startswith("__")]
        step_tf = np.concatenate([(a[k] - start[k]).ravel() for k in moved])
        step_jax = np.concatenate([(b[k] - start[k]).ravel() for k in moved])
    # Adam's first step is about lr * sign(g) for every weight with a real gradient.
    big = np.abs(step_tf) > 0.5 * config["g_lr"]
    assert big.mean() > 0.5
    assert np.mean(np.sign(step_tf[big]) == np.sign(step_jax[big])) > 0.99
    assert np.max(np.abs(step_tf - step_jax)) <= 2.0 * config["g_lr"] * 1.001


def test_gpu_script_trains_on_cpu_jax_until_its_minutes_then_tf_resumes(tmp_path):
    """tools/gpu_train.sh as the GPU machine runs it, on CPU JAX with a tiny budget: it stops at
    --train_minutes, leaves the state, best.npz, the validation log and the compilation cache in
    OUT; the TensorFlow trainer then resumes from that state (a run moves between backends)."""
    import shutil

    from hifill_tf.data import numpy_feed
    from hifill_tf.training import trainer

    gpu = tmp_path / "gpu"
    for split in ("train", "val"):
        (gpu / "photos" / split).mkdir(parents=True)
        shutil.copy(os.path.join(ROOT, "tests", "data", "volna-640x360.jpg"), gpu / "photos" / split)
    numpy_feed.render_holes(SIZE, 16, str(gpu / "holes.npz"))
    out, run = tmp_path / "out", tmp_path / "run"
    environment = {**os.environ, "ALLOW_CPU": "1", "PYTHON": sys.executable, "RUN_DIR": str(run),
                   "GPU_DIR": str(gpu), "JAX_PLATFORMS": "cpu"}
    # 0.01 minutes end during the first step (compilation): one step, then save and validate.
    result = subprocess.run(
        ["bash", "tools/gpu_train.sh", str(out), "0.01", "--image_size", str(SIZE),
         "--batch_size", str(BATCH), "--hole_pool", str(gpu / "holes.npz"), "--steps", "1000",
         "--adversarial_weight", "0", "--feed_workers", "1", "--log_every", "1"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    log = (out / "train.log").read_text()
    assert result.returncode == 0, log[-3000:] + result.stderr[-2000:]
    assert "device cpu" in log and "initialised from hifill_tf/weights/hifill_default.npz" in log
    for name in ("generator.npz", "critic.npz", "g_optimizer.npz", "best.npz",
                 "validation-network.jsonl", "jax-cache.tar"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "d_optimizer.npz").exists()  # reconstruction only: no critic optimizer
    meta = state.read_meta(str(out))
    assert meta["step"] == 1 and meta["backend"] == "jax"
    record = json.loads((out / "validation-network.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 1 and 0 < record["hole_l1"] < 255 and 0 < record["telea_hole_l1"] < 255

    messages = []
    summary = trainer.train({"model_dir": str(run), "data": str(gpu / "photos" / "train"),
                             "image_size": SIZE, "batch_size": BATCH, "steps": 2,
                             "adversarial_weight": 0.0, "log_every": 1},
                            progress=messages.append)
    assert summary["step"] == 2
    assert any(m.startswith(f"resumed from {run}/state at step 1") for m in messages), messages


def test_compact_state_keeps_float16_networks_and_restarts_adam(tmp_path):
    """What the repository keeps between GPU runs: both networks in float16, no optimizer
    files; loading it gives the rounded weights, fresh Adams and the meta's step."""
    from hifill_tf.training import trainer

    config = {**DEFAULTS, "image_size": SIZE, "batch_size": BATCH}
    gan = trainer.build_gan(config)
    full, compact = str(tmp_path / "full"), str(tmp_path / "compact")
    gan.g_optimizer.iterations.assign(7)
    for variable in gan.g_optimizer.variables[2:4]:
        variable.assign(np.full(variable.shape, 0.5, np.float32))
    state.save_state(full, gan.generator, gan.discriminator, gan.g_optimizer, gan.d_optimizer)
    state.save_state(compact, gan.generator, gan.discriminator, gan.g_optimizer, gan.d_optimizer,
                     meta={"step": 7, "images_seen": 99}, compact=True)
    assert sorted(os.listdir(compact)) == ["critic.npz", "generator.npz"]
    assert sorted(os.listdir(full)) == sorted(state.FILES)
    with np.load(f"{compact}/generator.npz") as data:
        assert {data[k].dtype for k in data.files if not k.startswith("__")} == {np.dtype(np.float16)}
    size = sum(os.path.getsize(os.path.join(compact, f)) for f in os.listdir(compact))
    assert size < 0.3 * sum(os.path.getsize(os.path.join(full, f)) for f in os.listdir(full))

    fresh = trainer.build_gan(config)
    meta = state.load_state(compact, fresh.generator, fresh.discriminator, fresh.g_optimizer,
                            fresh.d_optimizer)
    assert meta == {"step": 7, "images_seen": 99}
    assert int(fresh.g_optimizer.iterations.numpy()) == 0
    assert all(not np.any(v.numpy()) for v in fresh.g_optimizer.variables[2:])
    for mine, theirs in zip(gan.generator.weights, fresh.generator.weights):
        np.testing.assert_array_equal(theirs.numpy(), mine.numpy().astype(np.float16).astype(np.float32))
