"""Training: the GAN of Algorithm 1 and its losses.

CPU note: TF 2.21's oneDNN kernel for Conv2DBackpropFilter corrupts the heap
("double free or corruption" in ~MklConvBwdFilterPrimitive) on the
generator's backward pass at 128 px and above. Training processes therefore
set TF_ENABLE_ONEDNN_OPTS=0 before TensorFlow is imported (train.py does, as
its first statement; importing hifill_tf imports TensorFlow), and
``trainer.train`` warns when it is not set. Inference is unaffected.
"""
