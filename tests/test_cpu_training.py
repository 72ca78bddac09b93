"""CPU training runtime (hifill_tf/training/cpu.py): oneDNN on by default, same gradients.

Each TensorFlow configuration runs in a subprocess: TF reads TF_ENABLE_ONEDNN_OPTS
once, at import, and conftest.py turns oneDNN off for this test process.
"""

import json
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_PATH = os.path.join(REPO, "hifill_tf", "training", "cpu.py")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO, **extra)
    return env


def _run(code, env, *args, timeout=600):
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_configure_sets_onednn_on_and_keeps_explicit_values():
    cpu = runpy.run_path(CPU_PATH)  # the way train.py loads it: no TensorFlow import
    env = {}
    assert cpu["configure"](env) == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    env = {"TF_ENABLE_ONEDNN_OPTS": "0"}  # the documented fallback wins
    assert cpu["configure"](env) == {"TF_ENABLE_ONEDNN_OPTS": "0"}


def test_cpu_module_imports_no_tensorflow():
    code = ("import json, runpy, sys; runpy.run_path(%r)['configure'](); "
            "print(json.dumps('tensorflow' in sys.modules))" % CPU_PATH)
    assert _run(code, _clean_env()) is False


GRADIENTS = r"""
import json, os, sys
import keras, numpy as np, tensorflow as tf
from hifill_tf.training import cpu, losses
from hifill_tf.training.trainer import DEFAULTS, build_gan
size = 128
keras.utils.set_random_seed(0)
gan = build_gan({**DEFAULTS, "image_size": size, "batch_size": 2, "critic_steps": 0,
                 "adversarial_weight": 0.0})
rng = np.random.default_rng(0)
image = tf.constant(rng.uniform(-1, 1, [2, size, size, 3]).astype(np.float32))
mask = np.zeros([2, size, size, 1], np.float32); mask[:, 30:80, 40:100] = 1
mask = tf.constant(mask)

@tf.function
def grads():
    with tf.GradientTape() as tape:
        out = gan.generator(image, mask, training=True)
        loss = (losses.reconstruction_loss(out["refined"], image, mask, 1.0, 1.2)
                + losses.reconstruction_loss(out["coarse"], image, mask, 1.0, 1.2))
    return loss, tape.gradient(loss, gan.generator.trainable_variables)

for _ in range(3):  # repeated: a heap corruption would show as a crash
    loss, g = grads()
np.savez(sys.argv[1], loss=loss.numpy(), **{f"g{i}": v.numpy() for i, v in enumerate(g)})
print(json.dumps([cpu.onednn_enabled(), os.environ.get("TF_ENABLE_ONEDNN_OPTS")]))
"""


def _gradients(path, env, prologue=""):
    """Runs GRADIENTS (after `prologue`) in a fresh process; returns its last JSON line and the
    gradients it saved."""
    return _run(prologue + GRADIENTS, env, path, timeout=900), np.load(path)


# Module-level code of train.py (its prologue and imports), not main(): the oneDNN setting a
# user's train.py run gets when the environment does not set it.
TRAIN_PY_PROLOGUE = ("import runpy, sys; argv, sys.argv = sys.argv, ['train.py']; "
                     "runpy.run_path('train.py', run_name='train_under_test'); sys.argv = argv\n")


@pytest.fixture(scope="module")
def train_py_gradients(tmp_path_factory):
    """The gradients under train.py's own CPU settings (the environment leaves oneDNN unset):
    one TensorFlow start for both tests below."""
    path = tmp_path_factory.mktemp("onednn") / "grads-train-py.npz"
    return _gradients(path, _clean_env(), TRAIN_PY_PROLOGUE)


def test_train_py_trains_with_onednn_by_default(train_py_gradients):
    (enabled, variable), _ = train_py_gradients
    assert (enabled, variable) == (True, "1")


@pytest.mark.slow
def test_onednn_gradients_match_onednn_off(tmp_path, train_py_gradients):
    (enabled, _), on = train_py_gradients
    assert enabled is True
    (enabled, _), off = _gradients(tmp_path / "grads0.npz", _clean_env(TF_ENABLE_ONEDNN_OPTS="0"))
    assert enabled is False
    assert np.isfinite(float(on["loss"]))
    np.testing.assert_allclose(float(on["loss"]), float(off["loss"]), rtol=1e-5)
    for name in off.files:
        if name == "loss":
            continue
        assert np.isfinite(on[name]).all(), name
        error = np.linalg.norm(on[name] - off[name]) / max(np.linalg.norm(off[name]), 1e-30)
        assert error < 1e-3, (name, error)
