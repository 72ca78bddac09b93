"""SavedModel export for TensorFlow Serving (hifill_tf/export/saved_model.py).

`export_saved_model` is imported on first use, so `hifill_tf.export.output_dir` (no TensorFlow)
can be imported by export.py before TensorFlow loads.
"""


def __getattr__(name):
    if name == "export_saved_model":
        from hifill_tf.export.saved_model import export_saved_model

        return export_saved_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
