"""Light-Weight Gated Convolutions (§3.4 of the paper, Eq. 5-8, Table 1)."""

import math

import keras
from keras import ops

GATE_KINDS = ("full", "ds", "pw", "sc")


@keras.saving.register_keras_serializable(package="hifill")
class GatedConv2D(keras.layers.Layer):
    """Gated convolution ``O = sigmoid(G) * ELU(F)`` with a light-weight gate.

    ``F = conv(W_f, I)`` is an ordinary convolution. The gate branch ``G`` is
    chosen by ``gate``:

    - ``"full"``: a convolution like ``F`` (original gated convolution, Eq. 5);
    - ``"ds"``: depth-wise convolution then 1x1 convolution (LWGC^ds, Eq. 6);
    - ``"pw"``: a 1x1 convolution (LWGC^pw, Eq. 7);
    - ``"sc"``: a convolution to one channel, broadcast over all features
      (LWGC^sc, Eq. 8).

    Args:
        filters: number of output channels.
        kernel_size: square kernel size of the feature branch.
        strides: stride of both branches. At stride s the 1x1 gate of
            ``"pw"`` reads the pixel the feature kernel is centred on (with
            TF's "same" padding that is pixel ``s i + offset``, not ``s i``),
            so gate and feature look at the same place.
        dilation_rate: dilation of the feature (and spatial gate) kernels.
        gate: one of ``"full"``, ``"ds"``, ``"pw"``, ``"sc"``.
    """

    def __init__(self, filters, kernel_size=3, strides=1, dilation_rate=1, gate="pw", **kwargs):
        super().__init__(**kwargs)
        if gate not in GATE_KINDS:
            raise ValueError(f"gate must be one of {GATE_KINDS}; got {gate!r}")
        if strides > 1 and dilation_rate > 1:
            raise ValueError(
                f"strides and dilation_rate cannot both exceed 1; got strides={strides}, "
                f"dilation_rate={dilation_rate}"
            )
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
        self.gate = gate
        conv = dict(padding="same", strides=strides, dilation_rate=dilation_rate)
        # With Glorot init every sigmoid(0.5-mean) * ELU layer shrinks the signal
        # and the 28-layer coarse network starts at ~1e-11 (gradients below
        # Adam's epsilon). Fan-in scale 6 (~2 for ELU / 0.27 for E[gate^2],
        # rounded down so outputs do not start clipped) keeps it near unit scale.
        feature_init = keras.initializers.VarianceScaling(6.0, "fan_in", "truncated_normal")
        self.feature_conv = keras.layers.Conv2D(filters, kernel_size, name="feature",
                                                kernel_initializer=feature_init, **conv)
        if gate == "full":
            self.gate_layers = [keras.layers.Conv2D(filters, kernel_size, name="gate", **conv)]
        elif gate == "sc":
            self.gate_layers = [keras.layers.Conv2D(1, kernel_size, name="gate", **conv)]
        elif gate == "pw":
            # Stride 1 here: call() first picks the pixels the feature kernel is centred on.
            self.gate_layers = [keras.layers.Conv2D(filters, 1, padding="same", name="gate")]
        else:  # "ds"
            self.gate_layers = [
                keras.layers.DepthwiseConv2D(kernel_size, name="gate_depthwise", **conv),
                keras.layers.Conv2D(filters, 1, padding="same", name="gate_pointwise"),
            ]

    def build(self, input_shape):
        self.feature_conv.build(input_shape)
        shape = input_shape
        for layer in self.gate_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        native = not training
        features = ops.elu(_conv(self.feature_conv, inputs, native))
        gate = self._feature_centres(inputs) if self.gate == "pw" and self.strides > 1 else inputs
        for layer in self.gate_layers:
            gate = _conv(layer, gate, native)
        return ops.sigmoid(gate) * features

    def _feature_centres(self, inputs):
        """The input pixels the strided feature kernel is centred on.

        "same" padding puts ``pad = max((ceil(n/s) - 1) s + k - n, 0)`` pixels
        around an axis of length n, ``pad // 2`` of them before, so output i is
        centred on input ``s i + (k - 1) // 2 - pad // 2``: 2i + 1 for k = 3 or
        5, s = 2 and even n; a 1x1 stride-s conv would read 2i instead.
        """
        k = self.kernel_size  # strides > 1 implies dilation 1
        s = self.strides
        shape = ops.shape(inputs)

        def offset(n):
            pad = ((n + s - 1) // s - 1) * s + k - n
            # Python's max on static sizes (jax.jit sees a constant); a tensor only for
            # TensorFlow's unknown sizes.
            pad = max(pad, 0) if isinstance(pad, int) else ops.maximum(pad, 0)
            return (k - 1) // 2 - pad // 2

        return inputs[:, offset(shape[1])::s, offset(shape[2])::s]

    def compute_output_shape(self, input_shape):
        return self.feature_conv.compute_output_shape(input_shape)

    def gate_weight_count(self):
        """Number of gate-branch kernel weights (biases excluded), as in Table 1."""
        return sum(math.prod(layer.kernel.shape) for layer in self.gate_layers)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation_rate=self.dilation_rate,
            gate=self.gate,
        )
        return config


def _conv(layer, inputs, native):
    """``layer(inputs)``; with ``native`` on TensorFlow, a dilated Conv2D runs as one dilated op.

    For a dilated kernel ``tf.nn.convolution`` builds space-to-batch around a plain conv (the
    only form with a gradient on a CPU without oneDNN), about 45 ops per conv on unknown sizes:
    the generator's inference graph has 4251 ops against 1851 and traces in 2.1 s against
    0.9 s, with the same outputs. Inference (``training`` false) takes the dilated op, which
    CPUs and GPUs both run; training keeps the differentiable form. This fast path is
    TensorFlow only: other backends compile a dilated conv as one op anyway and call the layer.
    """
    if (not native or type(layer) is not keras.layers.Conv2D
            or tuple(layer.dilation_rate) == (1, 1) or keras.backend.backend() != "tensorflow"):
        return layer(inputs)
    import tensorflow as tf

    outputs = tf.nn.conv2d(inputs, layer.kernel, strides=1, padding=layer.padding.upper(),
                           dilations=layer.dilation_rate)
    return tf.nn.bias_add(outputs, layer.bias) if layer.use_bias else outputs


@keras.saving.register_keras_serializable(package="hifill")
class ClippedConv2D(keras.layers.Layer):
    """Output layer: a plain convolution to RGB, clipped to [-1, 1].

    The generator's images live in [-1, 1] (§3.5 "Training Procedure"); the
    appendix ends both networks with ``K3S1C3 - clip``.

    Args:
        filters: output channels (3 for an RGB image).
        kernel_size: square kernel size.
    """

    def __init__(self, filters=3, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.conv = keras.layers.Conv2D(filters, kernel_size, padding="same", name="conv")

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, inputs):
        return ops.clip(self.conv(inputs), -1.0, 1.0)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size)
        return config
