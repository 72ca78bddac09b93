import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# In-process tests run with oneDNN off, the reference numerics of the numpy comparisons;
# training runs with it on (hifill_tf/training/cpu.py, tests/test_cpu_training.py).
# Must be set before TensorFlow is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Tests import helper modules (e.g. harness.py) that sit beside them.
sys.path.insert(0, os.path.dirname(__file__))


# pytest-xdist (`make test`: -n 2): whole test files go to one worker, so their module fixtures
# (a traced model, a GAN step, an export) are built once, and the slowest units start first so
# that the two workers finish together. A model cached in the process is built once only if
# every file that uses it runs on the same worker: such files form one unit, named after what
# they share. (xdist's --dist loadgroup cannot do this under pytest 9: its test ids do not take
# xdist's group suffix, so every test would be its own unit and module fixtures would be built
# on both workers.)
_GROUPS = {
    # tests/shared.py's cached models: one export (random_export, loaded_saved_model), one
    # traced API graph (random_generator)
    "shared.py": ["test_infer.py", "test_mask_rule.py", "test_notebook.py", "test_export.py",
                  "test_cra.py", "test_evaluate.py"],
    # the bundled generator (hifill_tf.api.default_generator)
    "api.default_generator": ["test_beam.py", "test_validation.py", "test_app.py",
                              "test_app_iopaint.py"],
}
_UNIT_OF = {name: unit for unit, names in _GROUPS.items() for name in names}
# Slowest first, as measured by `pytest --durations=0` (seconds of one worker, summed per unit).
# A slow unit left for the end keeps one worker busy while the other idles (the browser tests
# take 60-80 s).
_SLOWEST_FIRST = ["shared.py", "test_jax_backend.py", "test_jax_training.py", "test_app_browser.py", "test_train.py",
                  "api.default_generator", "test_gan.py", "test_bench.py", "test_cpu_training.py",
                  "test_pipeline.py", "test_generator.py", "test_weights.py", "test_learning.py",
                  "test_masks.py", "test_app_load.py", "test_photos.py"]


def _unit(path):
    name = os.path.basename(path)
    return _UNIT_OF.get(name, name)


def pytest_collection_modifyitems(config, items):
    order = {name: i for i, name in enumerate(_SLOWEST_FIRST)}
    items.sort(key=lambda item: order.get(_unit(str(item.path)), len(order)))  # stable


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":  # what -n sets; an explicit --dist is honoured
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return _unit(nodeid.split("::")[0])

    config.option.loadscopereorder = False  # keep the slowest-first order of the collection
    return FileUnits(config, log)
