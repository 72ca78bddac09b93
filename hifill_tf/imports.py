"""Keras's optional imports, made unimportable in a process that only runs the model.

Used by infer.py, export.py and the benchmark's TensorFlow workers, before TensorFlow loads.
"""

import sys

# Keras 3 imports these at start-up whenever they are installed (data adapters, plots, notebook
# display, image utilities), though running the model uses none of them. In a venv with the
# test and app extras they cost 1-2 s of `import tensorflow` and 164 MB of RSS (817 against
# 653 MB after the import; infer.py on a 2048x1365 photo peaked at 1.05 against 0.95 GB).
UNUSED_BY_INFERENCE = ("pandas", "matplotlib", "IPython", "cv2", "h5py")


def skip_unused_imports():
    """Make ``UNUSED_BY_INFERENCE`` unimportable in this process (Keras then goes without them).

    Only for a process that runs nothing but the model, called before TensorFlow is imported;
    a module already imported is left alone.
    """
    for name in UNUSED_BY_INFERENCE:
        sys.modules.setdefault(name, None)
