"""Generator weights as a small float16 .npz file, and the bundled default.

Checkpoints (hifill_tf.training) carry optimizer state and float32 weights;
this format carries only the generator, as float16 (2.7M parameters: about
5.3 MB), keyed by variable path, plus the generator's config.
"""

import json
import os

import numpy as np

from hifill_tf.io import atomic_file

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights", "hifill_default.npz")
NETWORK_PIXELS_KEY = "__network_pixels__"


def _key(variable):
    # Paths start with the model's automatic name ("generator", "generator_1", ...);
    # drop it so weights load into any instance.
    return variable.path.split("/", 1)[1]


def save_generator_weights(generator, path, network_pixels=None):
    """Write ``generator``'s weights as float16 to ``path`` atomically.

    ``network_pixels`` (default: ``generator.network_pixels`` if set) records the network
    input budget the model works best at, e.g. 256 * 256 for a model trained on small crops;
    the API and front ends use it when no ``max_pixels`` is given (``cra.network_pixels``).
    """
    generator.build()
    arrays = {_key(v): np.asarray(v.numpy(), np.float16) for v in generator.weights}
    arrays["__config__"] = np.array(json.dumps(generator.get_config()))
    network_pixels = network_pixels or generator.network_pixels
    if network_pixels:
        arrays[NETWORK_PIXELS_KEY] = np.array(int(network_pixels), np.int64)
    with atomic_file(path) as f:
        np.savez_compressed(f, **arrays)
    return path


def load_generator_weights(generator, path):
    """Load weights saved by :func:`save_generator_weights` into a built generator."""
    generator.build()
    with np.load(path) as data:
        names = {_key(v) for v in generator.weights}
        missing = sorted(names - set(data.files))
        extra = sorted(k for k in set(data.files) - names if not k.startswith("__"))
        if missing or extra:
            raise ValueError(
                f"{path}: weights do not match this generator's layers (by name): "
                + "; ".join(part for part in (
                    missing and f"{len(missing)} missing, e.g. {missing[0]}",
                    extra and f"{len(extra)} unexpected, e.g. {extra[0]}") if part))
        for v in generator.weights:
            value = data[_key(v)]
            if tuple(value.shape) != tuple(v.shape):
                raise ValueError(f"{path}: {_key(v)} has shape {value.shape}, model expects {tuple(v.shape)}")
            v.assign(value.astype(np.float32))
    return generator


def generator_config(path):
    """The generator config stored with the weights."""
    with np.load(path) as data:
        return json.loads(str(data["__config__"]))


def stored_network_pixels(path):
    """The network budget stored with the weights, or None."""
    with np.load(path) as data:
        return int(data[NETWORK_PIXELS_KEY]) if NETWORK_PIXELS_KEY in data.files else None


def load_generator(path=None):
    """A Generator with weights from ``path`` (default: the bundled weights).

    The format's reader; front ends load any model source through ``hifill_tf.loading``.
    """
    from hifill_tf.models.generator import Generator

    path = path or DEFAULT_WEIGHTS
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    config = generator_config(path)
    arguments = ("coarse_gate", "refine_gate", "softmax_scale", "attention_patch_size",
                 "transfer_patch_multiple")
    generator = Generator(**{k: v for k, v in config.items() if k in arguments},
                          network_pixels=stored_network_pixels(path))
    return load_generator_weights(generator, path)
