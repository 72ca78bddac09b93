"""2x up-sampling that traces with unknown height and width.

``keras.layers.UpSampling2D`` branches on static shapes and fails inside a
``tf.function`` whose spatial size is unknown (one SavedModel signature must
serve every photo size), so the generator uses this layer instead.
"""

import keras
import tensorflow as tf

INTERPOLATIONS = ("nearest", "bilinear")


@keras.saving.register_keras_serializable(package="hifill")
class Upsample2x(keras.layers.Layer):
    """Up-sample [B, H, W, C] to [B, 2H, 2W, C].

    Args:
        interpolation: ``"nearest"`` (pixel repetition, as DeepFill's
            gen_deconv) or ``"bilinear"`` (half-pixel centres, §4.1).
    """

    def __init__(self, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}")
        self.interpolation = interpolation

    def call(self, inputs):
        shape = tf.shape(inputs)
        if self.interpolation == "bilinear":
            return tf.image.resize(inputs, [2 * shape[1], 2 * shape[2]], method="bilinear")
        x = tf.reshape(inputs, [shape[0], shape[1], 1, shape[2], 1, shape[3]])
        x = tf.tile(x, [1, 1, 2, 1, 2, 1])
        return tf.reshape(x, [shape[0], 2 * shape[1], 2 * shape[2], inputs.shape[-1]])

    def compute_output_shape(self, input_shape):
        def twice(d):
            return None if d is None else 2 * d
        return (input_shape[0], twice(input_shape[1]), twice(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(interpolation=self.interpolation)
        return config
