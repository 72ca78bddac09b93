"""Training: the GAN of Algorithm 1 and its losses.

CPU note: TF 2.21's oneDNN kernel for Conv2DBackpropFilter corrupts the heap
("double free or corruption" in ~MklConvBwdFilterPrimitive) on the
generator's backward pass at 128 px and above. Training processes therefore
set TF_ENABLE_ONEDNN_OPTS=0 before importing TensorFlow (train.py does), or
compile the step with XLA, which does not use those kernels. Inference is
unaffected.
"""

import os


def disable_onednn_for_training():
    """Turn oneDNN off; effective only before TensorFlow is first imported."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
