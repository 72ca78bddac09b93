"""The WGAN-GP critic (appendix "Discriminator")."""

import keras
from keras import ops

from hifill_tf.models.generator import parse_spec

DISCRIMINATOR_SPEC = "K3S2C64 - K3S2C128 - K3S2C256 - K3S2C256 - K3S2C256 - K3S2C256"


@keras.saving.register_keras_serializable(package="hifill")
class Discriminator(keras.Model):
    """Critic: six 3x3 stride-2 convolutions, then a dense layer to one score.

    The score is unbounded (a Wasserstein critic, Eq. 9-10), so there is no
    sigmoid and no normalisation layer (WGAN-GP penalises per-sample
    gradients, which batch statistics would couple). Leaky ReLU as in the
    DeepFill critics the paper builds on. The dense layer fixes the input
    size at the first call (512x512 in the paper).

    Args:
        negative_slope: slope of the leaky ReLU.
    """

    def __init__(self, negative_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope
        self.convs = [
            keras.layers.Conv2D(padding="same", name=f"conv{i}", **args)
            for i, (_, args) in enumerate(parse_spec(DISCRIMINATOR_SPEC))
        ]
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(1, name="score")

    def call(self, images, training=None):
        x = images
        for conv in self.convs:
            x = conv(x)
            # max(x, a*x), not the LeakyRelu op: grappler's remapper fuses
            # Conv+BiasAdd+LeakyRelu and then crashes (double free) on the
            # second-order gradient of the WGAN-GP penalty (TF 2.21, CPU).
            x = ops.maximum(x, self.negative_slope * x)
        return ops.cast(self.dense(self.flatten(x)), "float32")

    def get_config(self):
        config = super().get_config()
        config.update(negative_slope=self.negative_slope)
        return config
