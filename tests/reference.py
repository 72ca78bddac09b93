"""Independent NumPy references for the paper's equations (used by several tests)."""

import numpy as np


def conv2d_same(x, kernel, bias, stride=1, dilation=1):
    """Naive 'same' convolution, TF padding convention. x [H, W, Cin], kernel [k, k, Cin, Cout]."""
    k = kernel.shape[0]
    eff = (k - 1) * dilation + 1
    h, w, _ = x.shape
    out_h, out_w = -(-h // stride), -(-w // stride)
    pad_h = max((out_h - 1) * stride + eff - h, 0)
    pad_w = max((out_w - 1) * stride + eff - w, 0)
    xp = np.pad(x, [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)])
    out = np.zeros((out_h, out_w, kernel.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            window = xp[i * stride:i * stride + eff:dilation, j * stride:j * stride + eff:dilation]
            out[i, j] = np.tensordot(window, kernel, axes=([0, 1, 2], [0, 1, 2]))
    return out + bias


def centre_pixels(x, kernel_size, stride=1, dilation=1):
    """The pixels a k x k 'same' conv at ``stride`` is centred on: that conv with a delta kernel."""
    channels = x.shape[2]
    delta = np.zeros((kernel_size, kernel_size, channels, channels))
    delta[kernel_size // 2, kernel_size // 2] = np.eye(channels)
    return conv2d_same(x, delta, np.zeros(channels), stride, dilation)


def depthwise_same(x, kernel, bias, stride=1, dilation=1):
    """Depth-wise 'same' convolution. kernel [k, k, C, 1]."""
    channels = x.shape[2]
    return np.concatenate([
        conv2d_same(x[:, :, c:c + 1], kernel[:, :, c:c + 1, :], bias[c:c + 1], stride, dilation)
        for c in range(channels)], axis=2)


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def patches_3x3(p, k=3):
    """All k x k patches (zero padded) of p [h, w, C], row-major, flattened (row, col, channel)."""
    h, w, c = p.shape
    r = k // 2
    padded = np.pad(p, [(r, r), (r, r), (0, 0)])
    return np.stack([padded[i:i + k, j:j + k].reshape(-1) for i in range(h) for j in range(w)])


def attention_scores(p, hole_cells, scale=10.0, k=3):
    """Eq. (1)-(2): scores[i, j] = softmax_i over background sources of scale * cos(p_i, p_j)."""
    patches = patches_3x3(p, k)
    norms = np.sqrt(np.maximum((patches ** 2).sum(1, keepdims=True), 1e-12))
    unit = patches / norms
    cosine = unit @ unit.T
    h, w = hole_cells.shape
    touched = np.zeros_like(hole_cells, dtype=bool)
    r = k // 2
    for i in range(h):
        for j in range(w):
            touched[i, j] = hole_cells[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1].any()
    background = ~touched.reshape(-1)
    scores = np.zeros_like(cosine)
    for j in range(cosine.shape[1]):
        logits = scale * cosine[background, j]
        e = np.exp(logits - logits.max())
        scores[background, j] = e / e.sum()
    return scores


def transfer(features, scores, hole_cells):
    """Eq. (3) for non-overlapping cells: hole cell j <- sum_i s_ij p_i."""
    gh, gw = hole_cells.shape
    h, w, c = features.shape
    ph, pw = h // gh, w // gw
    cells = [features[a * ph:(a + 1) * ph, b * pw:(b + 1) * pw] for a in range(gh) for b in range(gw)]
    out = features.copy()
    for j in range(gh * gw):
        a, b = divmod(j, gw)
        if hole_cells[a, b]:
            out[a * ph:(a + 1) * ph, b * pw:(b + 1) * pw] = sum(
                scores[i, j] * cells[i] for i in range(gh * gw))
    return out


def reconstruction_loss(prediction, target, mask, alpha1=1.0, alpha2=1.2):
    """Eq. (11)-(13), averaged over batch, pixels and channels (float64)."""
    error = np.abs(prediction.astype(np.float64) - target)
    in_hole = error * mask             # Eq. (11)
    context = error * (1.0 - mask)     # Eq. (12)
    return float(np.mean(alpha1 * in_hole + alpha2 * context))  # Eq. (13)


def numpy_adam(weights, gradients, lr, beta_1, beta_2, epsilon):
    """Kingma & Ba, Algorithm 1, with epsilon added to sqrt(v) after the bias correction of
    the step size (as keras.optimizers.Adam and tf.raw_ops.ApplyAdam do), in float64."""
    weights = [w.astype(np.float64) for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t, step in enumerate(gradients, start=1):
        alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        for i, g in enumerate(step):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g * g
            weights[i] = weights[i] - alpha * m[i] / (np.sqrt(v[i]) + epsilon)
    return weights
