"""SavedModel export for TensorFlow Serving (hifill_tf/export/saved_model.py)."""

from hifill_tf.export.saved_model import export_saved_model  # noqa: F401
