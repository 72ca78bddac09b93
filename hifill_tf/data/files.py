"""The training photos of a folder: one rule for the TF pipeline, the NumPy feed and validation.

No TensorFlow: the JAX trainer and its feed list photos on a machine without it.
"""

import os

# Fewer than the photos inference reads (``io.IMAGE_EXTENSIONS`` adds TIFF and BMP): the TF
# pipeline decodes with ``tf.io.decode_image``, which reads no TIFF.
TRAINING_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def list_image_files(directory):
    """Image files (jpg, jpeg, png, webp; any case) under ``directory``, recursively, sorted."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"image directory {directory!r} does not exist")
    paths = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(directory, followlinks=True)
        for name in names
        if name.lower().endswith(TRAINING_EXTENSIONS)
    )
    if not paths:
        raise ValueError(
            f"image directory {directory!r} holds no images with extensions {TRAINING_EXTENSIONS}"
        )
    return paths
