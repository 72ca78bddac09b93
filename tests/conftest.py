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
# (a traced model, a GAN step, an export) are built once, and the slowest files start first so
# that the two workers finish together. Files that share a model cached in the process form
# one unit, so it is built once: test_infer.random_export and random_generator (test_infer,
# test_mask_rule, test_notebook, test_export, test_cra, test_evaluate: one export, one traced
# API graph) and the bundled generator (test_beam, test_validation, test_app,
# test_app_iopaint). (xdist's --dist loadgroup cannot do this under pytest 9, whose test ids no
# longer take xdist's group suffix: every test was its own unit and module fixtures were built
# on both workers.)
_GROUPS = {"test_mask_rule.py": "test_infer.py", "test_notebook.py": "test_infer.py",
           "test_export.py": "test_infer.py", "test_cra.py": "test_infer.py",
           "test_evaluate.py": "test_infer.py", "test_validation.py": "test_beam.py",
           "test_app.py": "test_beam.py", "test_app_iopaint.py": "test_beam.py"}
# Slowest first, as measured by `pytest --durations=0` (seconds of one worker, summed per unit).
# A slow unit left for the end keeps one worker busy while the other idles (the browser tests
# take 60-80 s).
_SLOWEST_FIRST = ["test_infer.py", "test_jax_backend.py", "test_jax_training.py", "test_app_browser.py", "test_train.py",
                  "test_beam.py", "test_gan.py", "test_bench.py", "test_cpu_training.py",
                  "test_pipeline.py", "test_generator.py", "test_weights.py", "test_learning.py",
                  "test_masks.py", "test_app_load.py", "test_app.py", "test_photos.py"]


def _unit(path):
    name = os.path.basename(path)
    return _GROUPS.get(name, name)


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
