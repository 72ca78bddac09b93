import numpy as np
import pytest

from harness import run_layer_test, to_numpy
from hifill_tf.layers.contextual_attention import (
    AttentionComputing, AttentionTransfer, block_any, grid_to_patches, patches_to_grid)
import reference


def random_holes(rng, batch, gh, gw, fraction=0.3):
    holes = (rng.random((batch, gh, gw, 1)) < fraction).astype(np.float32)
    holes[:, 0, 0, 0] = 0.0  # keep at least one background cell
    return holes


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_acm_matches_numpy_eq1_eq2(scale, tmp_path):
    rng = np.random.default_rng(0)
    layer, results = run_layer_test(
        AttentionComputing, dict(softmax_scale=scale, patch_size=3),
        lambda h, w: (rng.normal(size=(2, h, w, 6)).astype(np.float32), random_holes(rng, 2, h, w, 0.15)),
        lambda h, w: (2, h * w, h * w), sizes=[(8, 8), (6, 10)], tmp_path=tmp_path)
    for (features, holes), scores in results.values():
        for b in range(2):
            expected = reference.attention_scores(features[b].astype(np.float64), holes[b, ..., 0] > 0, scale)
            np.testing.assert_allclose(scores[b], expected, atol=1e-5)


def test_scores_sum_to_one_over_background_and_zero_on_hole_sources():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(3, 16, 16, 8)).astype(np.float32)
    holes = np.zeros((3, 16, 16, 1), np.float32)
    holes[:, 5:9, 4:11] = 1
    scores = to_numpy(AttentionComputing()(features, holes))
    padded = np.pad(holes[..., 0], [(0, 0), (1, 1), (1, 1)])
    touched = np.zeros((3, 16, 16), bool)  # a hole cell in the 3x3 neighbourhood
    for di in range(3):
        for dj in range(3):
            touched |= padded[:, di:di + 16, dj:dj + 16] > 0
    touched = touched.reshape(3, -1)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(scores[touched] == 0.0)  # exactly zero, not merely small
    assert np.all(scores[~touched] > 0)


def test_exact_copy_in_background_gets_largest_score():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(1, 16, 16, 8)).astype(np.float32)
    # The 3x3 neighbourhood around target (8, 8) is copied to (3, 12), far from the hole.
    features[0, 2:5, 11:14] = features[0, 7:10, 7:10]
    holes = np.zeros((1, 16, 16, 1), np.float32)
    holes[0, 8, 8] = 1  # the target cell is a hole; its own patch is still observed here
    scores = to_numpy(AttentionComputing()(features, holes))[0]
    target = 8 * 16 + 8
    assert np.argmax(scores[:, target]) == 3 * 16 + 12


def test_all_hole_grid_gives_zeros_not_nan():
    features = np.ones((1, 4, 4, 2), np.float32)
    scores = to_numpy(AttentionComputing()(features, np.ones((1, 4, 4, 1), np.float32)))
    assert np.all(scores == 0.0)


@pytest.mark.parametrize("grid,size", [((4, 4), (8, 8)), ((4, 6), (12, 24))])
def test_atm_matches_numpy_eq3(grid, size, tmp_path):
    rng = np.random.default_rng(3)
    gh, gw = grid

    def make(h, w):
        feats = rng.normal(size=(2, h, w, 3)).astype(np.float32)
        holes = random_holes(rng, 2, gh, gw, 0.4)
        logits = rng.normal(size=(2, gh * gw, gh * gw))
        scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return feats, scores.astype(np.float32), holes

    _, results = run_layer_test(
        AttentionTransfer, dict(patch_multiple=1), make, lambda h, w: (2, h, w, 3),
        sizes=[size, (size[0] * 2, size[1] * 3)], tmp_path=tmp_path)
    for (feats, scores, holes), out in results.values():
        for b in range(2):
            expected = reference.transfer(feats[b], scores[b], holes[b, ..., 0] > 0)
            np.testing.assert_allclose(out[b], expected, atol=1e-5)
            np.testing.assert_array_equal(out[b][expected == feats[b]], feats[b][expected == feats[b]])


def test_atm_overlapping_patches_average_contributions(tmp_path):
    rng = np.random.default_rng(4)
    gh = gw = 4
    s = 2
    feats = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    holes = np.zeros((1, 4, 4, 1), np.float32)
    holes[0, 1:3, 2] = 1
    scores = rng.random((1, 16, 16)).astype(np.float32)
    scores /= scores.sum(1, keepdims=True)
    run_layer_test(AttentionTransfer, dict(patch_multiple=3),
                   lambda h, w: (rng.normal(size=(1, h, w, 2)).astype(np.float32),
                                 rng.random((1, 16, 16)).astype(np.float32), holes),
                   lambda h, w: (1, h, w, 2), sizes=[(8, 8), (12, 16)], tmp_path=tmp_path)
    out = to_numpy(AttentionTransfer(patch_multiple=3)(feats, scores, holes))[0]
    # NumPy overlap-add: 6x6 patches centred on each 2x2 cell of the zero-padded map.
    padded = np.pad(feats[0], [(2, 2), (2, 2), (0, 0)])
    patches = [padded[a * s:a * s + 6, b * s:b * s + 6] for a in range(gh) for b in range(gw)]
    total = np.zeros((12, 12, 2))
    count = np.zeros((12, 12, 1))
    for j in range(16):
        a, b = divmod(j, gw)
        total[a * s:a * s + 6, b * s:b * s + 6] += sum(scores[0, i, j] * patches[i] for i in range(16))
        count[a * s:a * s + 6, b * s:b * s + 6] += 1
    filled = (total / count)[2:10, 2:10]
    hole_pixels = np.kron(holes[0, ..., 0], np.ones((s, s)))[..., None] > 0
    expected = np.where(hole_pixels, filled, feats[0])
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_grid_helpers_round_trip_and_block_any():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 12, 20, 3)).astype(np.float32)
    patches = grid_to_patches(x, (3, 4))
    assert patches.shape == (2, 12, 4 * 5 * 3)
    np.testing.assert_array_equal(to_numpy(patches[0, 5]).reshape(4, 5, 3), x[0, 4:8, 5:10])
    np.testing.assert_array_equal(to_numpy(patches_to_grid(patches, (3, 4), (4, 5), 3)), x)
    mask = np.zeros((1, 12, 20, 1), np.float32)
    mask[0, 7, 13] = 1  # one pixel -> its cell (1, 2) is a hole
    cells = to_numpy(block_any(mask, 4, 5))[0, ..., 0]
    assert cells.dtype == bool and cells.shape == (3, 4) and cells.sum() == 1 and cells[1, 2]
    # Any rank of leading axes, unequal sides, bool or numbers: the NumPy any over each block.
    holes = np.random.default_rng(6).uniform(size=(12, 20, 2)) > 0.97
    expected = holes.reshape(4, 3, 4, 5, 2).any(axis=(1, 3))
    np.testing.assert_array_equal(to_numpy(block_any(holes, 3, 5)), expected)
    np.testing.assert_array_equal(to_numpy(block_any(holes.astype(np.float32), 3, 5)), expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="4"):
        AttentionComputing(patch_size=4)
    with pytest.raises(ValueError, match="2"):
        AttentionTransfer(patch_multiple=2)
