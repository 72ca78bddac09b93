"""Inpaint many photos with Apache Beam: `python -m hifill_tf.beam` (needs `hifill_tf[beam]`).

`pipeline.inpaint_photos` builds the pipeline, `model_handler.HiFillModelHandler` is its
RunInference model handler, `files` writes outputs atomically on any Beam filesystem.
"""
