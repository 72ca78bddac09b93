"""CPU runtime settings of training: oneDNN on.

Call :func:`configure` **before TensorFlow is imported** (importing ``hifill_tf``
imports it): TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it loads.
``train.py`` does so as its first statement::

    from hifill_tf.training import cpu  # imports no TensorFlow
    cpu.configure()

Why oneDNN on: a reconstruction step at 256x256, batch 2, runs about 2.5x faster
with TF 2.21's oneDNN kernels than with the Eigen ones (``bench/train_bench.py``
measures both side by side); XLA (``jit_compile``) is slower than either.

Safety: the one oneDNN crash on record in this project, a "double free or
corruption" in ``~MklConvBwdFilterPrimitive`` (Conv2DBackpropFilter), does not
reproduce (TF 2.21.0, 2 AVX2 cores): 500 reconstruction steps at 256x256 batch 2 and
300 at 128x128 batch 8 on fresh random batches, 300 steps of ``train.py`` on photos,
and the GAN step (see ``bench/train_bench.py --check``); losses stay
finite and one step's gradients match the oneDNN-off ones
(``tests/test_cpu_training.py``). TF 2.21 does have a known oneDNN heap
corruption, in BatchMatMul with broadcast operands of different rank
(tensorflow/tensorflow#117700, fixed by PR #120199); the model does not use that
form (its matmuls are rank-3 on both sides). If a crash comes back, set
``TF_ENABLE_ONEDNN_OPTS=0`` in the environment: :func:`configure` never
overrides a value that is already set.
"""

import os
import sys
import warnings

ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"

# What training processes run with unless the environment says otherwise.
TRAINING_ENV = {ONEDNN_VAR: "1"}
# oneDNN off (TF's Eigen kernels): the reference configuration of bench/train_bench.py.
ONEDNN_OFF_ENV = {ONEDNN_VAR: "0"}


def configure(environ=None):
    """Put the training defaults into ``environ`` (``os.environ``) where unset.

    Returns the settings in effect. Warns if TensorFlow is already imported
    with a different oneDNN setting, since the change would then do nothing.
    """
    environ = os.environ if environ is None else environ
    for name, value in TRAINING_ENV.items():
        environ.setdefault(name, value)
    if environ is os.environ and "tensorflow" in sys.modules:
        wanted = _truthy(environ[ONEDNN_VAR])
        if onednn_enabled() != wanted:
            warnings.warn(f"hifill_tf.training.cpu.configure() came after TensorFlow was imported: "
                          f"{ONEDNN_VAR}={environ[ONEDNN_VAR]} has no effect in this process",
                          RuntimeWarning, stacklevel=2)
    return {name: environ[name] for name in TRAINING_ENV}


def onednn_enabled():
    """Whether this process's TensorFlow uses its oneDNN kernels (imports TensorFlow)."""
    from tensorflow.python.util import _pywrap_util_port  # no public API for this

    return bool(_pywrap_util_port.IsMklEnabled())


def _truthy(value):
    return str(value).strip().lower() not in ("0", "false", "off", "no")
