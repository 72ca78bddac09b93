"""Training shows it learns: the generator overfits a tiny fixed set quickly (issue: a model
that cannot memorise two crops has a broken loss, paste or gradient path)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hifill_tf import io
from hifill_tf.training.trainer import DEFAULTS, build_gan
from shared import PHOTO

STEPS = 40
THRESHOLD = 8.0  # in-hole L1 in 0..255 levels; it starts near 50 with fresh weights


@pytest.mark.slow
def test_overfits_two_crops_within_forty_steps():
    keras.utils.set_random_seed(0)
    photo = io.read_image(PHOTO)[0]
    images = np.stack([photo[100:164, 300:364], photo[200:264, 100:164]]).astype(np.float32)
    images = images / 127.5 - 1.0
    mask = np.zeros((2, 64, 64, 1), np.float32)
    mask[:, 20:40, 16:44] = 1.0
    gan = build_gan({**DEFAULTS, "image_size": 64, "adversarial_weight": 0.0, "g_lr": 1e-3,
                     "beta_1": 0.9, "beta_2": 0.999})
    step = tf.function(gan.train_step, autograph=False)  # as the trainer traces it
    batch = {"image": tf.constant(images[:, None]), "mask": tf.constant(mask[:, None])}
    hole = np.broadcast_to(mask > 0, images.shape)

    def hole_l1():
        refined = gan.generator(images, mask)["refined"].numpy()
        return float(np.abs(refined - images)[hole].mean() * 127.5)

    start = hole_l1()
    for _ in range(STEPS):
        step(batch)
    end = hole_l1()
    assert start > 25, start  # fresh weights do not already fill it
    assert end < THRESHOLD, (start, end)
