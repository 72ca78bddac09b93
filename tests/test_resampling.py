import numpy as np

from harness import run_layer_test
from hifill_tf.layers.resampling import Upsample2x


def test_nearest_repeats_pixels(tmp_path):
    rng = np.random.default_rng(0)
    _, results = run_layer_test(Upsample2x, dict(interpolation="nearest"),
                                lambda h, w: (rng.normal(size=(2, h, w, 3)).astype(np.float32),),
                                lambda h, w: (2, 2 * h, 2 * w, 3), sizes=[(4, 6), (5, 3)], tmp_path=tmp_path)
    for (x,), out in results.values():
        np.testing.assert_array_equal(out, x.repeat(2, axis=1).repeat(2, axis=2))


def _bilinear_2x_1d(x, axis):
    """Half-pixel-centre 2x linear interpolation along one axis, edges clamped."""
    n = x.shape[axis]
    coords = (np.arange(2 * n) + 0.5) / 2 - 0.5
    lo = np.clip(np.floor(coords).astype(int), 0, n - 1)
    hi = np.clip(lo + 1, 0, n - 1)
    frac = np.clip(coords - np.floor(coords), 0, 1)
    frac = np.where(coords < 0, 0.0, frac)
    shape = [1] * x.ndim
    shape[axis] = 2 * n
    frac = frac.reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - frac) + np.take(x, hi, axis=axis) * frac


def test_bilinear_matches_separable_reference(tmp_path):
    rng = np.random.default_rng(1)
    _, results = run_layer_test(Upsample2x, dict(interpolation="bilinear"),
                                lambda h, w: (rng.normal(size=(1, h, w, 2)).astype(np.float32),),
                                lambda h, w: (1, 2 * h, 2 * w, 2), sizes=[(4, 6), (5, 3)], tmp_path=tmp_path)
    for (x,), out in results.values():
        expected = _bilinear_2x_1d(_bilinear_2x_1d(x.astype(np.float64), 1), 2)
        np.testing.assert_allclose(out, expected, atol=1e-5)
