"""Benchmark holes of three kinds at a chosen hole fraction (``cra_bench.py --mode=users``).

- ``blob``: one filled blob near the middle, a smooth star shape stretched to the image's
  aspect (an object to remove);
- ``strokes``: brush strokes scattered over the whole image, each starting in its own cell
  of a coarse grid (a user's scribbles; cf. the free-form masks of ``hifill_tf.data.masks``);
  more strokes for a larger fraction (10 at 5 %, 24 at 40 %);
- ``scratch``: one long polyline, ``short side / 256`` wide (a scratch, a cable), wandering
  over the image until it covers the fraction: at 25-40 % a dense scribble in which almost
  every attention cell holds some hole.

Each kind has one size parameter that grows its hole monotonically (the blob's radius, the
strokes' width, the scratch's number of segments); a bisection on it brings the fraction
at the drawing size within ``tolerance`` of the target (a step of the integer parameters
can be coarser at small sizes: then the closest one is kept). Shapes are drawn with PIL at
most ``render_side`` pixels wide and nearest-upscaled, which is fast at 16K and gives every
size of one aspect the same shapes; the returned fraction is the full-size mask's own.
NumPy + Pillow only (no TensorFlow), seeded: the same arguments give the same mask.
"""

import math

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("blob", "strokes", "scratch")
RENDER_SIDE = 2048
TOLERANCE = 0.001  # of the fraction: a tenth of a percentage point


def make_hole(width, height, kind, fraction, seed=0, render_side=RENDER_SIDE, tolerance=TOLERANCE):
    """A seeded hole of ``kind`` covering about ``fraction`` of a ``width`` x ``height`` image.

    Returns (mask uint8 [height, width] with 255 = hole, the mask's hole fraction,
    dict of the shape's size parameter and the drawing size).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1); got {fraction!r}")
    scale = min(1.0, render_side / max(width, height))
    render_w, render_h = max(16, round(width * scale)), max(16, round(height * scale))
    rng = np.random.default_rng([int(seed), KINDS.index(kind)])
    draw, lo, hi, integer = _SHAPES[kind](render_w, render_h, fraction, rng)
    value, small = _fit(draw, render_w, render_h, fraction, lo, hi, integer, tolerance)
    if (render_w, render_h) != (width, height):
        small = Image.fromarray(small).resize((width, height), Image.Resampling.NEAREST)
    mask = np.asarray(small, dtype=np.uint8)
    params = dict(kind=kind, target=fraction, seed=int(seed), parameter=_PARAMETER[kind],
                  value=round(float(value), 3), drawn_at=[render_w, render_h])
    return mask, np.count_nonzero(mask) / mask.size, params


def _fit(draw, width, height, target, lo, hi, integer, tolerance, max_iterations=40):
    """Bisection on the size parameter; returns (value, uint8 mask) of the closest fraction."""
    best = None
    for _ in range(max_iterations):
        if integer and lo > hi:
            break
        value = (lo + hi) // 2 if integer else 0.5 * (lo + hi)
        image = Image.new("L", (width, height), 0)
        draw(ImageDraw.Draw(image), value)
        mask = np.asarray(image)
        fraction = np.count_nonzero(mask) / mask.size
        if best is None or abs(fraction - target) < abs(best[2] - target):
            best = (value, mask, fraction)
        if abs(fraction - target) <= tolerance:
            break
        if fraction < target:
            lo = value + 1 if integer else value
        else:
            hi = value - 1 if integer else value
    return best[0], best[1]


def _blob(width, height, fraction, rng):
    """A star shape r(phi) = 1 + sum_k a_k cos(k phi + p_k), as ``data.masks.random_silhouette``."""
    order = np.arange(1, 6)
    amps = rng.uniform(0.0, 0.3, order.size) / order
    phases = rng.uniform(0.0, 2 * math.pi, order.size)
    phi = np.linspace(0.0, 2 * math.pi, 360, endpoint=False)
    r = np.maximum(1.0 + (amps[:, None] * np.cos(order[:, None] * phi + phases[:, None])).sum(0), 0.3)
    stretch = math.sqrt(width / height) * math.exp(rng.uniform(-0.2, 0.2))  # area kept
    angle = rng.uniform(-0.3, 0.3)
    x, y = r * np.cos(phi) * stretch, r * np.sin(phi) / stretch
    unit = np.stack([x * math.cos(angle) - y * math.sin(angle),
                     x * math.sin(angle) + y * math.cos(angle)], -1)
    centre = np.array([width, height]) * (0.5 + rng.uniform(-0.1, 0.1, 2))

    def draw(canvas, radius):
        canvas.polygon([tuple(p) for p in centre + radius * unit], fill=255)

    return draw, 0.0, 2.0 * math.hypot(width, height), False


def _strokes(width, height, fraction, rng):
    count = 8 + round(40 * fraction)
    short = min(width, height)
    cols = math.ceil(math.sqrt(count * width / height))
    rows = math.ceil(count / cols)
    strokes = []
    for cell in rng.permutation(rows * cols)[:count]:  # one stroke per grid cell: spread out
        row, col = divmod(int(cell), cols)
        point = np.array([(col + rng.uniform()) * width / cols, (row + rng.uniform()) * height / rows])
        heading = rng.uniform(0.0, 2 * math.pi)
        points = [point]
        for _ in range(rng.integers(3, 7)):
            heading += rng.uniform(-0.6, 0.6) * math.pi
            length = rng.uniform(0.04, 0.12) * short
            point = point + length * np.array([math.cos(heading), math.sin(heading)])
            points.append(point)
        strokes.append([tuple(p) for p in points])

    def draw(canvas, stroke_width):
        half = stroke_width / 2
        for points in strokes:
            canvas.line(points, fill=255, width=int(stroke_width), joint="curve")
            for x, y in (points[0], points[-1]):  # round caps
                canvas.ellipse([x - half, y - half, x + half, y + half], fill=255)

    return draw, 1, short, True


def _scratch(width, height, fraction, rng):
    line_width = max(2, round(min(width, height) / 256))
    step = min(width, height) / 12
    # A random scribble of total area A covers about 1 - exp(-A / image area): 3x the
    # segments that needs, so even 40 % is reached.
    needed = -math.log(1.0 - fraction) * width * height / (line_width * step)
    count = int(3 * needed) + 16
    point = np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height])
    heading = rng.uniform(0.0, 2 * math.pi)
    points = [tuple(point)]
    for turn in rng.normal(0.0, 0.5, count):
        heading += turn
        x = point[0] + step * math.cos(heading)
        y = point[1] + step * math.sin(heading)
        if not 0 <= x <= width:  # reflect off the border
            x = -x if x < 0 else 2 * width - x
            heading = math.pi - heading
        if not 0 <= y <= height:
            y = -y if y < 0 else 2 * height - y
            heading = -heading
        point = np.array([x, y])
        points.append((x, y))

    def draw(canvas, segments):
        canvas.line(points[:segments + 1], fill=255, width=line_width, joint="curve")

    return draw, 1, count, True


_SHAPES = {"blob": _blob, "strokes": _strokes, "scratch": _scratch}
_PARAMETER = {"blob": "radius (drawing px)", "strokes": "stroke width (drawing px)",
              "scratch": "segments"}
