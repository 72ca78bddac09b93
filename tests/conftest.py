import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# In-process tests run with oneDNN off, the reference numerics of the numpy comparisons;
# training runs with it on (hifill_tf/training/cpu.py, tests/test_cpu_training.py).
# Must be set before TensorFlow is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Tests import helper modules (e.g. harness.py) that sit beside them.
sys.path.insert(0, os.path.dirname(__file__))


# pytest-xdist (`make test`: -n 2 --dist loadgroup): each test file runs on one worker, so its
# module fixtures (a traced model, a trained GAN step) are built once; files that share a
# cached model (test_infer.random_saved_model) form one group.
_GROUPS = {"test_mask_rule.py": "test_infer.py"}


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        name = os.path.basename(str(item.fspath))
        item.add_marker(pytest.mark.xdist_group(_GROUPS.get(name, name)))
