"""Forward time and GFLOP/s of the HiFill generator next to a plain-convolution reference.

    python bench/generator_bench.py            # full run (512x512, batch 1, XLA off and on)
    python bench/generator_bench.py --quick    # a few repeats, to check the script works

Reference network ("plain twin"): the generator's own layer list (the
appendix specs in hifill_tf.models.generator), every gated convolution
replaced by one plain ``keras.layers.Conv2D`` with the same kernel size,
stride, dilation, input and output widths at the same spatial size, with ELU,
wired with the same concatenations and resampling, but without the gate
branches and without contextual attention. Its FLOPs are exactly the
generator's feature and output convolutions, so comparing GFLOP/s asks: how much does
everything the generator adds (gates, attention matmuls, the elementwise
work around them) cost beyond its arithmetic? A second twin with every
dilation set to 1 (``--undilated``) shows what dilation itself costs in TF.

FLOPs are counted analytically from the shapes seen in one recorded forward
pass (conv: 2*k*k*Cin*Cout*Hout*Wout, depthwise: 2*k*k*C*Hout*Wout,
attention: 2*n*n*patch for the cosine matrix and each transfer) and
cross-checked with TensorFlow's profiler (``tf.compat.v1.profiler``
float_ops of the traced graph, grouped by op type). Biases, activations, the
gate product and the softmax are elementwise; the profiler rows show how
small they are, and the totals leave them out.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets TF log level and sys.path before TF is imported)

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 512, "Square input side (multiple of 16).")
flags.DEFINE_integer("batch", 1, "Batch size.")
flags.DEFINE_integer("repeats", 15, "Timed runs of each network, interleaved; the median is reported.")
flags.DEFINE_integer("warmup", 3, "Untimed runs of each network first (tracing, XLA compilation).")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings to measure: off (the serving path), on "
                  "(tf.function(jit_compile=True)).")
flags.DEFINE_bool("undilated", True, "Also time the plain twin with every dilation set to 1.")
flags.DEFINE_bool("quick", False, "3 repeats, 1 warm-up: checks that the script runs, numbers are rough.")
flags.DEFINE_string("weights", None, "Generator weights .npz; default: random initialisation.")
flags.DEFINE_float("target_ratio", 0.75, "Target: generator GFLOP/s at least this fraction of the twin's.")
flags.DEFINE_float("target_seconds", 0.5, "Target: median forward time at most this many seconds.")


def build_plain_twin(dilated=True):
    """The reference network described in the module docstring."""
    import keras
    import tensorflow as tf

    from hifill_tf.layers.resampling import Upsample2x
    from hifill_tf.models.generator import COARSE_SPEC, REFINE_SPEC, TRANSFER_SPEC, parse_spec

    def stack(spec, prefix, final_upsample="nearest"):
        parsed = parse_spec(spec)
        layers = []
        for index, (op, args) in enumerate(parsed):
            name = f"{prefix}_{index}"
            if op == "conv":
                output = index + 1 < len(parsed) and parsed[index + 1][0] == "clip"
                if not dilated:
                    args = dict(args, dilation_rate=1)
                layers.append(keras.layers.Conv2D(
                    args["filters"], args["kernel_size"], strides=args["strides"],
                    dilation_rate=args["dilation_rate"], padding="same",
                    activation=None if output else "elu", name=name))
            elif op == "clip":
                layers.append(keras.layers.Lambda(lambda x: tf.clip_by_value(x, -1.0, 1.0),
                                                  name=name))
            elif op == "downsample":
                layers.append(keras.layers.AveragePooling2D(2, name=name))
            else:
                after_clip = index > 0 and parsed[index - 1][0] == "clip"
                layers.append(Upsample2x(final_upsample if after_clip else "nearest", name=name))
        return layers

    def apply(layers, x):
        for layer in layers:
            x = layer(x)
        return x

    class PlainTwin(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.coarse = stack(COARSE_SPEC, "coarse", final_upsample="bilinear")
            self.refine = {name: stack(spec, f"refine_{name}") for name, spec in REFINE_SPEC.items()}
            self.branches = {level: stack(spec, f"transfer{level}")
                             for level, spec in TRANSFER_SPEC.items()}

        def call(self, image, hole):
            # Same wiring as Generator.call, minus the attention (branches get P^l directly).
            masked = image * (1.0 - hole)
            coarse = apply(self.coarse, tf.concat([masked, hole], axis=-1))
            x = tf.concat([coarse * hole + masked, hole], axis=-1)
            p1 = apply(self.refine["encoder1"], x)
            p2 = apply(self.refine["encoder2"], p1)
            p3 = apply(self.refine["encoder3"], p2)
            x = apply(self.refine["decoder3"], tf.concat([p3, apply(self.branches[3], p3)], -1))
            x = apply(self.refine["decoder2"], tf.concat([x, apply(self.branches[2], p2)], -1))
            return apply(self.refine["decoder1"], tf.concat([x, apply(self.branches[1], p1)], -1))

    return PlainTwin(name="plain_twin" if dilated else "plain_twin_undilated")


def count_flops(model, image, hole):
    """Analytic FLOPs of one forward pass, by part: {part: flops}.

    Runs ``model`` once eagerly with every convolution and attention layer's
    ``call`` wrapped to record its shapes. Use a throwaway instance: the
    wrappers stay on it.
    """
    import keras

    from hifill_tf.layers.contextual_attention import AttentionComputing, AttentionTransfer

    model(image, hole)
    parts = {}

    def add(part, flops):
        parts[part] = parts.get(part, 0) + int(flops)

    def wrap(layer, count):
        original = layer.call

        def call(*args, **kwargs):
            out = original(*args, **kwargs)
            count(layer, [a.shape for a in args if hasattr(a, "shape")], out.shape)
            return out

        layer.call = call

    def conv(layer, inputs, out):
        kh, kw, cin, cout = layer.kernel.shape
        flops = 2 * kh * kw * cin * cout * out[0] * out[1] * out[2]
        is_gate = "gate" in layer.name
        is_output = cout == 3 and not is_gate
        add("gate branches" if is_gate else "output convs (to RGB)" if is_output
            else "feature convs", flops)

    def depthwise(layer, inputs, out):
        kh, kw, cin, mult = layer.kernel.shape
        add("gate branches", 2 * kh * kw * cin * mult * out[0] * out[1] * out[2])

    def attention(layer, inputs, out):
        batch, gh, gw, channels = inputs[0]
        n = gh * gw
        add("attention scores (cosine matmul, Eq. 1)",
            2 * batch * n * n * layer.patch_size ** 2 * channels)

    def transfer(layer, inputs, out):
        batch, height, width, channels = inputs[0]
        n = inputs[1][1]
        patch = height * width * channels // n
        add("attention transfers (3 levels, Eq. 3)",
            2 * batch * n * n * patch * layer.patch_multiple ** 2)

    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            wrap(layer, depthwise)
        elif isinstance(layer, keras.layers.Conv2D):
            wrap(layer, conv)
        elif isinstance(layer, AttentionComputing):
            wrap(layer, attention)
        elif isinstance(layer, AttentionTransfer):
            wrap(layer, transfer)
    model(image, hole)
    return parts


def profiler_flops(fn, image, hole):
    """float_ops per op type, from tf.compat.v1.profiler on the traced graph.

    Uses the "graph" view (one entry per node) and groups by the node's op
    type; the "op" view files every FLOP under Conv2D here.
    """
    import tensorflow as tf

    concrete = tf.function(fn).get_concrete_function(
        tf.TensorSpec(image.shape, tf.float32), tf.TensorSpec(hole.shape, tf.float32))
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    profile = tf.compat.v1.profiler.profile(graph=concrete.graph, cmd="graph", options=options)
    nodes, stack = {}, [profile]
    while stack:
        node = stack.pop()
        if node.float_ops:
            nodes[node.name] = node.float_ops
        stack.extend(node.children)
    by_type = {}
    for name, value in nodes.items():
        kind = concrete.graph.get_operation_by_name(name).type
        by_type[kind] = by_type.get(kind, 0) + value
    return by_type


def main(argv):
    del argv
    load_start = os.getloadavg()
    if FLAGS.quick:
        FLAGS.repeats, FLAGS.warmup = 3, 1
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notices: each network is traced per XLA mode
    if FLAGS.size % 16:
        raise app.UsageError(f"--size must be a multiple of 16; got {FLAGS.size}")
    size, batch = FLAGS.size, FLAGS.batch
    generator, weights = common.build_generator(FLAGS.weights)
    twins = {"plain twin": build_plain_twin(dilated=True)}
    if FLAGS.undilated:
        twins["plain twin, dilation 1"] = build_plain_twin(dilated=False)

    rng = tf.random.Generator.from_seed(0)
    image = rng.uniform([batch, size, size, 3], -1.0, 1.0)
    hole = tf.cast(rng.uniform([batch, size, size, 1]) < 0.2, tf.float32)
    hole = tf.nn.max_pool2d(hole, 15, 1, "SAME")  # blobs rather than salt noise
    hole = tf.cast(tf.image.resize(hole[:, ::8, ::8], [size, size], "nearest") > 0.5, tf.float32)

    # ---- FLOPs
    keras.utils.set_random_seed(1)
    from hifill_tf.models.generator import Generator

    counting = Generator()
    counting.build()
    flops = {"generator": count_flops(counting, image, hole)}
    for name, dilated in (("plain twin", True), ("plain twin, dilation 1", False)):
        if name in twins:
            flops[name] = count_flops(build_plain_twin(dilated), image, hole)
    totals = {name: sum(parts.values()) for name, parts in flops.items()}

    def conv_part(parts):
        return sum(v for k, v in parts.items() if "attention" not in k)

    prof = {name: profiler_flops(lambda x, m, net=net: net(x, m), image, hole)
            for name, net in {"generator": generator, **twins}.items()}

    conv_ops = ("Conv2D", "DepthwiseConv2dNative")

    def prof_sum(ops, kinds=None, exclude=()):
        return sum(v for k, v in ops.items() if (kinds is None or k in kinds) and k not in exclude)

    part_names = []
    for parts in flops.values():
        part_names += [p for p in parts if p not in part_names]
    rows = [[part] + [f"{flops[name].get(part, 0) / 1e9:.2f}" for name in flops]
            for part in part_names]
    rows.append(["**total (analytic)**"] + [f"**{totals[name] / 1e9:.2f}**" for name in flops])
    checks = (
        ("convolutions, analytic", lambda name: conv_part(flops[name])),
        ("convolutions, profiler", lambda name: prof_sum(prof[name], conv_ops)),
        ("attention matmuls, analytic", lambda name: totals[name] - conv_part(flops[name])),
        ("attention matmuls (BatchMatMulV2), profiler",
         lambda name: prof_sum(prof[name], ("BatchMatMulV2", "BatchMatMul", "MatMul"))),
        ("elementwise and pooling, profiler (not in the totals)",
         lambda name: prof_sum(prof[name], exclude=conv_ops + ("BatchMatMulV2", "BatchMatMul",
                                                               "MatMul"))),
    )
    for label, value in checks:
        rows.append([label] + [f"{value(name) / 1e9:.2f}" if name in prof else "-"
                               for name in flops])

    # ---- timing
    networks = {"generator": generator, **twins}
    functions, meta = {}, {}
    for mode in FLAGS.xla:
        if mode not in ("off", "on"):
            raise app.UsageError(f"--xla takes off and/or on; got {mode!r}")
        for name, net in networks.items():
            fn = tf.function(lambda x, m, net=net: net(x, m), jit_compile=mode == "on")
            functions[(name, mode)] = lambda fn=fn: fn(image, hole)
            meta[(name, mode)] = name
    print(f"timing {len(functions)} configurations: {FLAGS.warmup} warm-up + {FLAGS.repeats} "
          f"interleaved runs each ...", file=sys.stderr)
    results = common.measure(functions, FLAGS.repeats, FLAGS.warmup)

    rows_t = []
    targets = []
    for mode in FLAGS.xla:
        ref = results[("plain twin", mode)]
        ref_rate = totals["plain twin"] / ref["median"]
        for name in networks:
            r = results[(name, mode)]
            rate = totals[name] / r["median"]
            rows_t.append([name, mode, f"{totals[name] / 1e9:.1f}", common.fmt_seconds(r["median"]),
                           f"{common.fmt_seconds(r['min'])} - {common.fmt_seconds(r['max'])}",
                           r["runs"], f"{rate / 1e9:.1f}", f"{rate / ref_rate:.0%}"])
        gen = results[("generator", mode)]
        ratio = totals["generator"] / gen["median"] / ref_rate
        targets.append(
            f"- XLA {mode}: generator at {ratio:.0%} of the plain twin's GFLOP/s (target >= "
            f"{FLAGS.target_ratio:.0%}): {common.verdict(ratio >= FLAGS.target_ratio)}; "
            f"{size}x{size} forward {common.fmt_seconds(gen['median'])} (target <= "
            f"{FLAGS.target_seconds:g} s): {common.verdict(gen['median'] <= FLAGS.target_seconds)}")

    print(f"## Generator forward pass, {size}x{size}, batch {batch}\n")
    print("\n".join(common.machine_lines(
        xla="per row (tf.function(jit_compile=True) when on)",
        extra=[f"weights: {weights}",
               f"{FLAGS.warmup} warm-up run(s), then {FLAGS.repeats} timed runs per row, all rows "
               "interleaved; median reported"],
        load_start=load_start)))
    print(f"\n### FLOPs per forward pass (GFLOP, {size}x{size}, batch {batch})\n")
    print(common.markdown_table(["part"] + list(flops), rows))
    print("\nTotals count convolutions and attention matmuls (2 FLOPs per multiply-add). "
          "Profiler rows: tf.compat.v1.profiler float_ops of the traced graph, by op type; "
          "elementwise work (bias, ELU, sigmoid, gate product, softmax) is small and left "
          "out of the totals. The dilation-1 twin has the same FLOPs as the plain twin.")
    print("\n### Forward time\n")
    print(common.markdown_table(
        ["network", "XLA", "GFLOP", "median", "min - max", "runs", "GFLOP/s", "vs plain twin"],
        rows_t))
    print("\n### Targets\n")
    print("\n".join(targets))


if __name__ == "__main__":
    app.run(main)
