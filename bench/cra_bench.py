"""Time and peak memory of full-resolution inpainting (CRA, §3.1-3.2) from 512x512 to 16K.

Two modes, one harness (inputs written once per size, every measurement in a fresh
worker subprocess, medians after warm-up, peak RSS per worker):

    python bench/cra_bench.py                  # --mode=scaling: CRA against the baselines
    python bench/cra_bench.py --mode=users     # what users get
    python bench/cra_bench.py --mode=users --quick   # small sizes, one hole: checks it runs

``--mode=scaling`` (512x512 ... 15360x8640, one 10-25 % irregular hole per size, random
weights unless --weights): the photo (a real photo, cropped to the aspect and resized)
and the hole are written once per size, then each method runs in its own worker:

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
- ``opencv``: ``hifill_tf.evaluate.telea`` (``cv2.inpaint`` radius 3, INPAINT_TELEA).

``--mode=users`` (2048x1152 ... 15360x8640): the bundled model
(``hifill_tf/weights/hifill_default.npz``) on a real photo (``examples/bridge-4352x2448.jpg``,
cropped and Lanczos-resized) with seeded holes of three kinds (``bench/holes.py``: ``blob``,
``strokes``, ``scratch``) at 5, 15, 25 and 40 %, each case and method in its own worker:

- ``hifill``: ``hifill_tf.inpaint`` (NumPy in and out, through ``api.inpaint_function``)
  at the model's own budget (``cra.network_pixels``: 256x256 for the bundled model);
- ``hifill_512``: the same at a 512x512 budget;
- ``release_numpy``: the authors' release-style post-processing in NumPy
  (``bench/release.py``): photo resized to 512x512, the same generator, dense Eq. (4) over
  all 32x32 cells at full resolution;
- ``opencv``: Telea, as above.

Peak RSS is the worker's VmHWM over the timed calls, reset after the warm-up (TF, the
model and the inputs included). All methods of a size run back to back in the same
invocation, so the ratios compare numbers taken under the same conditions. A worker that
overruns ``--timeout``, or runs out of memory, is reported as such.
"""

import json
import math
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

import holes  # noqa: E402
from hifill_tf.console import format_seconds  # noqa: E402  (no TensorFlow import)
from hifill_tf.imports import UNUSED_BY_INFERENCE, skip_unused_imports  # noqa: E402
from hifill_tf.io import atomic_file  # noqa: E402

FLAGS = flags.FLAGS
MODES = ("scaling", "users")
SIZES = {"scaling": ["512x512", "2048x2048", "3840x2160", "7680x4320", "15360x8640"],
         "users": ["2048x1152", "3840x2160", "7680x4320", "15360x8640"]}
METHODS = {"scaling": ["cra", "dense", "full", "opencv"],
           "users": ["hifill", "hifill_512", "release_numpy", "opencv"]}
ALL_METHODS = list(dict.fromkeys(METHODS["scaling"] + METHODS["users"]))
REPEATS = {"scaling": 7, "users": 3}
USERS_PHOTO = os.path.join(common.REPO, "examples", "bridge-4352x2448.jpg")
USERS_BUDGET = 512 * 512  # hifill_512 and release_numpy's network size
FRACTIONS = ["5", "15", "25", "40"]
FULL_WARMUP_PIXELS = 2048 * 2048  # above: Telea is not warmed up, release_numpy only traces
QUICK_USERS = dict(sizes=["512x288", "1280x720"], kinds=["strokes"], fractions=["15"])

flags.DEFINE_enum("mode", "scaling", MODES, "scaling: CRA against the dense formulation, the "
                  "generator at full resolution and Telea, one hole per size, random weights "
                  "unless --weights. users: the bundled model through hifill_tf.inpaint at its "
                  "own budget and at 512x512 against release_numpy and Telea, on a real photo "
                  "with blob / strokes / scratch holes at several fractions.")
flags.DEFINE_list("sizes", None, "Photo sizes WIDTHxHEIGHT; default: scaling "
                  f"{','.join(SIZES['scaling'])}; users {','.join(SIZES['users'])}.")
flags.DEFINE_list("methods", None, f"Methods to run; default: scaling {','.join(METHODS['scaling'])}; "
                  f"users {','.join(METHODS['users'])}.")
flags.DEFINE_list("kinds", list(holes.KINDS), "users: hole kinds (bench/holes.py).")
flags.DEFINE_list("fractions", FRACTIONS, "users: hole fractions in percent of the photo.")
flags.DEFINE_integer("repeats", None, "Timed calls of cra / hifill / hifill_512 per case; the median "
                     f"is reported. Default: scaling {REPEATS['scaling']}, users {REPEATS['users']}.")
flags.DEFINE_integer("baseline_repeats", 3, "Timed calls of the other methods.")
flags.DEFINE_integer("warmup", 1, "Untimed calls first (the first call traces the tf.function). "
                     "Above 2048x2048 the baselines warm up less: Telea not at all, release_numpy "
                     "only its 512x512 network call.")
flags.DEFINE_float("long_call", 30.0, "A baseline whose first call takes longer than this many "
                   "seconds is timed once more only.")
flags.DEFINE_integer("timeout", 1800, "Seconds before a worker subprocess is killed.")
flags.DEFINE_float("max_memory_gb", 16.0, "Skip a baseline whose estimated memory is above this "
                   "GiB (or above the memory available now).")
flags.DEFINE_integer("full_max_pixels", 2048 * 2048, "Largest photo the full-resolution generator "
                     "is tried on (its attention matrices grow with the pixel count squared).")
flags.DEFINE_integer("max_pixels", 512 * 512, "scaling: CRA network pixel budget (the paper's).")
flags.DEFINE_integer("compare_max_pixels", 7680 * 4320, "scaling: compare CRA and dense outputs up "
                     "to this size (the outputs are saved to disk for it).")
flags.DEFINE_float("min_hole", 0.10, "scaling: smallest hole fraction of the mask.")
flags.DEFINE_float("max_hole", 0.25, "scaling: largest hole fraction of the mask.")
flags.DEFINE_integer("seed", 3, "Mask seed.")
flags.DEFINE_string("photo", None, "Photo to crop and resize; default: scaling the shared "
                    "5120x2880 photo, users examples/bridge-4352x2448.jpg.")
flags.DEFINE_string("weights", None, "Generator weights .npz; default: scaling random "
                    "initialisation, users the bundled model.")
flags.DEFINE_string("work_dir", None, "Where inputs and outputs are written (default: a temp dir, removed).")
flags.DEFINE_string("output", None, "Also write the Markdown report to this file (atomically).")
flags.DEFINE_string("json", None, "Write every measurement as JSON to this file (atomically).")
flags.DEFINE_bool("quick", False, "Check that the script runs: scaling sizes up to 7680x4320, 2 CRA "
                  "calls, 1 baseline call, the full-resolution generator at 512x512 only; users "
                  f"sizes {','.join(QUICK_USERS['sizes'])}, {QUICK_USERS['kinds'][0]} holes of "
                  f"{QUICK_USERS['fractions'][0]} %, 1 call of each method (flags given "
                  "explicitly win).")
flags.DEFINE_float("target_seconds", 1.5, "Target: 7680x4320 median at most this.")
flags.DEFINE_float("target_rss_gb", 2.0, "Target: 7680x4320 peak RSS at most this many GiB.")
flags.DEFINE_float("target_speedup", 8.0, "Target: CRA at least this much faster than dense at 7680x4320.")
# Internal: one measurement in this process.
flags.DEFINE_enum("worker", None, ["prepare", "prepare_users"] + ALL_METHODS,
                  "Internal: run one worker and print RESULT json.")
flags.DEFINE_string("inputs", None, "Internal: .npz-less prefix of the worker's input arrays.")
flags.DEFINE_string("mask_file", None, "Internal: the worker's mask (.npy); default: INPUTS_mask.npy.")
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

def to_cells(image, grid, size):
    """[gh*size, gw*size, C] -> [gh*gw, size, size, C], cells row-major."""
    import tensorflow as tf

    channels = image.shape[-1]
    x = tf.reshape(image, [grid[0], size, grid[1], size, channels])
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3, 4]), [grid[0] * grid[1], size, size, channels])


def from_cells(cells, grid, size):
    """Inverse of ``to_cells``: [gh*gw, size, size, C] -> [gh*size, gw*size, C]."""
    import tensorflow as tf

    channels = cells.shape[-1]
    x = tf.reshape(cells, [grid[0], grid[1], size, size, channels])
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3, 4]), [grid[0] * size, grid[1] * size, channels])


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
        patches = tf.reshape(to_cells(residual, grid, size), [grid[0] * grid[1], -1])
        # Eq. (4) for every cell: [target, patch] = scores[source, target]^T @ patches.
        aggregated = tf.matmul(scores[0], patches, transpose_a=True)
        aggregated = from_cells(tf.reshape(aggregated, [-1, size, size, 3]), grid, size)
        result = tf.cast(tf.clip_by_value(tf.round(up_inpainted + aggregated), 0.0, 255.0), tf.uint8)
        return tf.where(hole, result, padded)[:height, :width]

    return dense


def full_resolution_function(generator):
    """The generator at full resolution: pad to whole attention cells, run, paste, crop."""
    import tensorflow as tf

    from hifill_tf import cra

    @tf.function
    def full(image, mask):
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        pad = [[0, -height % cra.CELL], [0, -width % cra.CELL], [0, 0]]
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
                grid=[net_w // cra.CELL, net_h // cra.CELL], cell=cra.CELL)


def prepare_users(width, height, prefix):
    """users: write the photo and every case's mask for one size; return their description."""
    photo, source = common.load_photo(width, height, FLAGS.photo or USERS_PHOTO, resample="lanczos")
    np.save(prefix + "_image.npy", photo)
    cases = []
    for kind in FLAGS.kinds:
        for percent in FLAGS.fractions:
            started = time.perf_counter()
            mask, fraction, params = holes.make_hole(width, height, kind, float(percent) / 100,
                                                     FLAGS.seed)
            path = f"{prefix}_{kind}_{percent}.npy"
            np.save(path, mask)
            cases.append(dict(params, percent=percent, fraction=fraction, mask=path,
                              seconds=time.perf_counter() - started))
    return dict(photo=source, cases=cases)


def worker_generator(method):
    """The generator of a worker: scaling: random or --weights; users: the bundled model."""
    if method in METHODS["scaling"]:
        return common.build_generator(FLAGS.weights)
    from hifill_tf import api, cra, weights

    if FLAGS.weights:
        generator = weights.load_generator(FLAGS.weights)
        name = os.path.basename(FLAGS.weights)
    else:
        generator = api.default_generator()  # what hifill_tf.inpaint uses
        name = f"bundled {os.path.basename(weights.DEFAULT_WEIGHTS)}"
    return generator, f"{name}, own budget {budget_label(cra.network_pixels(generator))}"


def budget_label(pixels):
    side = math.isqrt(pixels)
    return f"{side}x{side}" if side * side == pixels else f"{pixels:,} px"


def method_call(method, image, mask, result):
    """The timed call of ``method`` on uint8 arrays; fills the worker's notes into ``result``.

    Returns (call, warm-up call or None, timed repeats).
    """
    height, width = mask.shape
    large = height * width > FULL_WARMUP_PIXELS
    if method == "opencv":
        import cv2

        from hifill_tf.evaluate import telea

        result["note"] = f"cv2 {cv2.__version__}, INPAINT_TELEA radius 3"
        # No tracing to warm up; at large sizes one call takes many seconds.
        call = lambda: telea(image, mask)  # noqa: E731
        return call, None if large else call, FLAGS.baseline_repeats

    import tensorflow as tf

    from hifill_tf import api, cra

    generator, result["note"] = worker_generator(method)
    if method in ("hifill", "hifill_512"):
        budget = cra.network_pixels(generator, None if method == "hifill" else USERS_BUDGET)
        factor, net_h, net_w = (int(v) for v in cra.plan(height, width, budget))
        result["plan"] = dict(budget=budget, factor=factor, net=[net_w, net_h],
                              grid=[net_w // cra.CELL, net_h // cra.CELL], cell=cra.CELL)
        call = lambda: api.inpaint(image, mask, generator=generator, max_pixels=budget)  # noqa: E731
        return call, call, FLAGS.repeats
    if method == "release_numpy":
        import release

        network = tf.function(lambda small, hole: cra.run_network(generator, small[None], hole[None]))

        def run_network(small, hole):
            filled, scores = network(tf.constant(small), tf.constant(hole))
            return filled[0].numpy(), scores[0].numpy()

        size = release.NETWORK_SIZE
        result["plan"] = dict(net=[size, size], grid=[size // release.CELL] * 2)
        call = lambda: release.release_inpaint(image, mask, run_network)  # noqa: E731
        if large:  # the warm-up that matters is tracing the generator; the rest is NumPy
            return call, lambda: run_network(*release.network_input(image[:64, :64], mask[:64, :64] > 0)), \
                FLAGS.baseline_repeats
        return call, call, FLAGS.baseline_repeats

    # scaling: tensors in and out (uint8 image, a mask as each method takes it), made before
    # timing (the arrays are dropped)
    image_t = tf.constant(image)
    mask_t = tf.constant(mask > 0 if method == "cra" else mask)  # inpaint_function takes bool
    if method == "cra":
        fn = api.inpaint_function(generator, FLAGS.max_pixels)
    elif method == "dense":
        fn = dense_inpaint_function(generator, height, width, FLAGS.max_pixels)
    else:
        fn = full_resolution_function(generator)

    def call():
        return fn(image_t, mask_t)  # eager CPU call: returns once the result is computed

    return call, call, FLAGS.repeats if method == "cra" else FLAGS.baseline_repeats


def run_worker(method, width, height):
    mask = np.load(FLAGS.mask_file or FLAGS.inputs + "_mask.npy")
    result = dict(input_bytes=int(mask.nbytes * 4))  # image (3 bytes/px) + mask (1 byte/px)
    image = np.load(FLAGS.inputs + "_image.npy")
    call, warmup_call, repeats = method_call(method, image, mask, result)
    if method in METHODS["scaling"] and method != "opencv":
        del image, mask  # the tensors made from them are the inputs
    timed_every_call = method in ("cra", "hifill", "hifill_512")
    result["rss_before"] = common.rss_bytes()
    output = None
    try:
        first = None
        for _ in range(FLAGS.warmup if warmup_call else 0):
            output = None
            start = time.perf_counter()
            output = warmup_call()
            first = time.perf_counter() - start
        result["rss_after_warmup"] = common.rss_bytes()
        sampler = None if common.reset_peak_rss() else common.PeakSampler().__enter__()
        times = []
        for _ in range(repeats):
            output = None  # a caller keeps one result, not the last one during the next call
            start = time.perf_counter()
            output = call()
            times.append(time.perf_counter() - start)
            slow = (first if first is not None and warmup_call is call else times[0]) > FLAGS.long_call
            if not timed_every_call and slow:
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
        cell = plan["cell"]  # the orchestrator does not import TensorFlow: the worker's cra.CELL
        n = -(-width // cell) * -(-height // cell)
        return 6 * 4 * n * n + 400 * width * height  # score-sized matrices + activations
    if method == "release_numpy":
        import release

        grid = release.NETWORK_SIZE // release.CELL
        padded = (-(-width // grid) * grid) * (-(-height // grid) * grid)
        return 2 * 4 * 3 * padded + 10 * padded  # cells and their product (float32) + uint8 arrays
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
    except BaseException:  # Ctrl-C or SIGTERM: the worker is in its own session, stop it too
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
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


def worker_args():
    """The flags every worker of this run gets."""
    args = [f"--mode={FLAGS.mode}", f"--max_pixels={FLAGS.max_pixels}", f"--warmup={FLAGS.warmup}",
            f"--repeats={FLAGS.repeats}", f"--baseline_repeats={FLAGS.baseline_repeats}",
            f"--long_call={FLAGS.long_call}", f"--seed={FLAGS.seed}",
            f"--min_hole={FLAGS.min_hole}", f"--max_hole={FLAGS.max_hole}",
            f"--kinds={','.join(FLAGS.kinds)}", f"--fractions={','.join(FLAGS.fractions)}"]
    if FLAGS.weights:
        args.append(f"--weights={FLAGS.weights}")
    if FLAGS.photo:
        args.append(f"--photo={FLAGS.photo}")
    return args


class Progress:
    """Progress lines on stderr: job i of n, elapsed time and a rough ETA.

    The ETA scales each method's last worker time by pixel count, plus a fixed cost per
    worker (TF import, model load, tracing) counted as ``OVERHEAD_PIXELS`` of work.
    """

    OVERHEAD_PIXELS = 4e6

    def __init__(self, jobs):
        self.jobs = jobs  # (method, pixels) in run order
        self.done = 0
        self.start = time.time()
        self.last = {}

    def begin(self, text):
        print(f"[{self.done + 1}/{len(self.jobs)}] {text} ...", file=sys.stderr, flush=True)

    def end(self, text, method=None, pixels=None, seconds=None):
        """One job finished (``seconds`` of worker time) or was skipped (no ``seconds``)."""
        self.done += 1
        if seconds is not None:
            self.last[method] = (pixels, seconds)
            text += f" (worker {format_seconds(seconds)})"
        eta = self.eta()
        print(f"[{self.done}/{len(self.jobs)}] {text}; elapsed {format_seconds(time.time() - self.start)}"
              + (f", ETA ~{format_seconds(eta)}" if eta is not None and self.done < len(self.jobs) else ""),
              file=sys.stderr, flush=True)

    def eta(self):
        total = 0.0
        for method, pixels in self.jobs[self.done:]:
            known = self.last.get(method) or max(self.last.values(), key=lambda v: v[1], default=None)
            if known is None:
                return None
            done_pixels, seconds = known
            total += seconds * (pixels + self.OVERHEAD_PIXELS) / (done_pixels + self.OVERHEAD_PIXELS)
        return total


def run_job(progress, label, method, args, width, height):
    """Spawn one measuring worker, with its progress lines; returns its RESULT dict."""
    progress.begin(f"{label} {method}")
    started = time.time()
    result = spawn(args, FLAGS.timeout)
    text = f"{label} {method}: {cell_text(result)}"
    if result.get("status") == "ok":
        text += f", peak RSS {common.fmt_mb(result.get('peak_rss'))}"
    progress.end(text, method, width * height, time.time() - started)
    return result


def skip_job(progress, label, method, reason):
    progress.begin(f"{label} {method}")
    progress.end(f"{label} {method}: {reason}")
    return dict(status="skipped", reason=reason)


def prepare_size(work, width, height, worker, what):
    """(label, prefix, worker args of the size, the prepare worker's result) for one size."""
    label = f"{width}x{height}"
    prefix = os.path.join(work, label)
    size_args = worker_args() + [f"--inputs={prefix}", f"--width={width}", f"--height={height}"]
    print(f"[{label}] preparing {what} ...", file=sys.stderr, flush=True)
    prepared = spawn([f"--worker={worker}"] + size_args, FLAGS.timeout)
    if prepared.get("status") != "ok":
        raise RuntimeError(f"{label}: could not prepare the inputs: {prepared.get('reason')}")
    return label, prefix, size_args, prepared


def orchestrate_scaling(work):
    sizes = [parse_size(s) for s in FLAGS.sizes]
    progress = Progress([(m, w * h) for w, h in sizes for m in FLAGS.methods])
    records = []
    for width, height in sizes:
        label, prefix, size_args, plan = prepare_size(work, width, height, "prepare",
                                                      "photo and mask")
        record = dict(label=label, width=width, height=height, plan=plan, results={})
        compare_outputs = width * height <= FLAGS.compare_max_pixels
        for method in FLAGS.methods:
            reason = skip_reason(method, width, height, plan)
            if reason:
                record["results"][method] = skip_job(progress, label, method, reason)
                continue
            args = [f"--worker={method}"] + size_args
            if compare_outputs and method in ("cra", "dense"):
                args.append(f"--save_output={prefix}_{method}.npy")
            record["results"][method] = run_job(progress, label, method, args, width, height)
        saved = [f"{prefix}_{m}.npy" for m in ("cra", "dense")]
        if compare_outputs and all(os.path.exists(p) for p in saved):
            record["agreement"] = compare(*saved, prefix + "_mask.npy")
        if not FLAGS.work_dir:
            for path in saved + [prefix + "_image.npy", prefix + "_mask.npy"]:
                if os.path.exists(path):
                    os.remove(path)
        records.append(record)
    return records


def orchestrate_users(work):
    sizes = [parse_size(s) for s in FLAGS.sizes]
    cases = len(FLAGS.kinds) * len(FLAGS.fractions)
    progress = Progress([(m, w * h) for w, h in sizes for _ in range(cases) for m in FLAGS.methods])
    records = []
    for width, height in sizes:
        label, prefix, size_args, prepared = prepare_size(work, width, height, "prepare_users",
                                                          f"the photo and {cases} masks")
        record = dict(label=label, width=width, height=height, photo=prepared["photo"], cases=[])
        for case in prepared["cases"]:
            case_label = f"{label} {case['kind']} {case['percent']}% (actual {case['fraction']:.1%})"
            results = {}
            for method in FLAGS.methods:
                reason = skip_reason(method, width, height, None)
                if reason:
                    results[method] = skip_job(progress, case_label, method, reason)
                    continue
                args = [f"--worker={method}", f"--mask_file={case['mask']}"] + size_args
                results[method] = run_job(progress, case_label, method, args, width, height)
            if not FLAGS.work_dir:
                os.remove(case["mask"])
            record["cases"].append(dict({k: v for k, v in case.items() if k != "mask"}, results=results))
        if not FLAGS.work_dir:
            os.remove(prefix + "_image.npy")
        records.append(record)
    return records


def report_scaling(records, load_start):
    lines = []
    out = lines.append
    generator_note = next((r["note"] for rec in records for m, r in rec["results"].items()
                           if m != "opencv" and r.get("note")), "n/a")
    opencv_note = next((r["note"] for rec in records for m, r in rec["results"].items()
                        if m == "opencv" and r.get("note")), None)
    out("## Full-resolution inpainting: CRA vs baselines\n")
    out("\n".join(common.machine_lines(
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
    out("\n### Every measurement\n")
    out(common.markdown_table(["size", "method", "median", "min - max", "runs",
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
    out("\n### Summary\n")
    out(common.markdown_table(
        ["size", "pixels", "hole", "CRA plan (factor, network input, grid)", "CRA", "CRA peak RSS",
         "dense (authors' formulation)", "CRA speed-up", "generator at full res.",
         "OpenCV Telea", "CRA vs dense (levels, hole pixels)"], rows))

    out("\n### Targets\n")
    by_label = {rec["label"]: rec for rec in records}
    target = by_label.get(TARGET_SIZE)
    if target and target["results"].get("cra", {}).get("status") == "ok":
        cra = target["results"]["cra"]
        out(f"- {TARGET_SIZE} median {common.fmt_seconds(cra['median'])} (target <= "
              f"{FLAGS.target_seconds:g} s): {common.verdict(cra['median'] <= FLAGS.target_seconds)}; "
              f"peak RSS {cra['peak_rss'] / GB:.2f} GiB (target <= {FLAGS.target_rss_gb:g} GiB): "
              f"{common.verdict(cra['peak_rss'] <= FLAGS.target_rss_gb * GB)}")
        dense = target["results"].get("dense", {})
        if dense.get("status") == "ok":
            speedup = dense["median"] / cra["median"]
            out(f"- {TARGET_SIZE}: {speedup:.1f}x faster than the dense formulation (target >= "
                  f"{FLAGS.target_speedup:g}x): {common.verdict(speedup >= FLAGS.target_speedup)}")
        else:
            out(f"- {TARGET_SIZE}: dense formulation {cell_text(dense) if dense else 'not run'}")
        base = by_label.get(SCALING_FROM)
        if base and base["results"].get("cra", {}).get("status") == "ok":
            t_ratio = cra["median"] / base["results"]["cra"]["median"]
            p_ratio = (target["width"] * target["height"]) / (base["width"] * base["height"])
            out(f"- {SCALING_FROM} -> {TARGET_SIZE}: time x{t_ratio:.2f} for x{p_ratio:.2f} the "
                  f"pixels ({t_ratio / p_ratio:.0%} of linear growth)")
    else:
        out(f"- {TARGET_SIZE} was not measured (or failed): targets not evaluated")
    return "\n".join(lines)


HIFILL = ("hifill", "hifill_512")
REFERENCES = ("release_numpy", "opencv")


def method_label(method, records):
    """Column name of a users-mode method, with the budget it ran at."""
    if method == "hifill":
        budget = next((r["plan"]["budget"] for rec in records for case in rec["cases"]
                       for m, r in case["results"].items() if m == method and "plan" in r), None)
        return f"hifill {budget_label(budget)}" if budget else "hifill (own budget)"
    return {"hifill_512": f"hifill {budget_label(USERS_BUDGET)}",
            "release_numpy": f"release_numpy {budget_label(USERS_BUDGET)}",
            "opencv": "Telea"}.get(method, method)


def ratio(results, other, hifill, key):
    a, b = results.get(other), results.get(hifill)
    if not (a and b and a.get("status") == "ok" and b.get("status") == "ok" and b[key] > 0):
        return None
    return a[key] / b[key]


def fmt_ratio(value):
    return "-" if value is None else f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def fmt_gb(result):
    if not result or result.get("status") != "ok":
        return "-"
    return f"{result['peak_rss'] / GB:.2f}"


def report_users(records, load_start):
    methods = FLAGS.methods
    labels = {m: method_label(m, records) for m in methods}
    pairs = [(o, h) for o in REFERENCES if o in methods for h in HIFILL if h in methods]
    notes = {m: next((r["note"] for rec in records for case in rec["cases"]
                      for k, r in case["results"].items() if k == m and r.get("note")), None)
             for m in methods}
    generator_note = next((notes[m] for m in ("hifill", "hifill_512", "release_numpy") if notes.get(m)), "n/a")
    photo = records[0]["photo"] if records else "-"
    lines = ["## What users get: hifill_tf.inpaint against the release's post-processing and Telea", ""]
    lines += common.machine_lines(
        xla="off (the serving path, hifill_tf.api.inpaint_function)",
        onednn=os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false"),
        extra=[f"generator: {generator_note}"]
        + ([f"OpenCV: {notes['opencv']}"] if notes.get("opencv") else [])
        + [f"photo: {photo} (cropped to the aspect, Lanczos resize)",
           f"holes: bench/holes.py, seed {FLAGS.seed}: {', '.join(FLAGS.kinds)} at "
           f"{', '.join(FLAGS.fractions)} % (drawn at most {holes.RENDER_SIDE} px wide, "
           "nearest-upscaled; the actual fraction is in the table)",
           "hifill = hifill_tf.inpaint (NumPy in and out); release_numpy = bench/release.py "
           "(photo resized to 512x512, same generator, dense Eq. 4 over all 32x32 cells at full "
           "resolution, in NumPy); Telea = hifill_tf.evaluate.telea (cv2.inpaint radius 3)",
           f"hifill: {FLAGS.warmup} warm-up call(s), then {FLAGS.repeats} timed; release_numpy "
           f"and Telea: up to {FLAGS.baseline_repeats} timed (1 when a call takes over "
           f"{FLAGS.long_call:g} s; above 2048x2048 Telea is not warmed up and release_numpy "
           "only traces its network); median reported",
           "each case and method in a fresh subprocess; peak RSS = VmHWM over the timed calls "
           "(reset after the warm-up), the process's TF, model and inputs included",
           "the TensorFlow workers skip Keras's optional imports as infer.py does "
           f"(hifill_tf.imports.skip_unused_imports: {', '.join(UNUSED_BY_INFERENCE)}; a base install "
           "has only h5py of them); with them, import tensorflow holds about 160 MB more "
           "(817 against 653 MB, measured in session 5)"],
        load_start=load_start)

    rows = []
    for rec in records:
        first = {m: next((c["results"][m] for c in rec["cases"] if c["results"].get(m, {}).get("plan")), None)
                 for m in methods}
        row = [rec["label"], f"{rec['width'] * rec['height'] / 1e6:.1f} MP"]
        for m in methods:
            plan = (first.get(m) or {}).get("plan")
            if m == "opencv":
                continue
            if plan is None:
                row.append("-")
            elif m == "release_numpy":
                g = plan["grid"][0]
                row.append(f"{plan['net'][0]}x{plan['net'][1]}, {g}x{g} cells of "
                           f"{-(-rec['width'] // g)}x{-(-rec['height'] // g)} px")
            else:
                cell = plan["cell"] * plan["factor"]
                row.append(f"f={plan['factor']}, {plan['net'][0]}x{plan['net'][1]}, "
                           f"{plan['grid'][0]}x{plan['grid'][1]} cells of {cell}x{cell} px")
        rows.append(row)
    lines += ["", "### Network input per size", "",
              common.markdown_table(["size", "pixels"] + [labels[m] for m in methods if m != "opencv"], rows)]

    for title, key, fmt, unit in (("Time: median seconds", "median", cell_text, "time"),
                                  ("Peak RSS (GiB)", "peak_rss", fmt_gb, "peak RSS")):
        rows = []
        for rec in records:
            for case in rec["cases"]:
                res = case["results"]
                rows.append([rec["label"], case["kind"], f"{case['percent']}% ({case['fraction']:.1%})"]
                            + [fmt(res.get(m)) for m in methods]
                            + [fmt_ratio(ratio(res, o, h, key)) for o, h in pairs])
        headers = (["size", "hole", "target (actual)"] + [labels[m] for m in methods]
                   + [f"{labels[o].split()[0]} ÷ {labels[h]}" for o, h in pairs])
        lines += ["", f"### {title}", "",
                  f"Ratios: the reference's {unit} over hifill's (above 1: hifill is better).", "",
                  common.markdown_table(headers, rows)]

    rows = []
    for rec in records:
        row = [rec["label"]]
        for o, h in pairs:
            values = [ratio(c["results"], o, h, "median") for c in rec["cases"]]
            values = [v for v in values if v is not None]
            row.append(f"{fmt_ratio(geometric_mean(values))} ({fmt_ratio(min(values))} - "
                       f"{fmt_ratio(max(values))})" if values else "-")
        for m in (x for x in HIFILL if x in methods):
            times = [c["results"][m]["median"] for c in rec["cases"] if c["results"].get(m, {}).get("status") == "ok"]
            row.append(f"{common.fmt_seconds(min(times))} - {common.fmt_seconds(max(times))}" if times else "-")
        rows.append(row)
    if pairs:
        lines += ["", "### Per size: time ratios over all holes (geometric mean, min - max)", "",
                  common.markdown_table(["size"] + [f"{labels[o].split()[0]} ÷ {labels[h]}" for o, h in pairs]
                                        + [f"{labels[m]} time range" for m in HIFILL if m in methods], rows)]
    return "\n".join(lines)


def geometric_mean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def check_writable(path, flag):
    """Fail before the run, not after it, when an output file cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise app.UsageError(f"--{flag}={path}: cannot write in {folder}: {error}") from None


def write_outputs(text, records, load_start):
    if FLAGS.output:
        with atomic_file(FLAGS.output, "w") as f:
            f.write(text + "\n")
    if FLAGS.json:
        names = ("mode", "sizes", "methods", "kinds", "fractions", "repeats", "baseline_repeats",
                 "warmup", "long_call", "seed", "photo", "weights", "max_pixels", "quick")
        data = dict(config={n: FLAGS[n].value for n in names}, load_start=list(load_start),
                    load_end=list(os.getloadavg()), records=records)
        with atomic_file(FLAGS.json, "w") as f:
            json.dump(data, f, indent=1, allow_nan=False)
            f.write("\n")


def resolve_flags():
    """Mode defaults for the flags left unset; --quick shrinks the run."""
    mode = FLAGS.mode
    given = {name: FLAGS[name].present for name in ("sizes", "kinds", "fractions", "repeats",
                                                       "baseline_repeats", "full_max_pixels")}
    if FLAGS.sizes is None:
        FLAGS.sizes = list(SIZES[mode])
    if FLAGS.methods is None:
        FLAGS.methods = list(METHODS[mode])
    if FLAGS.repeats is None:
        FLAGS.repeats = REPEATS[mode]
    for method in FLAGS.methods:
        if method not in METHODS[mode]:
            raise app.UsageError(f"--methods of --mode={mode} takes {', '.join(METHODS[mode])}; "
                                 f"got {method!r}")
    for kind in FLAGS.kinds:
        if kind not in holes.KINDS:
            raise app.UsageError(f"--kinds takes {', '.join(holes.KINDS)}; got {kind!r}")
    for percent in FLAGS.fractions:
        try:
            ok = 0 < float(percent) < 100
        except ValueError:
            ok = False
        if not ok:
            raise app.UsageError(f"--fractions are percentages in (0, 100), e.g. 5,15; got {percent!r}")
    for size in FLAGS.sizes:
        parse_size(size)
    if FLAGS.quick:
        if mode == "scaling":
            if not given["sizes"]:
                FLAGS.sizes = [s for s in FLAGS.sizes if np.prod(parse_size(s)) <= 7680 * 4320]
            if not given["full_max_pixels"]:
                FLAGS.full_max_pixels = min(FLAGS.full_max_pixels, 512 * 512)
        else:
            for name, value in QUICK_USERS.items():
                if not given[name]:
                    FLAGS[name].value = list(value)
        if not given["repeats"]:
            FLAGS.repeats = 2 if mode == "scaling" else 1
        if not given["baseline_repeats"]:
            FLAGS.baseline_repeats = 1
    for flag in ("output", "json"):
        if FLAGS[flag].value:
            check_writable(FLAGS[flag].value, flag)


def main(argv):
    del argv
    if FLAGS.worker:
        width, height = FLAGS.width, FLAGS.height
        try:
            if FLAGS.worker == "prepare":
                result = dict(prepare(width, height, FLAGS.inputs), status="ok")
            elif FLAGS.worker == "prepare_users":
                result = dict(prepare_users(width, height, FLAGS.inputs), status="ok")
            else:
                if FLAGS.worker in METHODS["users"] and FLAGS.worker != "opencv":
                    # As infer.py runs, and as a base install (no test / app extras) imports.
                    skip_unused_imports()
                result = run_worker(FLAGS.worker, width, height)
        except Exception as error:
            result = dict(status="error", reason=f"{type(error).__name__}: {error}"[:300])
        print("RESULT " + json.dumps(result), flush=True)
        return
    resolve_flags()
    # SIGTERM as SystemExit, so that the running worker and the temp dir are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    work = FLAGS.work_dir or tempfile.mkdtemp(prefix="cra_bench_")
    os.makedirs(work, exist_ok=True)
    load_start = os.getloadavg()
    try:
        if FLAGS.mode == "users":
            records = orchestrate_users(work)
            text = report_users(records, load_start)
        else:
            records = orchestrate_scaling(work)
            text = report_scaling(records, load_start)
    finally:
        if not FLAGS.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    write_outputs(text, records, load_start)


if __name__ == "__main__":
    app.run(main)
