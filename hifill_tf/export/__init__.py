"""SavedModel export for TensorFlow Serving: `saved_model.py` (needs TensorFlow) and
`output_dir.py` (none, so export.py checks its --output_dir before TensorFlow loads)."""
