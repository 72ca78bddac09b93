"""Compact resumable training state by variable name, read and written by both trainers.

A state folder holds four ``.npz`` files, each under 16 MiB (the GPU machine brings back at
most 16 MiB a file), keyed by the variable's path without the model's automatic name (as
``hifill_tf.weights``):

- ``generator.npz``, ``critic.npz``: the weights in float32, plus ``__meta__`` (JSON: step,
  images seen, the JAX trainer's random key, the configuration) in ``generator.npz``;
- ``g_optimizer.npz``, ``d_optimizer.npz``: Adam's ``m/<path>`` and ``v/<path>`` in bfloat16
  (stored as uint16 bits) and ``__iterations__``.

bfloat16 keeps the moments' range (second moments reach 1e-12) at a third of float32's size;
a resumed run continues from moments rounded to 3 significant digits, which Adam's running
averages forget within a few hundred steps. No TensorFlow: the JAX trainer runs without it.

``compact=True`` writes what the repository keeps between GPU runs (about 10 MB instead of
40): both networks in float16 and no optimizer files. A run resumed from it starts both Adams
afresh (their own step count at 0, so bias correction warms them up again); the meta's ``step``
and ``images_seen`` carry the run's count on.
"""

import json
import os

import ml_dtypes
import numpy as np

from hifill_tf.io import atomic_file

FILES = ("generator.npz", "critic.npz", "g_optimizer.npz", "d_optimizer.npz")
META_KEY = "__meta__"
ITERATIONS_KEY = "__iterations__"


class StateError(RuntimeError):
    """A state folder does not match the model: the message names the file and the variables."""


def variable_key(variable):
    # Drop the model's automatic name ("generator", "generator_1", ...).
    return variable.path.split("/", 1)[1]


def has_state(directory):
    return os.path.exists(os.path.join(directory, "generator.npz"))


def _save(path, arrays):
    with atomic_file(path) as f:
        np.savez(f, **arrays)


def _bits(value):
    return np.asarray(value, np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)


def _moments(optimizer, model):
    """{"m/<path>": variable, "v/<path>": variable} of a built Keras Adam over ``model``."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's Adam
    out = {}
    for variable in model.trainable_variables:
        index = optimizer._get_variable_index(variable)
        out["m/" + variable_key(variable)] = optimizer._momentums[index]
        out["v/" + variable_key(variable)] = optimizer._velocities[index]
    return out


def save_state(directory, generator, critic, g_optimizer, d_optimizer=None, meta=None,
               compact=False):
    """Write the files of ``directory`` (each atomically) from the models' variables."""
    os.makedirs(directory, exist_ok=True)
    dtype = np.float16 if compact else np.float32
    weights = {variable_key(v): np.asarray(v.numpy(), dtype) for v in generator.weights}
    weights[META_KEY] = np.array(json.dumps(meta or {}))
    _save(os.path.join(directory, "generator.npz"), weights)
    _save(os.path.join(directory, "critic.npz"),
          {variable_key(v): np.asarray(v.numpy(), dtype) for v in critic.weights})
    for name, optimizer, model in (("g_optimizer.npz", g_optimizer, generator),
                                   ("d_optimizer.npz", d_optimizer, critic)):
        path = os.path.join(directory, name)
        if compact or optimizer is None or not optimizer.built:
            if os.path.exists(path):
                os.remove(path)  # a state without a critic optimizer says so by its absence
            continue
        arrays = {k: _bits(v.numpy()) for k, v in _moments(optimizer, model).items()}
        arrays[ITERATIONS_KEY] = np.array(int(np.asarray(optimizer.iterations.numpy())), np.int64)
        _save(path, arrays)
    return directory


def check_matching(path, saved, ours, error=None):
    """``error`` (default StateError) unless ``saved`` {name: shape} equals ``ours`` {name: shape}."""
    problems = []
    for label, names in (("missing", sorted(ours.keys() - saved.keys())),
                         ("unexpected", sorted(saved.keys() - ours.keys()))):
        if names:
            problems.append(f"{len(names)} {label}, e.g. {names[0]}")
    shapes = sorted(k for k in ours.keys() & saved.keys() if ours[k] != saved[k])
    if shapes:
        problems.append(f"{len(shapes)} of another shape, e.g. {shapes[0]} {saved[shapes[0]]} "
                        f"(model: {ours[shapes[0]]})")
    if problems:
        raise (error or StateError)(f"{path}: does not match this model's layers by name: "
                                    + "; ".join(problems))


def load_weights(path, model):
    """Load one network's file of a state folder into built ``model`` by name; returns the meta."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if not k.startswith("__")}
        meta = json.loads(str(data[META_KEY])) if META_KEY in data.files else {}
    check_matching(path, {k: tuple(v.shape) for k, v in arrays.items()},
           {variable_key(v): tuple(v.shape) for v in model.weights})
    for variable in model.weights:
        variable.assign(arrays[variable_key(variable)].astype(np.float32))
    return meta


def read_meta(directory):
    with np.load(os.path.join(directory, "generator.npz")) as data:
        return json.loads(str(data[META_KEY])) if META_KEY in data.files else {}


def load_state(directory, generator, critic, g_optimizer, d_optimizer=None):
    """Load what ``save_state`` wrote into built models and optimizers; returns the meta dict.

    A missing optimizer file (a reconstruction-only run has no ``d_optimizer.npz``; a compact
    state has neither) leaves that optimizer fresh.
    """
    meta = load_weights(os.path.join(directory, "generator.npz"), generator)
    load_weights(os.path.join(directory, "critic.npz"), critic)
    for name, optimizer, model in (("g_optimizer.npz", g_optimizer, generator),
                                   ("d_optimizer.npz", d_optimizer, critic)):
        path = os.path.join(directory, name)
        if optimizer is None or not os.path.exists(path):
            continue
        moments = _moments(optimizer, model)
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if not k.startswith("__")}
            iterations = int(data[ITERATIONS_KEY])
        check_matching(path, {k: tuple(v.shape) for k, v in arrays.items()},
               {k: tuple(v.shape) for k, v in moments.items()})
        for key, variable in moments.items():
            variable.assign(arrays[key].view(ml_dtypes.bfloat16).astype(np.float32))
        optimizer.iterations.assign(iterations)
    return meta
