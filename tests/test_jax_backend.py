"""The networks and losses on the JAX backend (Keras fixes its backend per process: subprocesses).

- The layer harness and the NumPy-reference tests of the layers, the generator, the critic and
  the losses run again with ``KERAS_BACKEND=jax``; tests that are TensorFlow by nature skip
  there with the reason (``harness.tensorflow_only``).
- The bundled weights give the same inpainting and attention scores on both backends, on a
  real photo, and the JAX side never imports TensorFlow.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hifill_tf.io import read_image, read_mask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The test files whose every test runs on both backends (or says why it cannot).
JAX_TEST_FILES = ["tests/test_gated_conv.py", "tests/test_resampling.py",
                  "tests/test_contextual_attention.py", "tests/test_generator.py",
                  "tests/test_discriminator.py", "tests/test_losses.py"]


def _jax_environment():
    # Without the PYTEST_* variables of an xdist worker, which the inner pytest would inherit.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return {**environment, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


@pytest.mark.slow
def test_network_tests_pass_on_jax():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *JAX_TEST_FILES],
        cwd=ROOT, env=_jax_environment(), capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    # Every skip is a TensorFlow-only test that says so.
    skips = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    assert all("TensorFlow only:" in line for line in skips), skips


JAX_GENERATOR = """
import json, sys
import jax, numpy as np
from keras import ops
from hifill_tf.weights import load_generator
data = np.load(sys.argv[1])
with jax.default_matmul_precision("highest"):
    out = load_generator()(data["image"], data["mask"])
np.savez(sys.argv[2], refined=ops.convert_to_numpy(out["refined"]),
         scores=ops.convert_to_numpy(out["scores"]))
print(json.dumps({"tensorflow_imported": "tensorflow" in sys.modules}))
"""


def _photo_input():
    """A 256x256 network input cut from the test photo with its real hole, in [-1, 1]."""
    image, _ = read_image(os.path.join(ROOT, "tests", "data", "volna-640x360.jpg"))
    mask = read_mask(os.path.join(ROOT, "tests", "data", "volna-640x360-mask.png"))
    window = (slice(0, 256), slice(384, 640))  # the top right, where the hole is
    image = image[window].astype(np.float32)[None] / 127.5 - 1.0
    mask = (mask[window] > 0).astype(np.float32)[None, ..., None]
    return image, mask


@pytest.mark.slow
def test_bundled_weights_agree_across_backends(tmp_path):
    from keras import ops
    from hifill_tf.weights import load_generator

    image, mask = _photo_input()
    assert 0.1 < mask.mean() < 0.5
    np.savez(tmp_path / "input.npz", image=image, mask=mask)
    paths = [str(tmp_path / "input.npz"), str(tmp_path / "jax.npz")]
    result = subprocess.run(
        [sys.executable, "-c", JAX_GENERATOR, *paths], cwd=ROOT, env=_jax_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"tensorflow_imported": False}

    tf_out = {k: ops.convert_to_numpy(v) for k, v in load_generator()(image, mask).items()}
    jax_out = np.load(tmp_path / "jax.npz")
    differences = {key: float(np.abs(jax_out[key] - tf_out[key]).max())
                   for key in ("refined", "scores")}
    print("max |JAX - TensorFlow|:", differences)
    assert max(differences.values()) < 1e-4, differences
