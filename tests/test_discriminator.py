"""The WGAN-GP critic (appendix "Discriminator"), against a NumPy reference."""

import numpy as np
import keras

from harness import to_numpy
from hifill_tf.models.discriminator import Discriminator
import reference


def test_discriminator(tmp_path):
    critic = Discriminator()
    images = np.random.default_rng(4).uniform(-1, 1, (3, 512, 512, 3)).astype(np.float32)
    scores = critic(images)
    assert scores.shape == (3, 1)
    convs = [l for l in critic._flatten_layers() if isinstance(l, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [64, 128, 256, 256, 256, 256]
    assert all(c.strides == (2, 2) and c.kernel_size == (3, 3) for c in convs)
    assert critic.dense.kernel.shape == (8 * 8 * 256, 1)
    # Unbounded score: scaling the last layer scales the output (no squashing).
    critic.dense.kernel.assign(critic.dense.kernel * 1000)
    assert np.abs(to_numpy(critic(images))).max() > 1.0
    critic.save(tmp_path / "critic.keras")
    restored = keras.saving.load_model(tmp_path / "critic.keras")
    np.testing.assert_allclose(to_numpy(restored(images)), to_numpy(critic(images)), rtol=1e-5)


def test_critic_matches_numpy_and_its_stateless_call():
    # Six 3x3 stride-2 "same" convolutions with leaky ReLU max(x, 0.2 x), flatten, dense.
    rng = np.random.default_rng(5)
    images = rng.uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    critic = Discriminator()
    scores = to_numpy(critic(images))
    assert scores.dtype == np.float32 and scores.shape == (2, 1)
    for image, score in zip(images, scores):
        x = image.astype(np.float64)
        for conv in critic.convs:
            x = reference.conv2d_same(x, conv.kernel.numpy(), conv.bias.numpy(), stride=2)
            x = np.maximum(x, 0.2 * x)
        expected = x.reshape(-1) @ critic.dense.kernel.numpy() + critic.dense.bias.numpy()
        np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-6)
    # The form a JAX train step calls, with the variable values passed in.
    stateless, _ = critic.stateless_call([v.value for v in critic.trainable_variables],
                                         [v.value for v in critic.non_trainable_variables],
                                         images, training=True)
    np.testing.assert_allclose(to_numpy(stateless), scores, rtol=1e-5, atol=1e-7)
