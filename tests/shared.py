"""What several test files share: paths, and models built once per process.

The models are cached (``functools.lru_cache``) in this module, so every test file that takes
one from here in the same process gets the same one, traced or exported once; conftest.py runs
those files as one unit on one pytest-xdist worker (``_GROUPS["shared.py"]``).
"""

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INFER = os.path.join(REPO, "infer.py")
PHOTO = os.path.join(REPO, "tests", "data", "volna-640x360.jpg")  # see tests/data/README.md

# `python -c WITHOUT_TENSORFLOW SCRIPT ARGS...` runs a front end as __main__ and prints its exit
# code and whether it imported TensorFlow: --help and bad flags must answer without it.
WITHOUT_TENSORFLOW = """
import runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exit:
    code = exit.code
print("exit", code, "tensorflow imported:", "tensorflow" in sys.modules)
"""


@functools.lru_cache(maxsize=None)
def random_weights():
    """Generator weights (.npz) with random values, made once per process."""
    import keras

    from hifill_tf import Generator
    from hifill_tf.weights import save_generator_weights

    directory = tempfile.mkdtemp(prefix="hifill-test-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    keras.utils.set_random_seed(0)
    # Named: the weights file keys variables by path, which starts with the model's name, and
    # Keras numbers the names of later models in a process (generator_1, ...).
    generator = Generator(name="generator")
    generator.build()
    return save_generator_weights(generator, os.path.join(directory, "random.npz"))


@functools.lru_cache(maxsize=None)
def random_export():
    """`export.py --weights` on `random_weights`: the one SavedModel of the tests, exported once
    per process as a user exports it. Tracing the graph for export takes a quarter of a minute
    on a CPU, so every file that needs a SavedModel uses this one (test_infer, test_mask_rule,
    test_notebook, test_export: one unit in conftest.py). The budget is export.py's default,
    512 x 512.
    """
    weights = random_weights()
    path = os.path.join(os.path.dirname(weights), "models", "hifill", "1")
    command = [sys.executable, "export.py", "--output_dir", path, "--weights", weights]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stdout + done.stderr
    return types.SimpleNamespace(path=path, weights=weights, command=command, stdout=done.stdout)


def random_saved_model():
    return random_export().path


@functools.lru_cache(maxsize=None)
def random_generator():
    """`random_weights` in a Generator, loaded once: the tests that call the API with it share
    its traced graph (test_mask_rule, test_export)."""
    from hifill_tf import Generator
    from hifill_tf.weights import load_generator_weights

    # Explicit name: the .npz is keyed by variable paths, which start with the model's name.
    return load_generator_weights(Generator(name="generator"), random_weights())


@functools.lru_cache(maxsize=None)
def loaded_saved_model():
    """`random_saved_model` loaded once: each loaded signature's first call pays for optimising
    its graph."""
    import tensorflow as tf

    return tf.saved_model.load(random_saved_model())
