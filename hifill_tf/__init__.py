"""hifill_tf: HiFill (Contextual Residual Aggregation) in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
