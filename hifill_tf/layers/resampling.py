"""2x up-sampling that traces with unknown height and width.

``keras.layers.UpSampling2D`` and ``keras.ops.image.resize`` read static shapes and fail
inside a ``tf.function`` whose spatial size is unknown (one SavedModel signature must
serve every photo size), so the generator uses this layer instead.
"""

import keras
from keras import ops

INTERPOLATIONS = ("nearest", "bilinear")


@keras.saving.register_keras_serializable(package="hifill")
class Upsample2x(keras.layers.Layer):
    """Up-sample [B, H, W, C] to [B, 2H, 2W, C].

    Args:
        interpolation: ``"nearest"`` (pixel repetition, as DeepFill's
            gen_deconv) or ``"bilinear"`` (half-pixel centres, §4.1).

    Bilinear runs ``tf.image.resize`` on TensorFlow (it takes the size as a tensor) and
    ``keras.ops.image.resize`` elsewhere (static shapes); both have half-pixel centres and
    edges clamped, so they agree.
    """

    def __init__(self, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}")
        self.interpolation = interpolation

    def call(self, inputs):
        batch, height, width, channels = ops.shape(inputs)
        if self.interpolation == "bilinear":
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                return tf.image.resize(inputs, [2 * height, 2 * width], method="bilinear")
            return ops.image.resize(inputs, (2 * height, 2 * width), interpolation="bilinear",
                                    data_format="channels_last")
        x = ops.reshape(inputs, (batch, height, 1, width, 1, channels))
        x = ops.tile(x, (1, 1, 2, 1, 2, 1))
        return ops.reshape(x, (batch, 2 * height, 2 * width, channels))

    def compute_output_shape(self, input_shape):
        def twice(d):
            return None if d is None else 2 * d
        return (input_shape[0], twice(input_shape[1]), twice(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(interpolation=self.interpolation)
        return config
