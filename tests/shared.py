"""What several test files share: paths, models built once per process, container files.

The models are cached (``functools.lru_cache``) in this module, so every test file that takes
one from here in the same process gets the same one, traced or exported once; conftest.py runs
those files as one unit on one pytest-xdist worker (``_GROUPS["shared.py"]``).
"""

import atexit
import functools
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import types
import zlib

from hifill_tf.data import containers

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


def rcc_file(files, version=3, zstd=()):
    """A Qt resource file of `files` {"/a/b.txt": (bytes, compress)}, laid out as rcc does:
    header, data, names, then the tree (breadth first, each folder's children contiguous)."""
    kids = {"": set()}
    for path in files:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            kids.setdefault("/".join(parts[:depth - 1]), set()).add("/".join(parts[:depth]))
    order = [""]
    for folder in order:  # grows while it is walked
        order.extend(sorted(kids.get(folder, ())))
    index = {node: i for i, node in enumerate(order)}
    data, names, name_offset, data_offset = b"", b"", {}, {}
    for node in order[1:]:
        name = node.rsplit("/", 1)[-1]
        name_offset[node] = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
        if node not in kids:
            content, compress = files["/" + node]
            payload = struct.pack(">I", len(content)) + zlib.compress(content) if compress else content
            data_offset[node] = len(data)
            data += struct.pack(">I", len(payload)) + payload
    tree = b""
    for node in order:
        if node in kids:
            children = sorted(kids[node])
            flags, body = containers.RCC_DIRECTORY, struct.pack(">II", len(children), index[children[0]])
        else:
            compress = files["/" + node][1]
            flags = (containers.RCC_COMPRESSED if compress else 0) | (
                containers.RCC_COMPRESSED_ZSTD if "/" + node in zstd else 0)
            body = struct.pack(">HHI", 0, 0, data_offset[node])  # country, language, data
        tree += struct.pack(">IH", name_offset.get(node, 0), flags) + body
        if version >= 2:
            tree += bytes(8)  # modification time
    header = 20 if version < 3 else 24
    out = b"qres" + struct.pack(">4I", version, header + len(data) + len(names), header,
                                header + len(data))  # tree, data, names offsets
    if version >= 3:
        out += struct.pack(">I", containers.RCC_COMPRESSED)  # which compressions occur
    return out + data + names + tree
