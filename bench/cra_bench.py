"""Time and peak memory of full-resolution inpainting (CRA, §3.1-3.2) from 512x512 to 16K.

    python bench/cra_bench.py            # full run: 512x512 ... 15360x8640
    python bench/cra_bench.py --quick    # up to 7680x4320, fewer repeats

For every size the photo (a real photo, cropped to the aspect and resized)
and a 10-25% irregular hole are written once, then each method runs in a
FRESH subprocess, so its peak RSS is its own (VmHWM, reset after the warm-up
call: the peak of the timed calls, the model and the inputs included):

- ``cra``: ``hifill_tf.api.inpaint_function`` (``cra.inpaint_tensor``),
  uint8 tensors in, uint8 tensor out: the method being benchmarked.
- ``dense``: the same pipeline as the authors' release computes it, in TF:
  whole-image average down-sampling, bilinear ``tf.image.resize`` of the
  small image and of the generator output to full size, the residual image,
  ALL cells' residual patches times the full score matrix, add, paste. Same
  grid and network size as ``cra.plan``, so only the aggregation differs;
  its output is compared with CRA's (they should agree to rounding).
- ``full``: the generator run directly at full resolution (padded to a
  multiple of 16); skipped above ``--full_max_pixels`` or when its attention
  matrices alone would not fit in ``--max_memory_gb``.
- ``opencv``: ``cv2.inpaint(..., 3, cv2.INPAINT_TELEA)`` on the same arrays.

All methods of a size run back to back in the same invocation, so the
ratios compare numbers taken under the same conditions. A worker that
overruns ``--timeout``, or runs out of memory, is reported as such.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets TF log level and sys.path before TF is imported)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
SIZES = ["512x512", "2048x2048", "3840x2160", "7680x4320", "15360x8640"]
METHODS = ["cra", "dense", "full", "opencv"]
flags.DEFINE_list("sizes", SIZES, "Photo sizes WIDTHxHEIGHT.")
flags.DEFINE_list("methods", METHODS, "Methods to run: cra, dense, full, opencv.")
flags.DEFINE_integer("repeats", 7, "Timed calls of CRA per size; the median is reported.")
flags.DEFINE_integer("baseline_repeats", 3, "Timed calls of the dense, full and opencv baselines.")
flags.DEFINE_integer("warmup", 1, "Untimed calls first (the first call traces the tf.function).")
flags.DEFINE_float("long_call", 30.0, "A baseline whose first call takes longer than this many "
                   "seconds is timed once more only.")
flags.DEFINE_integer("timeout", 1800, "Seconds before a worker subprocess is killed.")
flags.DEFINE_float("max_memory_gb", 16.0, "Skip a baseline whose estimated memory is above this "
                   "GiB (or above the memory available now).")
flags.DEFINE_integer("full_max_pixels", 2048 * 2048, "Largest photo the full-resolution generator "
                     "is tried on (its attention matrices grow with the pixel count squared).")
flags.DEFINE_integer("max_pixels", 512 * 512, "CRA network pixel budget (cra.MAX_PIXELS).")
flags.DEFINE_integer("compare_max_pixels", 7680 * 4320, "Compare CRA and dense outputs up to "
                     "this size (the outputs are saved to disk for it).")
flags.DEFINE_float("min_hole", 0.10, "Smallest hole fraction of the mask.")
flags.DEFINE_float("max_hole", 0.25, "Largest hole fraction of the mask.")
flags.DEFINE_integer("seed", 3, "Mask seed.")
flags.DEFINE_string("photo", None, "Photo to resize; default: the shared 5120x2880 photo.")
flags.DEFINE_string("weights", None, "Generator weights .npz; default: random initialisation.")
flags.DEFINE_string("work_dir", None, "Where inputs and outputs are written (default: a temp dir, removed).")
flags.DEFINE_bool("quick", False, "Sizes up to 7680x4320, 2 CRA calls, 1 baseline call, the "
                  "full-resolution generator at 512x512 only: checks the script runs.")
flags.DEFINE_float("target_seconds", 1.5, "Target: 7680x4320 median at most this.")
flags.DEFINE_float("target_rss_gb", 2.0, "Target: 7680x4320 peak RSS at most this many GiB.")
flags.DEFINE_float("target_speedup", 8.0, "Target: CRA at least this much faster than dense at 7680x4320.")
# Internal: one measurement in this process.
flags.DEFINE_enum("worker", None, ["prepare"] + METHODS, "Internal: run one worker and print RESULT json.")
flags.DEFINE_string("inputs", None, "Internal: .npz-less prefix of the worker's input arrays.")
flags.DEFINE_string("save_output", None, "Internal: write the worker's output (.npy).")
flags.DEFINE_integer("width", None, "Internal: worker photo width.")
flags.DEFINE_integer("height", None, "Internal: worker photo height.")

TARGET_SIZE = "7680x4320"
SCALING_FROM = "2048x2048"
GB = common.GB


def parse_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise app.UsageError(f"sizes are WIDTHxHEIGHT, e.g. 7680x4320; got {text!r}") from None
    return width, height


# ---------------------------------------------------------------- baselines (TF)

def dense_inpaint_function(generator, height, width, max_pixels):
    """The authors' dense formulation, traced for one photo size.

    uint8 [H, W, 3], uint8 [H, W] -> uint8 [H, W, 3]. Shapes are static (the
    plan is computed in Python), which if anything favours this baseline.
    """
    import tensorflow as tf

    from hifill_tf import cra

    factor, net_h, net_w = (int(v) for v in cra.plan(height, width, max_pixels))
    grid = (net_h // cra.CELL, net_w // cra.CELL)
    size = cra.CELL * factor
    pad = [[0, net_h * factor - height], [0, net_w * factor - width], [0, 0]]

    @tf.function
    def dense(image, mask):
        hole = tf.pad(mask[..., None] > 0, pad, mode="SYMMETRIC")  # as cra.network_input
        padded = tf.pad(image, pad, mode="SYMMETRIC")
        full = tf.cast(padded, tf.float32)
        low = tf.nn.avg_pool2d(full[None], factor, factor, "VALID")
        low_hole = tf.nn.max_pool2d(tf.cast(hole, tf.float32)[None], factor, factor, "VALID")
        inpainted, scores = cra.run_network(generator, low, low_hole)
        big = [net_h * factor, net_w * factor]
        up_low = tf.image.resize(low, big, "bilinear")[0]
        up_inpainted = tf.image.resize(inpainted, big, "bilinear")[0]
        residual = full - up_low
        patches = tf.reshape(cra.to_cells(residual, grid, size), [grid[0] * grid[1], -1])
        # Eq. (4) for every cell: [target, patch] = scores[source, target]^T @ patches.
        aggregated = tf.matmul(scores[0], patches, transpose_a=True)
        aggregated = cra.from_cells(tf.reshape(aggregated, [-1, size, size, 3]), grid, size)
        result = tf.cast(tf.clip_by_value(tf.round(up_inpainted + aggregated), 0.0, 255.0), tf.uint8)
        return tf.where(hole, result, padded)[:height, :width]

    return dense


def full_resolution_function(generator):
    """The generator at full resolution: pad to a multiple of 16, run, paste, crop."""
    import tensorflow as tf

    from hifill_tf import cra

    @tf.function
    def full(image, mask):
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        pad = [[0, -height % 16], [0, -width % 16], [0, 0]]
        hole = mask[..., None] > 0
        padded = tf.cast(tf.pad(image, pad, mode="SYMMETRIC"), tf.float32)
        out = cra.run_network(generator, padded[None], tf.pad(hole, pad)[None])[0][0]
        out = tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)
        return tf.where(hole, out[:height, :width], image)

    return full


# ---------------------------------------------------------------- worker side

def prepare(width, height, prefix):
    """Write the photo and mask for one size; return their description and CRA's plan."""
    from hifill_tf import cra

    photo, source = common.load_photo(width, height, FLAGS.photo)
    mask, fraction = common.make_mask(width, height, FLAGS.seed, FLAGS.min_hole, FLAGS.max_hole)
    np.save(prefix + "_image.npy", photo)
    np.save(prefix + "_mask.npy", mask)
    factor, net_h, net_w = (int(v) for v in cra.plan(height, width, FLAGS.max_pixels))
    return dict(photo=source, hole=fraction, factor=factor, net=[net_w, net_h],
                grid=[net_w // cra.CELL, net_h // cra.CELL])


def run_worker(method, width, height):
    mask = np.load(FLAGS.inputs + "_mask.npy")
    result = dict(input_bytes=int(mask.nbytes * 4))  # image (3 bytes/px) + mask (1 byte/px)
    if method == "opencv":
        import cv2

        image = np.load(FLAGS.inputs + "_image.npy")
        result["note"] = f"cv2 {cv2.__version__}, INPAINT_TELEA radius 3"

        def call():
            return cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA)

        # No tracing to warm up; at large sizes one call takes many seconds.
        warmup = FLAGS.warmup if height * width <= 2048 * 2048 else 0
        repeats = FLAGS.baseline_repeats
    else:
        import tensorflow as tf

        from hifill_tf import api

        generator, weights = common.build_generator(FLAGS.weights)
        result["note"] = weights
        image_t = tf.constant(np.load(FLAGS.inputs + "_image.npy"))  # the array is dropped
        mask_t = tf.constant(mask)
        del mask
        if method == "cra":
            fn = api.inpaint_function(generator, FLAGS.max_pixels)
        elif method == "dense":
            fn = dense_inpaint_function(generator, height, width, FLAGS.max_pixels)
        else:
            fn = full_resolution_function(generator)
        repeats = FLAGS.repeats if method == "cra" else FLAGS.baseline_repeats

        def call():
            return fn(image_t, mask_t)  # eager CPU call: returns once the result is computed

        warmup = FLAGS.warmup
    result["rss_before"] = common.rss_bytes()
    output = None
    try:
        first = None
        for _ in range(warmup):
            start = time.perf_counter()
            output = call()
            first = time.perf_counter() - start
        result["rss_after_warmup"] = common.rss_bytes()
        sampler = None if common.reset_peak_rss() else common.PeakSampler().__enter__()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            output = call()
            times.append(time.perf_counter() - start)
            if method != "cra" and (first if first is not None else times[0]) > FLAGS.long_call:
                break  # a slow baseline: one timed call is enough
        if sampler is None:
            result.update(peak_rss=common.peak_rss_bytes(), peak_method="VmHWM")
        else:
            sampler.__exit__(None, None, None)
            result.update(peak_rss=sampler.peak, peak_method="sampled VmRSS")
        result.update(common.summarize(times), status="ok")
    except MemoryError as error:
        result.update(status="OOM", reason=f"OOM: MemoryError {error}")
    except Exception as error:  # tf.errors.ResourceExhaustedError, cv2.error, ...
        kind = type(error).__name__
        status = "OOM" if "ResourceExhausted" in kind else "error"
        result.update(status=status, reason=f"{status}: {kind}: {str(error).splitlines()[0][:200]}")
    if FLAGS.save_output and output is not None and result["status"] == "ok":
        np.save(FLAGS.save_output, np.asarray(output))
    return result


# ---------------------------------------------------------------- orchestrator

def estimate_bytes(method, width, height, plan):
    """Rough memory need of a baseline, to skip the hopeless cases up front."""
    if method == "dense":
        f = plan["factor"]
        padded = plan["net"][0] * f * plan["net"][1] * f * 3
        return 6 * 4 * padded + 3 * padded  # ~6 float32 full-size images alive at once
    if method == "full":
        n = ((width + 15) // 16) * ((height + 15) // 16)
        return 6 * 4 * n * n + 400 * width * height  # score-sized matrices + activations
    return 0


def skip_reason(method, width, height, plan):
    if method == "full" and width * height > FLAGS.full_max_pixels:
        return f"skipped: above --full_max_pixels ({FLAGS.full_max_pixels:,} px)"
    need = estimate_bytes(method, width, height, plan)
    available = common.available_bytes()
    limit = FLAGS.max_memory_gb * GB
    if available is not None:
        limit = min(limit, 0.9 * available)
    if need > limit:
        return (f"skipped: needs ~{need / GB:.0f} GiB, limit {limit / GB:.0f} GiB "
                f"(--max_memory_gb or memory available)")
    return None


def spawn(args, timeout):
    """Run this script as a worker; return its RESULT dict (or a failure status)."""
    command = [sys.executable, os.path.abspath(__file__)] + args
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return dict(status="timeout", reason=f"timeout: more than {timeout} s")
    for line in reversed(out.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    if process.returncode == -signal.SIGKILL:
        return dict(status="OOM", reason="killed by SIGKILL (the kernel's OOM killer?)")
    tail = " | ".join(err.strip().splitlines()[-3:])[:300]
    return dict(status="error", reason=f"exit code {process.returncode}: {tail}")


def compare(path_a, path_b, mask_path):
    """Max |difference| and share of hole pixels differing by more than 2 levels."""
    a, b = np.load(path_a), np.load(path_b)
    hole = np.load(mask_path) > 0
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1)
    outside = int(diff[~hole].max()) if (~hole).any() else 0
    return dict(max=int(diff[hole].max()), over2=float((diff[hole] > 2).mean()), outside=outside)


def cell_text(result):
    if result is None:
        return "-"
    if result.get("status") != "ok":
        return result.get("reason", result.get("status"))
    return common.fmt_seconds(result["median"])


def orchestrate():
    sizes = [parse_size(s) for s in FLAGS.sizes]
    for method in FLAGS.methods:
        if method not in METHODS:
            raise app.UsageError(f"--methods takes {', '.join(METHODS)}; got {method!r}")
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix="cra_bench_")
    os.makedirs(work, exist_ok=True)
    common_args = [f"--max_pixels={FLAGS.max_pixels}", f"--warmup={FLAGS.warmup}",
                   f"--repeats={FLAGS.repeats}", f"--baseline_repeats={FLAGS.baseline_repeats}",
                   f"--long_call={FLAGS.long_call}", f"--seed={FLAGS.seed}",
                   f"--min_hole={FLAGS.min_hole}", f"--max_hole={FLAGS.max_hole}"]
    if FLAGS.weights:
        common_args.append(f"--weights={FLAGS.weights}")
    if FLAGS.photo:
        common_args.append(f"--photo={FLAGS.photo}")
    load_start = os.getloadavg()
    records = []
    try:
        for width, height in sizes:
            label = f"{width}x{height}"
            prefix = os.path.join(work, label)
            size_args = common_args + [f"--inputs={prefix}", f"--width={width}", f"--height={height}"]
            print(f"[{label}] preparing photo and mask ...", file=sys.stderr, flush=True)
            plan = spawn(["--worker=prepare"] + size_args, FLAGS.timeout)
            if plan.get("status") != "ok":
                raise RuntimeError(f"{label}: could not prepare the inputs: {plan.get('reason')}")
            record = dict(label=label, width=width, height=height, plan=plan, results={})
            compare_outputs = width * height <= FLAGS.compare_max_pixels
            for method in FLAGS.methods:
                reason = skip_reason(method, width, height, plan)
                if reason:
                    record["results"][method] = dict(status="skipped", reason=reason)
                    print(f"[{label}] {method}: {reason}", file=sys.stderr, flush=True)
                    continue
                args = [f"--worker={method}"] + size_args
                if compare_outputs and method in ("cra", "dense"):
                    args.append(f"--save_output={prefix}_{method}.npy")
                print(f"[{label}] {method} ...", file=sys.stderr, flush=True)
                started = time.time()
                result = spawn(args, FLAGS.timeout)
                record["results"][method] = result
                print(f"[{label}] {method}: {cell_text(result)} (worker {time.time() - started:.0f} s)",
                      file=sys.stderr, flush=True)
            saved = [f"{prefix}_{m}.npy" for m in ("cra", "dense")]
            if compare_outputs and all(os.path.exists(p) for p in saved):
                record["agreement"] = compare(*saved, prefix + "_mask.npy")
            for path in saved + [prefix + "_image.npy", prefix + "_mask.npy"]:
                if os.path.exists(path) and not FLAGS.work_dir:
                    os.remove(path)
            records.append(record)
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    report(records, load_start)


def report(records, load_start):
    generator_note = next((r["note"] for rec in records for m, r in rec["results"].items()
                           if m != "opencv" and r.get("note")), "n/a")
    opencv_note = next((r["note"] for rec in records for m, r in rec["results"].items()
                        if m == "opencv" and r.get("note")), None)
    print("## Full-resolution inpainting: CRA vs baselines\n")
    print("\n".join(common.machine_lines(
        xla="off (the serving path, hifill_tf.api.inpaint_function)",
        onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false"),
        extra=[f"generator: {generator_note}"] + ([f"OpenCV: {opencv_note}"] if opencv_note else []) + [
               f"photo: {records[0]['plan']['photo'] if records else '-'} (cropped to the aspect, "
               f"bicubic resize); hole: hifill_tf.data.masks.sample_mask, seed {FLAGS.seed}, "
               f"{FLAGS.min_hole:.0%}-{FLAGS.max_hole:.0%}, drawn at 1024 px and nearest-resized",
               f"CRA: {FLAGS.warmup} warm-up call(s), then {FLAGS.repeats} timed; baselines: up to "
               f"{FLAGS.baseline_repeats} timed (1 when a call takes over {FLAGS.long_call:g} s); "
               "median reported; uint8 tensors in and out (tf.constant made before timing)",
               "each method and size in a fresh subprocess; peak RSS = VmHWM over the timed calls "
               "(reset after the warm-up), the process's TF, model and inputs included"],
        load_start=load_start)))

    rows = []
    for rec in records:
        for method in FLAGS.methods:
            r = rec["results"].get(method)
            if r is None:
                continue
            ok = r.get("status") == "ok"
            rows.append([rec["label"], method, cell_text(r),
                         f"{common.fmt_seconds(r['min'])} - {common.fmt_seconds(r['max'])}" if ok else "-",
                         r.get("runs", "-") if ok else "-",
                         common.fmt_mb(r.get("rss_before")), common.fmt_mb(r.get("peak_rss")) if ok else "-"])
    print("\n### Every measurement\n")
    print(common.markdown_table(["size", "method", "median", "min - max", "runs",
                                 "RSS before the first call", "peak RSS (timed calls)"], rows))

    rows = []
    for rec in records:
        plan, res = rec["plan"], rec["results"]
        cra, dense = res.get("cra"), res.get("dense")
        speedup = "-"
        if cra and dense and cra.get("status") == "ok" and dense.get("status") == "ok":
            speedup = f"{dense['median'] / cra['median']:.1f}x"
        agreement = rec.get("agreement")
        agree = (f"max {agreement['max']}, {agreement['over2']:.3%} > 2; outside hole "
                 f"{agreement['outside']}" if agreement else "-")
        rows.append([rec["label"], f"{rec['width'] * rec['height'] / 1e6:.1f} MP",
                     f"{plan['hole']:.1%}",
                     f"f={plan['factor']}, {plan['net'][0]}x{plan['net'][1]}, "
                     f"{plan['grid'][0]}x{plan['grid'][1]} cells",
                     cell_text(cra), common.fmt_mb(cra.get("peak_rss")) if cra and cra.get("status") == "ok" else "-",
                     cell_text(dense), speedup, cell_text(res.get("full")), cell_text(res.get("opencv")),
                     agree])
    print("\n### Summary\n")
    print(common.markdown_table(
        ["size", "pixels", "hole", "CRA plan (factor, network input, grid)", "CRA", "CRA peak RSS",
         "dense (authors' formulation)", "CRA speed-up", "generator at full res.",
         "OpenCV Telea", "CRA vs dense (levels, hole pixels)"], rows))

    print("\n### Targets\n")
    by_label = {rec["label"]: rec for rec in records}
    target = by_label.get(TARGET_SIZE)
    if target and target["results"].get("cra", {}).get("status") == "ok":
        cra = target["results"]["cra"]
        print(f"- {TARGET_SIZE} median {common.fmt_seconds(cra['median'])} (target <= "
              f"{FLAGS.target_seconds:g} s): {common.verdict(cra['median'] <= FLAGS.target_seconds)}; "
              f"peak RSS {cra['peak_rss'] / GB:.2f} GiB (target <= {FLAGS.target_rss_gb:g} GiB): "
              f"{common.verdict(cra['peak_rss'] <= FLAGS.target_rss_gb * GB)}")
        dense = target["results"].get("dense", {})
        if dense.get("status") == "ok":
            speedup = dense["median"] / cra["median"]
            print(f"- {TARGET_SIZE}: {speedup:.1f}x faster than the dense formulation (target >= "
                  f"{FLAGS.target_speedup:g}x): {common.verdict(speedup >= FLAGS.target_speedup)}")
        else:
            print(f"- {TARGET_SIZE}: dense formulation {cell_text(dense) if dense else 'not run'}")
        base = by_label.get(SCALING_FROM)
        if base and base["results"].get("cra", {}).get("status") == "ok":
            t_ratio = cra["median"] / base["results"]["cra"]["median"]
            p_ratio = (target["width"] * target["height"]) / (base["width"] * base["height"])
            print(f"- {SCALING_FROM} -> {TARGET_SIZE}: time x{t_ratio:.2f} for x{p_ratio:.2f} the "
                  f"pixels ({t_ratio / p_ratio:.0%} of linear growth)")
    else:
        print(f"- {TARGET_SIZE} was not measured (or failed): targets not evaluated")


def main(argv):
    del argv
    if FLAGS.worker:
        width, height = FLAGS.width, FLAGS.height
        try:
            result = (dict(prepare(width, height, FLAGS.inputs), status="ok")
                      if FLAGS.worker == "prepare" else run_worker(FLAGS.worker, width, height))
        except Exception as error:
            result = dict(status="error", reason=f"{type(error).__name__}: {error}"[:300])
        print("RESULT " + json.dumps(result), flush=True)
        return
    if FLAGS.quick:
        FLAGS.sizes = [s for s in FLAGS.sizes if np.prod(parse_size(s)) <= 7680 * 4320]
        FLAGS.repeats, FLAGS.baseline_repeats = 2, 1
        FLAGS.full_max_pixels = min(FLAGS.full_max_pixels, 512 * 512)
    orchestrate()


if __name__ == "__main__":
    app.run(main)
