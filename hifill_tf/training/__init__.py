"""Training: the GAN of Algorithm 1 and its losses.

CPU note: training runs TF's oneDNN kernels (``cpu.py``: about 2.5x faster than the Eigen ones
at 256x256 on 2 cores, ``bench/train_bench.py``). ``cpu.py`` says why they are safe to use (the
one oneDNN crash on record does not reproduce); ``TF_ENABLE_ONEDNN_OPTS=0`` turns them off.
"""
