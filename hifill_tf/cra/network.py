"""Step 2 of CRA: the one generator call, on pixel values in [0, 255]."""

import tensorflow as tf


def to_network(pixels):
    """Pixel values in [0, 255] -> the generator's range [-1, 1] (its outputs are tanh)."""
    return pixels / 127.5 - 1.0


def from_network(values):
    """The generator's [-1, 1] -> pixel values in [0, 255] (float, not rounded)."""
    return (values + 1.0) * 127.5


def run_network(generator, low, low_hole):
    """The generator on float pixels [B, h, w, 3] in [0, 255] and a hole [B, h, w, 1].

    Returns (the inpainted image in [0, 255], the attention scores [B, source, target]): the
    one network call of CRA, the bicubic baseline and the benchmarks.
    """
    outputs = generator(to_network(low), tf.cast(low_hole, tf.float32))
    return from_network(outputs["inpainted"]), outputs["scores"]
