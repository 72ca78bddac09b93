import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TF 2.21's oneDNN Conv2DBackpropFilter corrupts the heap on the generator's
# backward pass at >= 128 px (see hifill_tf/training/__init__.py); train.py
# turns oneDNN off the same way. Must be set before TensorFlow is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# Tests import helper modules (e.g. harness.py) that sit beside them.
sys.path.insert(0, os.path.dirname(__file__))
