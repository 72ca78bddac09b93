"""train.py end to end: resume after SIGKILL, checkpoint on SIGTERM, config, bad files."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        y, x = np.mgrid[0:96, 0:128]
        img = 128 + 60 * np.sin(x / (5 + i))[..., None] + rng.normal(0, 20, (96, 128, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"p{i}.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    return folder


def _command(photos, model_dir, steps, *extra):
    return [sys.executable, os.path.join(ROOT, "train.py"), "--data_dir", str(photos),
            "--model_dir", str(model_dir), "--image_size", "64", "--batch_size", "2",
            "--steps", str(steps), "--critic_steps", "1", "--checkpoint_every", "2",
            "--log_every", "1", "--image_every", "2", *extra]


def _env():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # train.py chooses the CPU settings itself (cpu.py)
    return env


def _checkpoint_iterations(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    names = reader.get_variable_to_shape_map()

    def count(prefix):
        # A LossScaleOptimizer keeps the real count in its inner optimizer (its own stays 0).
        return max(int(reader.get_tensor(n)) for n in names
                   if n.startswith(prefix) and "iteration" in n)

    return count("g_optimizer/"), count("d_optimizer/"), path


def _wait_for(predicate, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"train.py exited early with {process.returncode}")
        time.sleep(0.5)
    raise AssertionError("timed out")


def _read_until(process, prefix, lines, timeout=240):
    """Lines of `process` up to the first that starts with `prefix` (collected in `lines`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith(prefix):
            return line
        assert line or process.poll() is None, "".join(lines)
    raise AssertionError(f"timed out waiting for {prefix!r}: " + "".join(lines))


@pytest.mark.slow
def test_sigkill_then_resume_then_sigterm_keeps_step_weights_and_optimizer_state(photos, tmp_path):
    """Killed (SIGKILL) after a checkpoint, resumed, then stopped (SIGTERM) at an arbitrary step.

    One run through both signals: each train.py start costs a TensorFlow import and a trace.
    """
    model_dir = tmp_path / "run"
    process = subprocess.Popen(_command(photos, model_dir, 1000), env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def has_checkpoint():
        index = model_dir / "checkpoints" / "checkpoint"
        return index.exists() and tf.train.latest_checkpoint(str(model_dir / "checkpoints"))

    _wait_for(has_checkpoint, process)
    process.send_signal(signal.SIGKILL)
    output = process.communicate()[0]
    g_iter, d_iter, path = _checkpoint_iterations(model_dir)
    assert g_iter >= 2 and g_iter % 2 == 0 and d_iter == g_iter  # one critic update per step
    assert "1 skipped (broken.jpg)" in output

    config = json.loads((model_dir / "config.json").read_text())
    assert config["image_size"] == 64 and config["critic_steps"] == 1 and config["steps"] == 1000

    # Resume; no periodic checkpoint now, so only SIGTERM can write the next one.
    process = subprocess.Popen(_command(photos, model_dir, 1000, "--checkpoint_every", "1000"),
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines = []
    _read_until(process, "resumed from", lines)
    assert lines[-1].strip() == f"resumed from {path} at step {g_iter}"
    _read_until(process, f"step {g_iter + 3}/", lines)
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=120)[0]
    assert process.returncode == 128 + signal.SIGTERM, "".join(lines) + rest
    stopped = [l for l in rest.splitlines() if l.startswith("stopped by signal")]
    assert stopped, rest
    step = int(stopped[0].split(" at step ")[1].split(";")[0])
    assert step >= g_iter + 3
    # Both optimizers continued from their saved counts: restored, not recreated.
    g_now, d_now, path = _checkpoint_iterations(model_dir)
    assert (g_now, d_now) == (step, step)
    assert json.loads((model_dir / "config.json").read_text())["resumed_at_step"] == g_iter

    # Every generator and critic weight (and the random state) is restored by name, exactly.
    from hifill_tf.training import trainer
    gan = trainer.build_gan({**trainer.DEFAULTS, **config})
    fresh = [v.numpy().copy() for v in gan.generator.weights]
    trainer.restore_checkpoint(gan, path)
    reader = tf.train.load_checkpoint(path)
    for node, model in (("generator", gan.generator), ("discriminator", gan.discriminator)):
        for variable in model.weights:
            key = variable.path.split("/", 1)[1].replace("/", "..")
            saved = reader.get_tensor(f"{node}/{key}/.ATTRIBUTES/VARIABLE_VALUE")
            np.testing.assert_array_equal(variable.numpy(), saved)
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(fresh, gan.generator.weights))
    np.testing.assert_array_equal(gan.seed_generator.state.numpy(),
                                  reader.get_tensor("seed_state/.ATTRIBUTES/VARIABLE_VALUE"))


def test_init_generator_loads_by_name_and_fails_clearly_on_a_mismatch(tmp_path, monkeypatch):
    from hifill_tf.models import generator as generator_module
    from hifill_tf.training import trainer

    config = {**trainer.DEFAULTS, "image_size": 64, "adversarial_weight": 0.0}
    gan = trainer.build_gan(config)
    for v in gan.generator.weights:
        v.assign(tf.random.normal(v.shape))
    source = tmp_path / "source"
    tf.train.CheckpointManager(trainer.checkpoint_for(gan), str(source / "checkpoints"), 1).save()
    target = trainer.build_gan(config).generator
    trainer._init_generator(target, str(source))
    by_name = {v.path.split("/", 1)[1]: v.numpy() for v in gan.generator.weights}
    for v in target.weights:
        np.testing.assert_array_equal(v.numpy(), by_name[v.path.split("/", 1)[1]])
    # The same checkpoint into a generator with two same-shaped layers swapped: a clear error.
    swapped = generator_module.COARSE_SPEC.replace("K3S1C64 - K3S1C64D2 - ", "K3S1C64D2 - K3S1C64 - ", 1)
    monkeypatch.setattr(generator_module, "COARSE_SPEC", swapped)
    with pytest.raises(trainer.TrainingError, match="does not match this model's layers by name"):
        trainer._init_generator(generator_module.Generator(), str(source))


def test_bad_configuration_is_one_clear_error_without_tensorflow(photos, tmp_path):
    from shared import WITHOUT_TENSORFLOW

    # Checked before TensorFlow is imported (seconds): a typo costs a fraction of a second.
    train = [sys.executable, "-c", WITHOUT_TENSORFLOW, os.path.join(ROOT, "train.py")]
    result = subprocess.run(train + _command(photos, tmp_path / "x", 1, "--image_size", "100")[2:],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert ("exit train.py: --image_size must be a positive multiple of 64; got 100 "
            "tensorflow imported: False") in result.stdout, result.stdout + result.stderr
    result = subprocess.run(train + ["--model_dir", str(tmp_path / "y")], env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert ("exit train.py: give exactly one of --data_dir or --dataset tensorflow imported: False"
            in result.stdout), result.stdout + result.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_mixed_precision_under_multi_worker_trains_with_finite_losses(photos, tmp_path):
    # mixed_float16 is meant for GPUs but runs on CPU too; multi_worker without TF_CONFIG is a
    # one-worker cluster. Together in one run (one TensorFlow start): it must train, save and
    # report finite losses, with the loss scale and the strategy's collective paths both in use.
    result = subprocess.run(_command(photos, tmp_path / "run", 2, "--mixed_precision",
                                     "--strategy=multi_worker"), env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: step 2" in result.stdout
    losses = [l for l in result.stdout.splitlines() if l.startswith("step 2/2")]
    assert losses and "nan" not in losses[0] and "inf" not in losses[0]
    assert _checkpoint_iterations(tmp_path / "run")[0] == 2
