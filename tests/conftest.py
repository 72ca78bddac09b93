import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# In-process tests run with oneDNN off, the reference numerics of the numpy comparisons;
# training runs with it on (hifill_tf/training/cpu.py, tests/test_cpu_training.py).
# Must be set before TensorFlow is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Tests import helper modules (e.g. harness.py) that sit beside them.
sys.path.insert(0, os.path.dirname(__file__))
