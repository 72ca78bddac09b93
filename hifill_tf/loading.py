"""The one place that finds and loads a model, for every front end, trainer, evaluator and server.

A model comes from one of four sources:

- the bundled weights (``hifill_tf/weights/hifill_default.npz``), when nothing is given;
- a generator weights file (``.npz``, ``hifill_tf.weights.save_generator_weights``);
- a training folder (``train.py --model_dir``): its latest TensorFlow checkpoint, else its
  ``state/`` (which the JAX trainer writes);
- a SavedModel folder written by export.py (inference only: `load_inpainter`).

`find_model` checks cheaply, before TensorFlow loads, that the source exists; every failure is
a `ModelError` whose message names the path and the flag that supplies a model. An inpainter
(`load_inpainter`) is one interface, ``inpainter(image, mask, name) -> image``, over a
generator run through CRA and a SavedModel's serving signature. Nothing here imports
TensorFlow at module level: the JAX trainer loads weights through it too.
"""

import importlib.util
import os
from typing import NamedTuple

import numpy as np

from hifill_tf import weights
from hifill_tf.io import InputError, hole_mask
from hifill_tf.training import state
from hifill_tf.training.config import CHECKPOINT_DIR, DEFAULTS, STATE_DIR, read_config

SAVED_MODEL_SIGNATURE = "serving_default"


class ModelError(RuntimeError):
    """No usable model: the message says what is missing and which flag supplies one."""


class Source(NamedTuple):
    """Where a generator's weights came from: its kind and the file or folder read."""

    kind: str  # "bundled weights", "weights", "checkpoint" or "state"
    path: str

    def __str__(self):
        return f"{self.kind} {self.path}"


def find_model(weights_path=None, saved_model=None, checkpoint=None):
    """Checks, cheaply, that the model asked for exists; returns its path.

    At most one source may be given (the front ends check their flags first); none means the
    bundled weights. Raises ModelError when the file or folder is missing or is not a model.
    """
    if saved_model:
        if not os.path.isfile(os.path.join(saved_model, "saved_model.pb")):
            raise ModelError(f"{saved_model}: not a SavedModel directory (no saved_model.pb)")
        return saved_model
    if checkpoint:
        if not _is_training_folder(checkpoint):
            raise ModelError(f"{checkpoint}: not a training folder (no {CHECKPOINT_DIR}/ "
                             f"checkpoint and no {STATE_DIR}/ in it)")
        return checkpoint
    if weights_path:
        if not os.path.isfile(weights_path):
            raise ModelError(f"{weights_path}: no such weights file")
        return weights_path
    if not os.path.isfile(weights.DEFAULT_WEIGHTS):
        raise ModelError(
            f"the default weights are not bundled ({weights.DEFAULT_WEIGHTS} is missing). Pass "
            "--weights FILE.npz (a generator saved with hifill_tf.weights.save_generator_weights), "
            "--checkpoint MODEL_DIR (a train.py --model_dir) or --saved_model DIR (export.py)")
    return weights.DEFAULT_WEIGHTS


def _has_checkpoint(path):
    return os.path.isfile(os.path.join(path, CHECKPOINT_DIR, "checkpoint"))


def _is_training_folder(path):
    return _has_checkpoint(path) or state.has_state(os.path.join(path, STATE_DIR))


def load_weights_into(generator, source):
    """Loads ``source`` (a weights .npz file or a training folder) into ``generator`` by name.

    A training folder gives its latest TensorFlow checkpoint, or its ``state/`` where it has
    none or TensorFlow is not installed (the JAX trainer's machine). Returns its `Source`:
    "weights", "checkpoint" or "state", and the file or folder read.
    Raises ModelError when the source is missing or does not match the generator's layers.
    """
    from hifill_tf.training.config import TrainingError

    try:
        if source.endswith(".npz"):
            if not os.path.isfile(source):
                raise ModelError(f"{source}: no such weights file")
            weights.load_generator_weights(generator, source)
            return Source("weights", source)
        latest = None
        if _has_checkpoint(source) and importlib.util.find_spec("tensorflow"):
            from hifill_tf.training import checkpoints  # TensorFlow, only for its checkpoints

            latest = checkpoints.latest_checkpoint(source)
        if latest is not None:
            checkpoints.restore_generator(latest, generator)
            return Source("checkpoint", latest)
        directory = os.path.join(source, STATE_DIR)
        if state.has_state(directory):
            generator.build()
            state.load_weights(os.path.join(directory, "generator.npz"), generator)
            return Source("state", directory)
    except (TrainingError, state.StateError, ValueError, KeyError, OSError) as error:
        raise ModelError(f"{source}: {error}") from error
    raise ModelError(f"{source}: not a weights .npz file and no {CHECKPOINT_DIR}/ checkpoint or "
                     f"{STATE_DIR}/ folder in it")


def _training_config(model_dir):
    """The options a training folder was run with: config.json, else the state's meta."""
    config = read_config(model_dir)
    if config is None and state.has_state(os.path.join(model_dir, STATE_DIR)):
        config = state.read_meta(os.path.join(model_dir, STATE_DIR)).get("config")
    return {**DEFAULTS, **(config or {})}


def generator_from(source=None):
    """(Generator with its weights, its `Source`) for the bundled weights (None), a weights
    .npz file or a training folder. Raises ModelError."""
    path = find_model(weights_path=source if source and source.endswith(".npz") else None,
                      checkpoint=source if source and not source.endswith(".npz") else None)
    if path.endswith(".npz"):
        try:
            generator = weights.load_generator(path)
        except (OSError, ValueError, KeyError) as error:
            raise ModelError(f"{path}: not a usable generator weights file: {error}") from error
        return generator, Source("bundled weights" if source is None else "weights", path)
    from hifill_tf.models.generator import Generator

    config = _training_config(path)
    generator = Generator(coarse_gate=config["coarse_gate"], refine_gate=config["refine_gate"],
                          network_pixels=config["image_size"] ** 2)
    return generator, load_weights_into(generator, path)


class GeneratorInpainter:
    """A Keras generator run through `hifill_tf.api.inpaint` (CRA at full resolution)."""

    def __init__(self, generator, max_pixels, description, feather=0):
        self.generator = generator
        self.max_pixels = max_pixels
        self.description = description
        self.feather = feather

    def __call__(self, image, mask, name=None):
        from hifill_tf import api

        return api.inpaint(image, mask, self.generator, self.max_pixels, feather=self.feather,
                           name=name)


class SavedModelInpainter:
    """The serving signature of a SavedModel from export.py.

    The signature takes uint8 image [1, H, W, 3] and uint8 mask [1, H, W, 1] (io.hole_mask rule)
    and returns a dict with uint8 ``inpainted`` [1, H, W, 3]. Inputs are told apart by their
    channel count, so the argument names do not matter. Its network budget and paste are fixed
    at export: no generator, no ``max_pixels``.
    """

    generator = None
    max_pixels = None

    def __init__(self, path):
        import tensorflow as tf

        self.path = os.fspath(path)
        self.description = f"SavedModel {self.path}"
        try:
            self._model = tf.saved_model.load(self.path)  # keep a reference: it owns the variables
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise ModelError(f"{self.path}: cannot load the SavedModel: {e}") from e
        signatures = getattr(self._model, "signatures", {})
        if SAVED_MODEL_SIGNATURE not in signatures:
            raise ModelError(f"{self.path}: SavedModel has no {SAVED_MODEL_SIGNATURE!r} signature "
                             f"(has: {', '.join(signatures) or 'none'}); export it with export.py")
        self._function = signatures[SAVED_MODEL_SIGNATURE]
        specs = self._function.structured_input_signature[1]
        by_channels = {spec.shape[-1] if spec.shape.rank else None: key
                       for key, spec in specs.items()}
        self._image_key = by_channels.get(3, "image")
        self._mask_key = by_channels.get(1, "mask")
        if {self._image_key, self._mask_key} != set(specs):
            raise ModelError(f"{self.path}: {SAVED_MODEL_SIGNATURE} takes {sorted(specs)}; "
                             "expected an image [1, H, W, 3] and a mask [1, H, W, 1]")

    def __call__(self, image, mask, name=None):
        import tensorflow as tf

        from hifill_tf.api import MIN_SIDE

        if min(image.shape[:2]) < MIN_SIDE:
            raise InputError(f"{name or 'image'}: image is {image.shape[1]}x{image.shape[0]}; both "
                             f"sides must be at least {MIN_SIDE} pixels")
        mask = np.where(hole_mask(mask, name), np.uint8(255), np.uint8(0))
        outputs = self._function(**{
            self._image_key: tf.constant(image[None]),
            self._mask_key: tf.constant(mask[None, :, :, None]),
        })
        result = outputs["inpainted"] if "inpainted" in outputs else next(iter(outputs.values()))
        return result[0].numpy()


def load_inpainter(weights_path=None, saved_model=None, max_pixels=None, feather=0,
                   checkpoint=None):
    """The model asked for (see `find_model`), ready to call; ModelError if it is unusable."""
    path = find_model(weights_path, saved_model, checkpoint)
    if saved_model:
        return SavedModelInpainter(path)
    if weights_path or checkpoint:
        generator, source = generator_from(path)
        description = str(source)
    else:
        from hifill_tf import api

        # The bundled weights: the process's one copy (hifill_tf.inpaint's), traced once.
        try:
            generator = api.default_generator()
        except (OSError, ValueError, KeyError) as error:
            raise ModelError(f"{path}: not a usable generator weights file: {error}") from error
        description = str(Source("bundled weights", path))
    # max_pixels None: api.inpaint uses the budget the generator was trained for.
    return GeneratorInpainter(generator, max_pixels, description, feather)
