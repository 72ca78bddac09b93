"""Validation during training: fixed cases, Telea beside the model, attention statistics,
the best generator kept, the learning curve."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from hifill_tf import api, evaluate, io
from hifill_tf.training import trainer
from hifill_tf.training.curves import _stages, plot_learning_curve, read_log
from hifill_tf.training.validation import Validator, attention_statistics
from hifill_tf.weights import load_generator
from shared import PHOTO


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    photo = io.read_image(PHOTO)[0]
    Image.fromarray(photo[:200, :320]).save(root / "a.png")
    Image.fromarray(photo[150:, 300:]).save(root / "b.jpg", quality=95)
    return root


def test_validator_scores_model_and_telea_on_the_same_fixed_cases(folder):
    validator = Validator(str(folder), long_side=160, holes=2, max_pixels=64 * 64)
    assert len(validator.cases) == 4
    # Cases are resized with the aspect kept and carry 10-25% holes, blanked to black.
    for _, truth, mask, blanked in validator.cases:
        assert max(truth.shape[:2]) == 160
        assert 0.10 <= np.mean(mask != 0) <= 0.25
        assert (blanked[mask != 0] == 0).all()
    # Telea's numbers are evaluate's own, on the same cases.
    rows = [evaluate.image_metrics(evaluate.telea(b, m), t, m, with_ms_ssim=False)
            for _, t, m, b in validator.cases]
    assert validator.telea["hole_l1"] == pytest.approx(np.mean([r["hole_l1"] for r in rows]))
    again = Validator(str(folder), long_side=160, holes=2, max_pixels=64 * 64)
    for (_, _, m1, _), (_, _, m2, _) in zip(validator.cases, again.cases):
        np.testing.assert_array_equal(m1, m2)  # seeded: fixed cases
    # The bundled model, loaded and traced once in this unit (test_beam's fixture uses it too).
    metrics = validator(api.default_generator())
    assert set(metrics) == {"hole_l1", "hole_psnr", "sharpness", "telea_hole_l1",
                            "telea_hole_psnr", "telea_sharpness"}
    assert 0 < metrics["hole_l1"] < 255


def test_attention_statistics_hand_computed():
    # 2x2 grid (32x32 input); hole in cell 3; sources 0 and 1 carry weight for every target.
    scores = np.zeros((1, 4, 4), np.float32)
    scores[0, 0, :] = 0.75
    scores[0, 1, :] = 0.25
    mask = np.zeros((1, 32, 32, 1), np.float32)
    mask[0, 20:24, 20:24] = 1.0
    sources, largest = attention_statistics(tf.constant(scores), tf.constant(mask))
    assert sources == 2 and largest == pytest.approx(0.75)


def test_training_validates_keeps_the_best_and_plots(folder, tmp_path):
    config = dict(data=str(folder), model_dir=str(tmp_path / "run"), image_size=64, batch_size=1,
                  steps=2, adversarial_weight=0.0, validation_dir=str(folder), validate_every=1,
                  validation_long_side=128, validation_holes=1, log_every=1, image_every=100,
                  checkpoint_every=100, images_seen_before=1000)
    trainer.train(config, progress=lambda line: None)
    records = read_log([tmp_path / "run" / trainer.VALIDATION_LOG])
    assert [r["step"] for r in records] == [1, 2]
    assert [r["images_seen"] for r in records] == [1001, 1002]
    best = min(r["hole_l1"] for r in records)
    kept = load_generator(str(tmp_path / "run" / trainer.BEST_WEIGHTS))
    assert kept.network_pixels == 64 * 64
    validator = Validator(str(folder), long_side=128, holes=1, max_pixels=64 * 64)
    assert validator(kept)["hole_l1"] == pytest.approx(best, abs=0.5)  # float16 weights
    png = plot_learning_curve(records, str(tmp_path / "curve.png"))
    assert Image.open(png).size[0] > 300
    # Stages from the command line: a label starts a stage, an unlabelled file joins it.
    log = str(tmp_path / "run" / trainer.VALIDATION_LOG)
    later = tmp_path / "later.jsonl"
    later.write_text("".join(json.dumps({**r, "images_seen": r["images_seen"] + 10}) + "\n"
                             for r in records))
    stages = _stages([f"reconstruction={log}", f"adversarial={later}", log])
    assert list(stages) == ["reconstruction", "adversarial"]
    assert [r["images_seen"] for r in stages["adversarial"]] == [1001, 1002, 1011, 1012]
    two = Image.open(plot_learning_curve(stages, str(tmp_path / "stages.png")))
    assert np.asarray(two.convert("RGB")).std() > 10  # drawn, not blank
    json.dumps(records)  # plain JSON values
