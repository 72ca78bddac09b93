import numpy as np
import pytest
import tensorflow as tf

import hifill_tf
from hifill_tf import cra
from hifill_tf.cra.aggregation import cell_windows
from hifill_tf.io import InputError
from hifill_tf.models.generator import Generator


def bilinear_up(x, f):
    """NumPy bilinear up-sampling by an integer factor: half-pixel centres, clamped edges."""
    def along(x, axis):
        n = x.shape[axis]
        u = np.clip((np.arange(n * f) + 0.5) / f - 0.5, 0, n - 1)
        lo = np.floor(u).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        shape = [1] * x.ndim
        shape[axis] = -1
        w = (u - lo).reshape(shape)
        return np.take(x, lo, axis) * (1 - w) + np.take(x, hi, axis) * w
    return along(along(x, 0), 1)


def cra_reference(image, hole, inpainted_low, scores, f):
    """Eq. (4) written directly: R = I - up(down(I)); hole cell j <- up(G)_j + sum_i s_ij R_i."""
    hp, wp, _ = image.shape
    h, w = hp // f, wp // f
    gh, gw, size = h // 16, w // 16, 16 * f
    image = image.astype(np.float64)
    low = image.reshape(h, f, w, f, 3).mean(axis=(1, 3))
    residual = image - bilinear_up(low, f)
    up_g = bilinear_up(inpainted_low.astype(np.float64), f)
    hole_cells = hole.reshape(gh, size, gw, size).any(axis=(1, 3)).reshape(-1)
    cells = [residual[a * size:(a + 1) * size, b * size:(b + 1) * size]
             for a in range(gh) for b in range(gw)]
    out = image.copy()
    for j in np.flatnonzero(hole_cells):
        a, b = divmod(j, gw)
        region = (slice(a * size, (a + 1) * size), slice(b * size, (b + 1) * size))
        out[region] = up_g[region] + sum(scores[i, j] * cells[i] for i in range(gh * gw))
    filled = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return np.where(hole[..., None], filled, image.astype(np.uint8))


def random_scores(rng, hole_low, gh, gw):
    """Column-stochastic scores with zero rows for sources touched by the hole, as the ACM gives."""
    cells = hole_low.reshape(gh, 16, gw, 16).any(axis=(1, 3)).astype(np.float32)
    sources = cra.source_cells(tf.constant(cells[..., None])).numpy()
    logits = rng.normal(scale=2.0, size=(gh * gw, gh * gw))
    s = np.exp(logits) * sources[:, None]
    return (s / s.sum(axis=0, keepdims=True)).astype(np.float32)


def photo(rng, height, width):
    """A photo-like test image: smooth gradients plus fine texture plus noise."""
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 60 * np.sin(x / 97.0)[..., None] * np.cos(y / 61.0)[..., None] * np.array([1, 0.7, 0.4])
    texture = 25 * np.sign(np.sin(x / 2.3) * np.sin(y / 3.1))[..., None]
    return np.clip(base + texture + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)


def irregular_hole(rng, height, width, fraction=0.12):
    hole = np.zeros((height, width), bool)
    y, x = np.mgrid[0:height, 0:width]
    while hole.mean() < fraction:
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.03, 0.1) * height, rng.uniform(0.03, 0.1) * width
        hole |= ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
    return hole


@pytest.mark.parametrize("height,width", [(1024, 1536), (1000, 1500)])
def test_cra_matches_numpy_eq4(height, width):
    rng = np.random.default_rng(0)
    image = photo(rng, height, width)
    hole = irregular_hole(rng, height, width)
    f, net_h, net_w = (int(v) for v in cra.plan(height, width))
    hp, wp = net_h * f, net_w * f
    gh, gw = net_h // 16, net_w // 16
    padded = np.pad(image, [(0, hp - height), (0, wp - width), (0, 0)], mode="symmetric")
    padded_hole = np.pad(hole, [(0, hp - height), (0, wp - width)], mode="symmetric")
    hole_low = padded_hole.reshape(net_h, f, net_w, f).any(axis=(1, 3))
    scores = random_scores(rng, hole_low, gh, gw)
    inpainted_low = rng.uniform(0, 255, (net_h, net_w, 3)).astype(np.float32)

    def stub_generator(image_in, hole_in):
        # The network's part is replaced by fixed outputs; the test is about Eq. 4 and the plumbing.
        tf.debugging.assert_equal(tf.cast(hole_in[0, ..., 0] > 0, tf.bool), tf.constant(hole_low))
        return {"inpainted": tf.constant(inpainted_low)[None] / 127.5 - 1.0,
                "scores": tf.constant(scores)[None]}

    result = cra.inpaint_tensor(stub_generator, image, hole.astype(np.uint8)).numpy()
    expected = cra_reference(padded, padded_hole, inpainted_low, scores, f)[:height, :width]
    assert result.shape == image.shape and result.dtype == np.uint8
    diff = np.abs(result.astype(int) - expected.astype(int))
    assert diff.max() <= 1  # float32 vs float64 rounding at .5 boundaries
    assert (diff > 0).mean() < 1e-3
    np.testing.assert_array_equal(result[~hole], image[~hole])


class _StubGenerator:
    """Fixed network outputs with the generator's attention_patch_size attribute."""

    def __init__(self, inpainted, scores, attention_patch_size):
        self.inpainted, self.scores = inpainted, scores
        self.attention_patch_size = attention_patch_size

    def __call__(self, image, hole):
        return {"inpainted": tf.constant(self.inpainted)[None] / 127.5 - 1.0,
                "scores": tf.constant(self.scores)[None]}


def test_cra_takes_the_attention_patch_size_from_the_generator():
    # With 1x1 attention patches every hole-free cell is a source, also those next to the hole.
    # Put all the weight on such neighbours: CRA must use them (weights summing to 1), as the
    # NumPy Eq. 4 does; a hard-coded 3x3 rule would drop them and add no residual at all.
    rng = np.random.default_rng(5)
    generator = Generator(attention_patch_size=1)
    height, width = 256, 384
    image = photo(rng, height, width)
    hole = np.zeros((height, width), bool)
    hole[96:150, 150:230] = True
    f, net_h, net_w = (int(v) for v in cra.plan(height, width, 128 * 192))
    gh, gw = net_h // 16, net_w // 16
    hole_low = hole.reshape(net_h, f, net_w, f).any(axis=(1, 3))
    cells = hole_low.reshape(gh, 16, gw, 16).any(axis=(1, 3))
    low = image.reshape(net_h, f, net_w, f, 3).mean(axis=(1, 3)).astype(np.float32)
    real = generator(low[None] / 127.5 - 1.0, hole_low[None, ..., None].astype(np.float32))
    sources = cra.source_cells(tf.constant(cells[..., None].astype(np.float32)),
                               generator.attention_patch_size).numpy()
    targets = cells.reshape(-1)
    np.testing.assert_allclose(real["scores"][0].numpy()[sources][:, targets].sum(axis=0), 1.0,
                               atol=1e-5)
    neighbours = np.zeros_like(cells)
    neighbours[1:] |= cells[:-1]
    neighbours[:-1] |= cells[1:]
    neighbours &= ~cells
    assert sources.reshape(cells.shape)[neighbours].all() and neighbours.any()
    scores = np.zeros((gh * gw, gh * gw), np.float32)
    scores[np.flatnonzero(neighbours)] = 1.0 / neighbours.sum()
    inpainted_low = rng.uniform(0, 255, (net_h, net_w, 3)).astype(np.float32)
    stub = _StubGenerator(inpainted_low, scores, attention_patch_size=1)
    result = cra.inpaint_tensor(stub, image, hole.astype(np.uint8), 128 * 192).numpy()
    expected = cra_reference(image, hole, inpainted_low, scores, f)
    assert np.abs(result.astype(int) - expected.astype(int)).max() <= 1
    plain = cra_reference(image, hole, inpainted_low, np.zeros_like(scores), f)
    assert np.abs(expected.astype(int) - plain.astype(int))[hole].mean() > 2  # residuals added


@pytest.mark.parametrize("rows", [slice(5, 40), slice(70, 80)])
def test_aggregate_chunking_does_not_change_the_result(rows):
    """Any chunk size gives the NumPy reference's pixels, with targets in two of the three cell
    rows (the rows put in order by a gather) or in one (scattered into a copy of the photo)."""
    rng = np.random.default_rng(1)
    f, gh, gw = 2, 3, 4
    image = rng.integers(0, 256, (16 * f * gh, 16 * f * gw, 3), dtype=np.uint8)
    hole = np.zeros(image.shape[:2], bool)
    hole[rows, 70:100] = True
    low = image.reshape(16 * gh, f, 16 * gw, f, 3).mean(axis=(1, 3)).astype(np.float32)
    hole_low = hole.reshape(16 * gh, f, 16 * gw, f).any(axis=(1, 3))
    scores = random_scores(rng, hole_low, gh, gw)
    g = rng.uniform(0, 255, low.shape).astype(np.float32)
    outs = [cra.aggregate(image, hole[..., None], low, g, scores, f, chunk_bytes=c).numpy()
            for c in (1, 3 * 32 * 32 * 3 * 4, cra.CHUNK_BYTES)]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    np.testing.assert_array_equal(outs[0], cra_reference(image, hole, g, scores, f))


@pytest.mark.parametrize("height,width,factor,net", [
    (512, 512, 1, (512, 512)), (2048, 2048, 4, (512, 512)), (4320, 7680, 12, (368, 640)),
    (3000, 4000, 7, (432, 576)), (4000, 3000, 7, (576, 432)), (300, 200, 1, (304, 208)),
    (2000, 8000, 8, (256, 1008))])
def test_plan_keeps_geometry_within_budget(height, width, factor, net):
    f, h, w = (int(v) for v in cra.plan(height, width))
    assert (f, (h, w)) == (factor, net)
    assert h * w <= 512 * 512 and h % 16 == 0 and w % 16 == 0  # the paper's budget (§4.1)
    assert h * f >= height and w * f >= width and h * f - height < 16 * f
    if f > 1:  # the smallest factor: one less would exceed the budget
        smaller = (16 * -(-height // (16 * (f - 1)))) * (16 * -(-width // (16 * (f - 1))))
        assert smaller > 512 * 512


def upsample_windows(windows, matrix):
    """[N, 18, 18, C] low-resolution windows -> [N, 16f, 16f, C] cells, by the interpolation
    matrix on both axes (CRA itself does the columns once and the rows per chunk)."""
    x = tf.einsum("pa,nabc->npbc", matrix, windows)
    return tf.einsum("qb,npbc->npqc", matrix, x).numpy()


def from_cells(cells, grid, size):
    """[gh*gw, size, size, C] cells, row-major -> the [gh*size, gw*size, C] image they tile."""
    x = cells.reshape(grid[0], grid[1], size, size, -1)
    return x.transpose(0, 2, 1, 3, 4).reshape(grid[0] * size, grid[1] * size, -1)


def test_interpolation_matrix_matches_tf_resize():
    rng = np.random.default_rng(2)
    low = rng.uniform(0, 255, (32, 48, 3)).astype(np.float32)
    for f in (1, 3, 4):
        expected = tf.image.resize(low[None], [32 * f, 48 * f], method="bilinear")[0].numpy()
        windows = cell_windows(tf.constant(low), (2, 3))
        got = from_cells(upsample_windows(windows, cra.interpolation_matrix(f)), (2, 3), 16 * f)
        np.testing.assert_allclose(got, expected, atol=1e-3)
        np.testing.assert_allclose(got, bilinear_up(low, f), atol=1e-3)


@pytest.fixture(scope="module")
def generator():
    """A random-weight generator whose API graph is traced once for the tests of its unit
    (shared.random_generator; conftest.py runs this file in that unit)."""
    from shared import random_generator

    return random_generator()


@pytest.mark.slow
@pytest.mark.parametrize("height,width", [(517, 2049), (4000, 3000), (3000, 4000), (40, 23)])
def test_odd_sizes_keep_the_outside_bit_identical(generator, height, width):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3:height // 2, width // 4:width // 2] = 255
    out = hifill_tf.inpaint(image, mask, generator=generator)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[mask == 0], image[mask == 0])
    assert (out[mask > 0] != image[mask > 0]).mean() > 0.5  # the hole was actually filled


def test_hole_content_cannot_leak_through_the_padding(generator):
    # A hole at the bottom-right edge: mirror padding copies its pixels into
    # the padding, which must then count as hole too.
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (1000, 1500, 3), dtype=np.uint8)  # f = 3, padded to 1008x1536
    mask = np.zeros((1000, 1500), np.uint8)
    mask[-60:, -80:] = 255
    other = image.copy()
    other[mask > 0] = 255 - other[mask > 0]
    np.testing.assert_array_equal(hifill_tf.inpaint(image, mask, generator=generator),
                                  hifill_tf.inpaint(other, mask, generator=generator))


def test_empty_full_and_mismatched_masks(generator):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    same = hifill_tf.inpaint(image, np.zeros((64, 80), np.uint8), generator=generator)
    np.testing.assert_array_equal(same, image)
    with pytest.raises(InputError, match="whole image"):
        hifill_tf.inpaint(image, np.ones((64, 80), np.uint8), generator=generator, name="full.png")
    with pytest.raises(InputError, match="80x64"):
        hifill_tf.inpaint(image, np.ones((60, 80), np.uint8), generator=generator, name="photo.jpg")
    with pytest.raises(InputError, match="photo.jpg"):
        hifill_tf.inpaint(image[:10], np.ones((10, 80), np.uint8), generator=generator, name="photo.jpg")
    # The graph itself refuses a full hole too (what a SavedModel client would hit).
    with pytest.raises(tf.errors.InvalidArgumentError, match="whole image"):
        cra.inpaint_tensor(generator, image, np.ones((64, 80), np.uint8))


def test_cra_keeps_high_frequencies_of_a_repeating_texture(generator):
    # A fine texture whose period divides the cell: every contextual residual
    # carries it, so CRA restores it in the hole, where bilinear up-sampling
    # of the 512 output alone is smooth.
    height, width = 2048, 2048  # f = 4, cells of 64 px
    y, x = np.mgrid[0:height, 0:width]
    # Period 4 = f: each 4x4 block averages to the same grey, so the whole
    # texture is residual (what the 512 network cannot represent).
    texture = 128 + 80 * np.sign(np.sin(2 * np.pi * (x + 0.5) / 4)) * np.sign(np.sin(2 * np.pi * (y + 0.5) / 4))
    image = np.repeat(texture[..., None], 3, axis=2).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[700:1100, 900:1300] = 255
    out = hifill_tf.inpaint(image, mask, generator=generator).astype(np.float64)

    small = image.reshape(512, 4, 512, 4, 3).mean(axis=(1, 3)) / 127.5 - 1
    small_mask = mask.reshape(512, 4, 512, 4).max(axis=(1, 3))[None, ..., None] > 0
    net = generator(small[None].astype(np.float32), small_mask.astype(np.float32))
    upsampled = bilinear_up((net["inpainted"][0].numpy() + 1) * 127.5, 4)

    def high_frequency_energy(img):
        region = img[700:1100, 900:1300].mean(axis=2)
        blurred = (region[:-2, 1:-1] + region[2:, 1:-1] + region[1:-1, :-2] + region[1:-1, 2:]
                   + region[1:-1, 1:-1]) / 5
        return np.mean((region[1:-1, 1:-1] - blurred) ** 2)

    truth = high_frequency_energy(image.astype(np.float64))
    assert high_frequency_energy(out) > 0.8 * truth
    assert high_frequency_energy(out) > 20 * high_frequency_energy(upsampled)


def test_feather_weights_match_a_numpy_box_blur():
    rng = np.random.default_rng(5)
    hole = rng.random((40, 50)) < 0.05
    r = 3
    padded = np.pad(hole.astype(np.float64), r)
    blurred = np.zeros(hole.shape)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            blurred += padded[r + dy:r + dy + 40, r + dx:r + dx + 50]
    expected = np.maximum(hole, blurred / (2 * r + 1) ** 2)
    got = cra.feather_weights(tf.constant(hole[..., None]), r).numpy()[..., 0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_feathered_seam_blends_only_near_the_hole(generator):
    rng = np.random.default_rng(6)
    image = photo(rng, 256, 320)
    mask = np.zeros((256, 320), np.uint8)
    mask[100:150, 120:200] = 255
    # A small budget forces f = 4; at f = 1 the fill outside the hole would
    # equal the input and the blend would be invisible.
    hard = hifill_tf.inpaint(image, mask, generator=generator, max_pixels=64 * 80)
    soft = hifill_tf.inpaint(image, mask, generator=generator, max_pixels=64 * 80, feather=6)
    near = np.zeros_like(mask, bool)
    near[94:156, 114:206] = True
    far = ~near
    np.testing.assert_array_equal(soft[far], image[far])
    band = near & (mask == 0)
    assert (soft[band] != image[band]).any() and (hard[band] == image[band]).all()
    # Inside the hole both are the fill; they round differently (the hard paste folds +0.5
    # into the up-sampling and truncates, the soft one rounds the blend), so a value at a
    # .5 boundary may differ by one level.
    difference = np.abs(soft[mask > 0].astype(int) - hard[mask > 0])
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-3


def test_budget_below_one_cell_is_a_clear_error_at_every_entry_point(generator):
    # cra.check_budget is the one check: below one cell, cra.plan would loop forever.
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:20, 10:20] = 255
    for bad in (100, 255, 0):
        with pytest.raises(ValueError, match=f"max_pixels must be at least 256.*got {bad}"):
            hifill_tf.inpaint(image, mask, generator=generator, max_pixels=bad)
        with pytest.raises(ValueError, match="at least 256"):
            cra.plan(64, 64, bad)
    with pytest.raises(ValueError, match="integer"):
        cra.network_pixels(generator, 1000.5)
    with pytest.raises(ValueError, match="at least 256"):
        cra.check_budget(255)
    assert cra.check_budget(256.0) == 256 and cra.DEFAULT_NETWORK_PIXELS == 512 * 512
    assert cra.network_pixels(generator, 256) == 256
    assert hifill_tf.inpaint(image, mask, generator=generator, max_pixels=256).shape == image.shape
    # A budget tensor below one cell, as a direct caller of the graph could pass, is refused too.
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least 256"):
        cra.plan(64, 64, tf.constant(255))
