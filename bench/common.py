"""Helpers shared by the benchmark scripts: machine description, timing,
memory, Markdown tables, benchmark photos and masks.

Importing this module does not import TensorFlow, so a script can still set
TF_ENABLE_ONEDNN_OPTS (the training bench must) before it imports TensorFlow.
"""

import glob
import importlib.metadata
import os
import platform
import statistics
import sys
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as `python bench/x.py` without installing the package
    sys.path.insert(0, REPO)

PHOTO_DIRS = ("/work/shared/data/photos", os.path.join(REPO, "examples"))
# The one photo that is 16:9 and large (5120x2880): the 4K/8K/16K sizes keep its geometry.
PREFERRED_PHOTO = "volna-5120x2880.jpg"
MB = 1024 * 1024  # memory is reported in MiB and GiB throughout
GB = 1024 * MB


# ---------------------------------------------------------------- machine

def cpu_model():
    """'model name' of /proc/cpuinfo, with family/model and the SIMD flags that matter."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    key, value = (s.strip() for s in line.split(":", 1))
                    info.setdefault(key, value)
    except OSError:
        return platform.processor() or "unknown"
    flags = set(info.get("flags", "").split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
            if f in flags]
    name = info.get("model name", "unknown")
    return (f"{name} (family {info.get('cpu family', '?')} model {info.get('model', '?')}, "
            f"{info.get('cpu MHz', '?')} MHz; {' '.join(simd) or 'no AVX2'})")


def onednn_enabled():
    """Whether TensorFlow's oneDNN (MKL) kernels are on in this process."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # private API: fall back to the variable TF reads (default on for x86)
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false")


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_lines(xla=None, onednn=None, extra=(), load_start=None):
    """Markdown bullet lines describing the machine and the TF configuration.

    ``onednn=None`` asks TensorFlow (imports it); pass a bool from a process
    that must not import it. ``xla`` is a free-text note (e.g. "off and on, per row").
    ``load_start``: ``os.getloadavg()`` taken when the measurements began
    (default: now); the end value is added, since other processes skew timings.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        import psutil

        ram = f"{psutil.virtual_memory().total / GB:.1f} GiB"
    except ImportError:
        ram = "unknown (pip install psutil)"
    load = " / ".join(f"{x:.2f}" for x in (load_start or os.getloadavg()))
    if onednn is None:
        onednn = onednn_enabled()
    lines = [
        f"- CPU: {cpu_model()}",
        f"- cores: {os.cpu_count()} logical, {usable} usable by this process; RAM {ram}",
        f"- load average (1/5/15 min) at start: {load}; 1 min at end: {load_now():.2f}",
        f"- Python {platform.python_version()}, TensorFlow {_version('tensorflow')}, "
        f"Keras {_version('keras')}, NumPy {np.__version__}",
        f"- oneDNN: {'on' if onednn else 'off'} (TF_ENABLE_ONEDNN_OPTS="
        f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')})",
    ]
    if xla is not None:
        lines.append(f"- XLA: {xla}")
    lines.extend(f"- {line}" for line in extra)
    # The benchmark itself keeps up to `usable` cores busy while it runs.
    start, end = (load_start or os.getloadavg())[0], load_now()
    if start > 0.5 * usable or end > 1.5 * usable:
        lines.append(f"- **warning: 1-min load average {start:.1f} at start, {end:.1f} at end, on "
                     f"{usable} cores: other processes shared the CPU, these timings are noisy**")
    return lines


def load_now():
    return os.getloadavg()[0]


# ---------------------------------------------------------------- timing

def measure(functions, repeats, warmup=1, min_repeats=1, long_call=None):
    """Time callables side by side: warm each up, then run them round robin.

    Interleaving means a burst of load from other processes hits every
    function alike, so the ratios between them stay fair.

    Args:
        functions: dict name -> zero-argument callable that returns only once
            its work is done.
        repeats: timed runs of each function.
        warmup: untimed runs of each function first (tracing, XLA compiles).
        long_call: seconds; a function whose last warm-up call took longer
            runs only ``min_repeats`` times (keeps huge baselines bounded).
    Returns dict name -> {"median", "min", "max", "runs", "times"} in seconds.
    """
    counts = {}
    for name, fn in functions.items():
        elapsed = None
        for _ in range(warmup):
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
        counts[name] = repeats
        if long_call is not None and elapsed is not None and elapsed > long_call:
            counts[name] = min(repeats, min_repeats)
    times = {name: [] for name in functions}
    for r in range(max(counts.values(), default=0)):
        for name, fn in functions.items():
            if r < counts[name]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: summarize(t) for name, t in times.items()}


def summarize(times):
    return dict(median=statistics.median(times), min=min(times), max=max(times),
                runs=len(times), times=list(times))


# ---------------------------------------------------------------- memory

def rss_bytes():
    """Current resident set size (VmRSS)."""
    return _status_field("VmRSS")


def peak_rss_bytes():
    """Peak resident set size since start or the last :func:`reset_peak_rss` (VmHWM)."""
    return _status_field("VmHWM")


def _status_field(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{name} not in /proc/self/status")


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs).

    Returns False where that is not allowed; then use :class:`PeakSampler`.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakSampler:
    """Fallback peak-RSS meter: samples VmRSS every ``interval`` seconds in a thread.

    Can miss a peak shorter than the interval; VmHWM (above) cannot.
    """

    def __init__(self, interval=0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def available_bytes():
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return None


# ---------------------------------------------------------------- output

def markdown_table(headers, rows):
    """A GitHub Markdown table; cells are converted with str()."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_seconds(seconds):
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mb(num_bytes):
    return "-" if num_bytes is None else f"{num_bytes / MB:,.0f} MiB"


def verdict(ok):
    return "**met**" if ok else "**NOT met**"


# ---------------------------------------------------------------- inputs

def photo_path():
    """The benchmark photo: the 16:9 5120x2880 shared photo if present, else any JPEG found."""
    for directory in PHOTO_DIRS:
        preferred = os.path.join(directory, PREFERRED_PHOTO)
        if os.path.exists(preferred):
            return preferred
    for directory in PHOTO_DIRS:
        found = sorted(glob.glob(os.path.join(directory, "*.jpg"))
                       + glob.glob(os.path.join(directory, "*.png")))
        if found:
            return found[0]
    return None


def load_photo(width, height, path=None, resample="bicubic"):
    """uint8 [height, width, 3]: a real photo cropped to the aspect and resized
    (``resample``: "bicubic" or "lanczos"), or a synthetic one (gradients plus texture)
    if there is none.

    Returns (array, description).
    """
    from PIL import Image, ImageOps

    path = path or photo_path()
    if path is None:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        rng = np.random.default_rng(0)
        base = np.stack([xs / width, ys / height, 0.5 + 0.5 * np.sin(xs / 37.0 + ys / 53.0)], -1)
        noise = rng.standard_normal((height, width, 1)).astype(np.float32) * 0.05
        return (np.clip(base + noise, 0, 1) * 255).astype(np.uint8), "synthetic"
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        filters = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
        image = ImageOps.fit(image, (width, height), filters[resample])
        array = np.asarray(image)
    return array, os.path.basename(path)


def make_mask(width, height, seed=0, min_area=0.10, max_area=0.25, render_side=1024):
    """uint8 [height, width], 255 = hole: ``hifill_tf.data.masks.sample_mask``
    drawn at most ``render_side`` wide, then nearest-resized (cheap at 16K).

    Returns (mask, hole fraction).
    """
    from PIL import Image

    from hifill_tf.data.masks import sample_mask

    scale = min(1.0, render_side / max(width, height))
    small_w, small_h = max(16, round(width * scale)), max(16, round(height * scale))
    small = sample_mask(small_h, small_w, seed, min_area=min_area, max_area=max_area)
    if (small_w, small_h) != (width, height):
        small = np.asarray(Image.fromarray(small).resize((width, height), Image.NEAREST))
    mask = np.ascontiguousarray(small)
    return mask, float(np.count_nonzero(mask)) / mask.size


def build_generator(weights=None, seed=0):
    """The default generator: ``weights`` (.npz) or random initialisation (seeded).

    Returns (generator, description).
    """
    import keras

    from hifill_tf.models.generator import Generator
    from hifill_tf.weights import load_generator

    if weights:
        return load_generator(weights), f"weights {os.path.basename(weights)}"
    keras.utils.set_random_seed(seed)
    generator = Generator()
    generator.build()
    return generator, f"random initialisation (seed {seed}); timing does not depend on the weights"


def rest_request(array):
    """The JSON body of POST /api/v1/inpaint for a photo array: PNG photo, blob mask."""
    import base64
    import io as _io
    import json

    from PIL import Image

    height, width = array.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    mask[height * 2 // 5:height * 3 // 5, width * 2 // 5:width // 2] = 255
    files = []
    for picture in (array, mask):
        buffer = _io.BytesIO()
        Image.fromarray(picture).save(buffer, "PNG", compress_level=1)
        files.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return json.dumps({"image": files[0], "mask": files[1]})
