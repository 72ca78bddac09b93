"""hifill_tf.loading (every model source, one error type) and hifill_tf.batch (the rules of a
batch of photos)."""

import json

import numpy as np
import pytest

from hifill_tf import batch, loading
from hifill_tf.io import InputError


def test_find_model_names_the_path_and_the_problem(tmp_path):
    with pytest.raises(loading.ModelError, match=r"nope\.npz: no such weights file"):
        loading.find_model(str(tmp_path / "nope.npz"))
    with pytest.raises(loading.ModelError, match=r"empty: not a training folder"):
        (tmp_path / "empty").mkdir()
        loading.find_model(checkpoint=str(tmp_path / "empty"))
    with pytest.raises(loading.ModelError, match=r"not a SavedModel directory"):
        loading.find_model(saved_model=str(tmp_path))


def test_a_training_folder_with_only_its_state_loads_by_name(tmp_path):
    # The JAX trainer writes state/ and no TensorFlow checkpoint; its generator.npz is written
    # here by hand: keys are the variable paths without the model's name, meta holds the config.
    from hifill_tf.models.generator import Generator

    source = Generator(refine_gate="pw")
    source.build()
    rng = np.random.default_rng(0)
    arrays = {v.path.split("/", 1)[1]: rng.normal(size=v.shape).astype(np.float32)
              for v in source.weights}
    meta = {"step": 7, "config": {"image_size": 64, "coarse_gate": "sc", "refine_gate": "pw"}}
    (tmp_path / "run" / "state").mkdir(parents=True)
    np.savez(tmp_path / "run" / "state" / "generator.npz", __meta__=np.array(json.dumps(meta)),
             **arrays)

    generator, where = loading.generator_from(str(tmp_path / "run"))
    assert where.kind == "state" and where.path == str(tmp_path / "run" / "state")
    assert generator.network_pixels == 64 * 64  # the crop it was trained on
    for v in generator.weights:
        np.testing.assert_array_equal(v.numpy(), arrays[v.path.split("/", 1)[1]])

    # The same folder into a generator of other gates: a ModelError naming the folder.
    with pytest.raises(loading.ModelError, match=r"run: .*does not match this model's layers"):
        loading.load_weights_into(Generator(refine_gate="sc"), str(tmp_path / "run"))


def test_hole_coverage_is_the_empty_mask_rule():
    mask = np.zeros((4, 5), np.uint8)
    assert batch.hole_coverage(mask, "m.png") is None  # written unchanged, model not called
    mask[0, :2] = 255
    assert batch.hole_coverage(mask, "m.png") == pytest.approx(2 / 20)
    with pytest.raises(InputError, match=r"m\.png: mask covers the whole image"):
        batch.hole_coverage(np.full((4, 5), 255, np.uint8), "m.png")


def test_failure_message_and_summary():
    assert batch.failure_message("a.jpg", InputError("a.jpg: truncated")) == "a.jpg: truncated"
    assert batch.failure_message("a.jpg", ValueError("bad")) == "a.jpg: ValueError: bad"
    assert (batch.batch_summary({"done": 3, "unchanged": 1, "skipped": 0}, 2, 125)
            == "3 done, 1 unchanged (empty mask), 2 failed in 2m05s")
