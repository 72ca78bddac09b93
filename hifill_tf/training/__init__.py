"""Training: the GAN of Algorithm 1 and its losses.

CPU note: training runs TF's oneDNN kernels (``cpu.py``: about 2.5x faster than the Eigen ones
at 256x256 on 2 cores, ``bench/train_bench.py``). An earlier session saw a heap corruption in
oneDNN's Conv2DBackpropFilter and turned oneDNN off; it did not reproduce on TF 2.21 over
hundreds of steps at 128 and 256 px (``cpu.py`` says how it was checked). If it comes back,
``TF_ENABLE_ONEDNN_OPTS=0`` turns oneDNN off again.
"""
