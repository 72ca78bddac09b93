import numpy as np
import pytest

from hifill_tf.models.generator import Generator
from hifill_tf.weights import generator_config, load_generator, save_generator_weights


def test_float16_round_trip_into_any_instance(tmp_path):
    source = Generator(refine_gate="ds")
    path = str(tmp_path / "w.npz")
    save_generator_weights(source, path)
    assert generator_config(path)["refine_gate"] == "ds"
    loaded = load_generator(path)  # a second Generator in the process: automatic name differs
    assert loaded.name != source.name and loaded.refine_gate == "ds"
    for a, b in zip(loaded.weights, source.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy().astype(np.float16).astype(np.float32))
    with pytest.raises(ValueError, match="lacks"):
        load_generator_weights_into_other_gates(path)


def load_generator_weights_into_other_gates(path):
    from hifill_tf.weights import load_generator_weights
    return load_generator_weights(Generator(refine_gate="pw"), path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_generator(str(tmp_path / "nope.npz"))
