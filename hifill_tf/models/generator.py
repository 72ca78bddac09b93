"""The coarse-to-fine HiFill generator (§3.3, Figure 2, appendix)."""

import re

import keras
from keras import ops

from hifill_tf.layers.contextual_attention import AttentionComputing, AttentionTransfer, block_any
from hifill_tf.layers.gated_conv import ClippedConv2D, GatedConv2D
from hifill_tf.layers.resampling import Upsample2x

# Layer lists copied from the paper's appendix ("Coarse Network", "Refine
# Network", "Attention Transfer Branch"); the refine network is split at its
# taps [P^l] and concatenations, which the model wires explicitly.
COARSE_SPEC = (
    "downsample(2x) - K5S2C32 - K3S1C32 - K3S2C64 - K3S1C64 - K3S1C64 - K3S1C64 - K3S1C64 - "
    "K3S1C64 - K3S1C64D2 - K3S1C64D2 - K3S1C64D2 - K3S1C64D2 - K3S1C64D2 - K3S1C64D2 - "
    "K3S1C64D4 - K3S1C64D4 - K3S1C64D4 - K3S1C64D4 - K3S1C64D4 - K3S1C64D8 - K3S1C64D8 - "
    "K3S1C64 - K3S1C64 - K3S1C64 - K3S1C64 - upsample(2x) - K3S1C32 - upsample(2x) - K3S1C3 - "
    "clip - upsample(2x)"
)
REFINE_SPEC = {
    "encoder1": "K5S2C32 - K3S1C32",  # -> P^{l=1}
    "encoder2": "K3S2C64 - K3S1C64",  # -> P^{l=2}
    "encoder3": "K3S2C128 - K3S1C128 - K3S1C128D2 - K3S1C128D4 - K3S1C128D8 - K3S1C128D16",  # P^{l=3}
    "decoder3": "K3S1C128 - upsample(2x) - K3S1C64 - K3S1C64",
    "decoder2": "upsample(2x) - K3S1C32 - K3S1C32",
    "decoder1": "upsample(2x) - K3S1C3 - clip",
}
TRANSFER_SPEC = {3: "K3S1C128", 2: "K3S1C64 - K3S1C64D2", 1: "K3S1C32 - K3S1C32D2"}
# Input pixels per side of an attention cell: P^{l=3} is the input / 8, pooled 2x for the ACM
# (§3.2), so the grid is the input / 16 (32x32 for the paper's 512x512).
CELL = 16


def cell_mask(hole):
    """The attention grid's hole: float32 [B, H / CELL, W / CELL, 1], 1 where the cell holds
    any hole pixel of ``hole`` [B, H, W, 1] (non-zero = hole)."""
    return ops.cast(block_any(hole, CELL, CELL), "float32")

_CONV = re.compile(r"K(\d+)S(\d+)C(\d+)(?:D(\d+))?$")


def paste(fill, image, hole):
    """``fill`` inside the hole (1 = hole), ``image`` outside: the one paste of a fill."""
    return fill * hole + image * (1.0 - hole)


def parse_spec(spec):
    """Parse an appendix layer list into (op, args) tuples."""
    parsed = []
    for token in (t.strip() for t in spec.split(" - ")):
        match = _CONV.match(token)
        if match:
            k, s, c, d = match.groups()
            parsed.append(("conv", dict(kernel_size=int(k), strides=int(s), filters=int(c),
                                        dilation_rate=int(d or 1))))
        elif token in ("downsample(2x)", "upsample(2x)", "clip"):
            parsed.append((token.split("(")[0], {}))
        else:
            raise ValueError(f"unknown layer token {token!r} in spec {spec!r}")
    return parsed


def build_stack(spec, gate, prefix, final_upsample="nearest"):
    """Keras layers for a spec. A 3-channel conv followed by ``clip`` is the
    plain output convolution; every other conv is gated (§3.3: LWGC on all
    layers). Inner up-sampling is nearest (DeepFill's gen_deconv); an
    up-sampling that follows ``clip`` resizes the image and uses ``final_upsample``."""
    parsed = parse_spec(spec)
    tokens = [t.strip() for t in spec.split(" - ")]
    layers = []
    for index, (op, args) in enumerate(parsed):
        # The layer's token in the name: weights are saved and loaded by name, so a
        # changed or reordered layer list fails to load instead of loading wrongly.
        name = f"{prefix}_{index}"
        if op == "conv":
            name += "_" + tokens[index].lower()
        if op == "conv":
            if index + 1 < len(parsed) and parsed[index + 1][0] == "clip":
                layers.append(ClippedConv2D(args["filters"], args["kernel_size"], name=name))
            else:
                layers.append(GatedConv2D(gate=gate, name=name, **args))
        elif op == "downsample":
            layers.append(keras.layers.AveragePooling2D(2, name=name))
        elif op == "upsample":
            after_clip = index > 0 and parsed[index - 1][0] == "clip"
            interpolation = final_upsample if after_clip else "nearest"
            layers.append(Upsample2x(interpolation, name=name))
        # "clip" is folded into ClippedConv2D.
    return layers


def _apply(layers, x):
    for layer in layers:
        x = layer(x)
    return x


@keras.saving.register_keras_serializable(package="hifill")
class Generator(keras.Model):
    """HiFill generator: coarse network, then refine network with shared attention.

    The generator sees the masked image ``x * (1 - m)`` and the mask ``m``
    (§3.5). The coarse network runs at half resolution with single-channel
    gates; its output replaces the hole of the input, and the refine network
    computes attention scores once from ``P^{l=3}`` down-sampled 2x (the
    Attention Computing Branch) and transfers at l = 1, 2, 3.

    Input height and width must be multiples of ``CELL`` = 16 (the attention grid is
    H/16 x W/16: 32x32 for the paper's 512x512).

    Args:
        coarse_gate: gate kind of the coarse network (paper: ``"sc"``).
        refine_gate: gate kind of the refine network (paper's final choice,
            §4.2: ``"pw"``).
        softmax_scale: softmax temperature of the attention (authors' code: 10).
        attention_patch_size: patch side for the cosine similarity (3).
        transfer_patch_multiple: patch side of the transfer in grid cells (1).
        network_pixels: the network input budget the model was trained for (its
            training crop's pixels), CRA's default ``max_pixels``; None: the
            paper's 512x512. Stored with the weights (``hifill_tf.weights``).

    Call: ``generator(image, mask)`` with image float32 [B, H, W, 3] in
    [-1, 1] and mask float32 [B, H, W, 1] (1 = hole). Returns a dict with
    ``"coarse"`` and ``"refined"`` (raw outputs in [-1, 1]), ``"inpainted"``
    (refined pasted into the hole of the input) and ``"scores"``
    [B, n, n], n = (H/16) * (W/16), laid out [source, target]. Pass
    ``training=True`` to take gradients: otherwise, on TensorFlow, its dilated
    convolutions are single ops, which have no gradient on a CPU without oneDNN.
    Runs on the TensorFlow and JAX backends; on TensorFlow it traces with unknown
    batch, height and width.
    """

    def __init__(self, coarse_gate="sc", refine_gate="pw", softmax_scale=10.0,
                 attention_patch_size=3, transfer_patch_multiple=1, network_pixels=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.network_pixels = network_pixels
        self.coarse_gate = coarse_gate
        self.refine_gate = refine_gate
        self.softmax_scale = softmax_scale
        self.attention_patch_size = attention_patch_size
        self.transfer_patch_multiple = transfer_patch_multiple

        self.coarse = build_stack(COARSE_SPEC, coarse_gate, "coarse", final_upsample="bilinear")
        self.refine = {name: build_stack(spec, refine_gate, f"refine_{name}")
                       for name, spec in REFINE_SPEC.items()}
        self.branches = {level: build_stack(spec, refine_gate, f"transfer{level}")
                         for level, spec in TRANSFER_SPEC.items()}
        self.attention_pool = keras.layers.AveragePooling2D(2, name="attention_downsample")
        self.attention = AttentionComputing(softmax_scale, attention_patch_size, name="acm")
        self.transfers = {level: AttentionTransfer(transfer_patch_multiple, name=f"atm{level}")
                          for level in TRANSFER_SPEC}

    def build(self, image_shape=None, hole_shape=None):
        # Variable shapes do not depend on the spatial size, so a tiny dummy
        # pass builds every sub-layer (also used when loading a .keras file).
        if self.built:
            return
        self.call(ops.zeros((1, 32, 32, 3)), ops.zeros((1, 32, 32, 1)))
        self.built = True

    def build_from_config(self, config):
        self.build()

    def call(self, image, hole, training=None):
        # A cast, not convert_to_tensor: under a mixed policy Keras hands us float16.
        image = ops.cast(image, "float32")
        hole = ops.cast(hole, "float32")
        masked = image * (1.0 - hole)
        # Casts keep the image path in float32 under a mixed-precision policy.
        coarse = ops.cast(_apply(self.coarse, ops.concatenate([masked, hole], axis=-1)), "float32")

        x = ops.concatenate([paste(coarse, image, hole), hole], axis=-1)
        p1 = _apply(self.refine["encoder1"], x)
        p2 = _apply(self.refine["encoder2"], p1)
        p3 = _apply(self.refine["encoder3"], p2)

        cells = cell_mask(hole)
        scores = self.attention(self.attention_pool(p3), cells)

        def branch(level, features):
            return _apply(self.branches[level], self.transfers[level](features, scores, cells))

        x = _apply(self.refine["decoder3"], ops.concatenate([p3, branch(3, p3)], axis=-1))
        x = _apply(self.refine["decoder2"], ops.concatenate([x, branch(2, p2)], axis=-1))
        x = _apply(self.refine["decoder1"], ops.concatenate([x, branch(1, p1)], axis=-1))
        refined = ops.cast(x, "float32")
        return {
            "coarse": coarse,
            "refined": refined,
            "inpainted": paste(refined, image, hole),
            "scores": ops.cast(scores, "float32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            coarse_gate=self.coarse_gate,
            refine_gate=self.refine_gate,
            softmax_scale=self.softmax_scale,
            attention_patch_size=self.attention_patch_size,
            transfer_patch_multiple=self.transfer_patch_multiple,
            network_pixels=self.network_pixels,
        )
        return config
