"""Whether an export may be written to a directory; free of TensorFlow, so export.py refuses a
non-empty --output_dir in a fraction of a second instead of after loading TensorFlow."""

import os


def check_output_dir(output_dir, overwrite=False):
    """Raise FileExistsError unless ``output_dir`` may be written.

    A missing or empty directory is fine; a non-empty one only with
    ``overwrite``, and only if it holds a SavedModel, so a mistyped path can
    never wipe an unrelated folder.
    """
    output_dir = os.fspath(output_dir)
    if not os.path.exists(output_dir):
        return
    if not os.path.isdir(output_dir):
        raise FileExistsError(f"{output_dir}: exists and is not a directory")
    if not os.listdir(output_dir):
        return
    if not overwrite:
        raise FileExistsError(f"{output_dir}: directory exists and is not empty "
                              "(pass overwrite=True / --overwrite to replace it)")
    if not os.path.exists(os.path.join(output_dir, "saved_model.pb")):
        raise FileExistsError(f"{output_dir}: not a SavedModel (no saved_model.pb); "
                              "refusing to replace it even with overwrite")
