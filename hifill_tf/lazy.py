"""Names of a package imported on first use (PEP 562), so that a package's light parts start
without TensorFlow: ``hifill_tf`` and ``hifill_tf.data`` use it."""

import importlib
import sys


def lazy_names(package, names):
    """PEP 562 ``__getattr__`` and ``__dir__`` for ``package`` whose ``names`` ({name: module})
    are imported on first use."""
    namespace = vars(sys.modules[package])  # the package is in sys.modules while it initialises

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(list(namespace) + list(names))

    return __getattr__, __dir__
