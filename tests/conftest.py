import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests import helper modules (e.g. harness.py) that sit beside them.
sys.path.insert(0, os.path.dirname(__file__))
