"""TensorFlow checkpoints of training, read and written by variable name.

``tf.train.Checkpoint`` (a ``.keras`` file would not restore the optimizers of a model with a
custom ``compile``) holding the generator's and the critic's variables under their names
(``generator/<layer>.<variable>``), both optimizers and the random state: a checkpoint of
another architecture fails to load by name instead of loading into the wrong layers.
"""

import os

import tensorflow as tf

from hifill_tf.training import state
from hifill_tf.training.config import CHECKPOINT_DIR, TrainingError


def _by_name(model):
    """A checkpoint node holding ``model``'s variables under their paths.

    Keras 3 models keep layers in Python lists that ``tf.train.Checkpoint``
    does not follow, and the optimizers list variables by position; naming
    each variable makes saving and loading match layer names, not order.
    """
    return tf.train.Checkpoint(**{_variable_key(v): v for v in model.weights})


def _variable_key(variable):
    # Drop the model's automatic name ("generator", "generator_1", ...).
    return variable.path.split("/", 1)[1].replace("/", ".")


def checkpoint_for(gan):
    objects = dict(generator=_by_name(gan.generator), discriminator=_by_name(gan.discriminator),
                   g_optimizer=gan.g_optimizer, seed_state=gan.seed_generator.state)
    if gan.d_optimizer is not None:
        objects["d_optimizer"] = gan.d_optimizer
    return tf.train.Checkpoint(**objects)


def check_names(path, node, model):
    """Raise TrainingError unless checkpoint ``path`` holds exactly ``model``'s variables
    under ``node`` (by name, with the same shapes)."""
    prefix, suffix = node + "/", "/.ATTRIBUTES/VARIABLE_VALUE"
    # Checkpoint keys escape "." as ".." (and "/" as "./") in object names.
    saved = {name[len(prefix):-len(suffix)].replace("..", "."): tuple(shape)
             for name, shape in tf.train.list_variables(path)
             if name.startswith(prefix) and name.endswith(suffix)}
    ours = {_variable_key(v): tuple(v.shape) for v in model.weights}
    state.check_matching(f"checkpoint {path}: its {node}", saved, ours, TrainingError)


def restore_checkpoint(gan, path, checkpoint=None):
    """Load both networks (by name), the optimizers and the random state from ``path``."""
    check_names(path, "generator", gan.generator)
    check_names(path, "discriminator", gan.discriminator)
    (checkpoint or checkpoint_for(gan)).restore(path).assert_existing_objects_matched()


def latest_checkpoint(model_dir):
    """The newest checkpoint of a training folder, or None."""
    return tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))


def restore_generator(path, generator):
    """Load the generator of checkpoint ``path`` into ``generator`` by name; returns it."""
    generator.build()
    check_names(path, "generator", generator)
    tf.train.Checkpoint(generator=_by_name(generator)).read(path).expect_partial()
    return generator
