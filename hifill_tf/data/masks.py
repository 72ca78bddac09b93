"""Random training masks (§3.5, "Random Mask Generation"), generated in-graph.

Masks are float32 ``[height, width, 1]``, 1 = hole, 0 = background, built only
from TF ops with stateless random numbers, so they run inside a ``tf.data`` map
on any device and the same seed always gives the same mask.

Public API::

    gen = MaskGenerator(height, width, kind="mixed", min_area=0.02, max_area=0.25,
                        templates_dir=None, max_strokes=10, max_vertices=8,
                        max_objects=3, stroke_width=(0.02, 0.10),
                        template_size=128, max_render_side=None)
    mask = gen(seed)              # seed: int32/int64 [2] -> float32 [height, width, 1]
    parts = gen.sample_parts(seed)  # {"mask", "object", "free_form"}, same mask
    gen.get_config(); MaskGenerator.from_config(config)

    sample_mask(height, width, seed, **generator_kwargs)  # np.uint8 [H, W], 0/255

Kinds: ``"free_form"`` brush strokes and spots in the style of Liu et al. 2018
(tears, scratches, spots, brush erasing); ``"object"`` holes shaped like
objects (templates loaded from ``templates_dir``, else ``random_silhouette``
blobs); ``"mixed"`` both in one mask; ``"either"`` one of the two per mask.

How the area bound holds. Every component (stroke, spot cluster, object) is a
distance-like field, negative inside the shape and growing by about one per
pixel outside it; the union of components is their pointwise minimum. A
target area is drawn uniformly in ``[min_area, max_area]`` and rounded to a
pixel count ``k`` inside the bound; components are added until their union
(field <= 0) covers ``k`` pixels (or the component budget runs out); then the
mask is exactly the ``k`` pixels of lowest field value (``select_lowest``:
one histogram pass, then a sort of the one bin holding the k-th value; ties
in raster order). Moving the threshold
uniformly thins or thickens every component, so overshoot and undershoot are
absorbed by a small erosion or dilation rather than by dropping shapes, and
every mask has exactly ``k`` hole pixels. In ``"mixed"`` masks the object part
is first selected to exactly ``round(q * k)`` pixels (``q ~ U[0.3, 0.7]``) and
strokes then add the remaining pixels, so both kinds are always present.
"""

import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image

KINDS = ("free_form", "object", "mixed", "either")

_TWO_PI = 2.0 * math.pi
# Relative spread of an object's area around the area still missing, so a
# single object usually fills the object share of the target.
_OBJECT_AREA_JITTER = (0.7, 1.3)
_SPOT_PROBABILITY = 0.25
_MAX_TURN = 0.6 * math.pi
_SEGMENT_LENGTH = (0.05, 0.30)  # fraction of the short image side
_SPOT_RADIUS = (0.01, 0.05)
_SILHOUETTE_HARMONICS = 5
_HISTOGRAM_BINS = 4096


def _area_bounds(min_area, max_area, num_pixels):
    """Smallest and largest hole pixel count allowed at this resolution."""
    lo = math.ceil(min_area * num_pixels - 1e-9)
    hi = math.floor(max_area * num_pixels + 1e-9)
    return lo, hi


def select_lowest(field, k):
    """Mask of exactly ``k`` pixels with the lowest ``field`` values.

    ``field`` is a flat float32 vector; ``k`` a scalar int32 in ``[0, n]``.
    Returns (mask bool [n], threshold): every selected pixel has
    ``field <= threshold``. One histogram pass finds the bin holding the k-th
    value and only that bin is sorted, so the cost stays linear in the pixel
    count (a full sort of a 5120x2880 field is far slower); ties at the
    threshold are taken in raster order.
    """
    field = tf.convert_to_tensor(field, tf.float32)
    k = tf.cast(k, tf.int32)
    lo = tf.reduce_min(field)
    span = tf.maximum(tf.reduce_max(field) - lo, 1e-6)
    bins = tf.cast(tf.floor((field - lo) * (_HISTOGRAM_BINS / span)), tf.int32)
    bins = tf.clip_by_value(bins, 0, _HISTOGRAM_BINS - 1)
    cumulative = tf.cumsum(tf.math.bincount(bins, minlength=_HISTOGRAM_BINS, maxlength=_HISTOGRAM_BINS))
    # First bin whose cumulative count reaches k (k >= 1 assumed; k = 0 masked below).
    crossing = tf.minimum(
        tf.searchsorted(cumulative, tf.maximum(k, 1)[None], side="left")[0], _HISTOGRAM_BINS - 1
    )
    below = bins < crossing
    band = tf.equal(bins, crossing)
    need = k - tf.reduce_sum(tf.cast(below, tf.int32))
    band_values = tf.sort(tf.boolean_mask(field, band))
    threshold = band_values[tf.clip_by_value(need - 1, 0, tf.size(band_values) - 1)]
    strict = tf.logical_and(band, field < threshold)
    ties = tf.logical_and(band, tf.equal(field, threshold))
    tie_need = need - tf.reduce_sum(tf.cast(strict, tf.int32))
    mask = below | strict | (ties & (tf.cumsum(tf.cast(ties, tf.int32)) <= tie_need))
    return tf.logical_and(mask, k > 0), threshold


def _pixel_grid(height, width):
    """Flat x (column) and y (row) index coordinates, float32 [H*W]."""
    ys, xs = tf.meshgrid(
        tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
    )
    return tf.reshape(xs, [-1]), tf.reshape(ys, [-1])


def segments_field(xs, ys, start, end, half_width, active):
    """Union of thick segments with round caps as a distance field.

    start, end: [V, 2] (x, y); half_width: [V]; active: bool [V].
    Returns [N] = min over active segments of (distance to segment - half width).
    A degenerate segment (start == end) is a disk, used for spots.
    """
    ax, ay = start[:, 0:1], start[:, 1:2]
    abx, aby = end[:, 0:1] - ax, end[:, 1:2] - ay
    px, py = xs[None, :] - ax, ys[None, :] - ay
    length2 = tf.maximum(abx * abx + aby * aby, 1e-6)
    t = tf.clip_by_value((px * abx + py * aby) / length2, 0.0, 1.0)
    dx, dy = px - t * abx, py - t * aby
    dist = tf.sqrt(dx * dx + dy * dy) - half_width[:, None]
    dist = tf.where(active[:, None], dist, tf.float32.max)
    return tf.reduce_min(dist, axis=0)


# XLA fuses the [segments, pixels] element-wise chain into one pass: about 4x
# faster per stroke on CPU, also inside tf.data maps.
_segments_field_xla = tf.function(segments_field, jit_compile=True, autograph=False)


def place_template(sdf, height, width, center, angle, scale, aspect=1.0, flip=False):
    """Signed distance field of a template rotated, flipped and scaled into an image.

    sdf: [T, T] float32 signed distance of the template in template pixels
    (negative inside). center: (x, y) in image pixels where the template centre
    lands; angle in radians (counter-clockwise as displayed, y pointing down);
    scale: image pixels per template pixel; aspect stretches x by ``aspect`` and
    y by ``1 / aspect`` (area preserved); flip mirrors the template left-right
    before rotating. Returns [height * width] field in image pixels.
    """
    sdf = tf.convert_to_tensor(sdf, tf.float32)
    size = tf.cast(tf.shape(sdf)[0], tf.float32)
    mid = 0.5 * (size - 1.0)
    cx, cy = center[0], center[1]
    cos, sin = tf.cos(angle), tf.sin(angle)
    sign = tf.where(flip, -1.0, 1.0)
    sx, sy = scale * aspect, scale / aspect
    # Output pixel -> template pixel: undo translation, rotation (by -angle in
    # a y-down frame), anisotropic scale, then flip.
    a0, a1 = sign * cos / sx, -sign * sin / sx
    b0, b1 = sin / sy, cos / sy
    a2 = mid - (a0 * cx + a1 * cy)
    b2 = mid - (b0 * cx + b1 * cy)
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[None, :]
    sampled = tf.raw_ops.ImageProjectiveTransformV3(
        images=sdf[None, :, :, None],
        transforms=transform,
        output_shape=tf.constant([height, width], tf.int32),
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    sampled = tf.reshape(sampled, [-1])
    # Outside the template canvas NEAREST repeats the border value; add the
    # distance to the canvas so the field keeps growing away from the shape.
    xs, ys = _pixel_grid(height, width)
    u = a0 * xs + a1 * ys + a2
    v = b0 * xs + b1 * ys + b2
    ou = tf.maximum(tf.maximum(-u, u - (size - 1.0)), 0.0)
    ov = tf.maximum(tf.maximum(-v, v - (size - 1.0)), 0.0)
    return (sampled + tf.sqrt(ou * ou + ov * ov)) * scale * tf.minimum(aspect, 1.0 / aspect)


def _edt(feature):
    """Exact Euclidean distance from each pixel to the nearest True pixel.

    Separable brute force, O(T^3) vectorised: fine for template-sized grids.
    """
    size_y, size_x = feature.shape
    big = np.float64(size_y * size_y + size_x * size_x + 1)
    y = np.arange(size_y, dtype=np.float64)
    # Squared distance along columns: [y, y', x].
    col = (y[:, None, None] - y[None, :, None]) ** 2 + np.where(feature[None, :, :], 0.0, big)
    g2 = col.min(axis=1)
    x = np.arange(size_x, dtype=np.float64)
    row = (x[None, :, None] - x[None, None, :]) ** 2 + g2[:, None, :]
    return np.sqrt(row.min(axis=2))


def template_sdf(binary, template_size):
    """Centre a binary object mask in a square canvas and return its signed distance.

    The object is cropped to its bounding box and fitted (aspect kept) into the
    inner 3/4 of a ``template_size`` canvas, leaving a margin where the field
    is exact. Returns (sdf float32 [T, T], area in template pixels).
    """
    rows = np.flatnonzero(binary.any(axis=1))
    cols = np.flatnonzero(binary.any(axis=0))
    crop = binary[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32)
    inner = template_size - 2 * (template_size // 8)
    ratio = inner / max(crop.shape)
    new_h = max(1, round(crop.shape[0] * ratio))
    new_w = max(1, round(crop.shape[1] * ratio))
    resized = Image.fromarray(crop * 255.0).resize((new_w, new_h), Image.BILINEAR)
    inside_crop = np.asarray(resized) >= 127.5
    if not inside_crop.any():  # sub-pixel object after downscaling
        inside_crop[new_h // 2, new_w // 2] = True
    canvas = np.zeros((template_size, template_size), bool)
    top, left = (template_size - new_h) // 2, (template_size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = inside_crop
    return signed_distance(canvas), float(canvas.sum())


def signed_distance(binary):
    """Signed distance (float32, negative inside) of a boolean mask to its contour.

    The contour runs between pixel centres, so a pixel next to it is at 0.5.
    """
    binary = np.asarray(binary, bool)
    sdf = np.where(binary, 0.5 - _edt(~binary), _edt(binary) - 0.5)
    return sdf.astype(np.float32)


def load_templates(templates_dir, template_size=128):
    """Load every PNG under ``templates_dir`` (non-zero pixel = object).

    Returns (sdf stack float32 [N, T, T], areas float32 [N]) on the host.
    """
    if not os.path.isdir(templates_dir):
        raise FileNotFoundError(f"templates_dir {templates_dir!r} is not a directory")
    paths = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(templates_dir)
        for name in names
        if name.lower().endswith(".png")
    )
    if not paths:
        raise ValueError(f"templates_dir {templates_dir!r} holds no .png shape templates")
    sdfs, areas = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                binary = np.asarray(image.convert("L")) > 0
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read shape template {path!r}: {error}") from error
        if not binary.any():
            raise ValueError(f"shape template {path!r} has no object pixels (all zero)")
        sdf, area = template_sdf(binary, template_size)
        sdfs.append(sdf)
        areas.append(area)
    return np.stack(sdfs), np.asarray(areas, np.float32)


class MaskGenerator:
    """Seeded random hole masks for training (§3.5).

    Args:
        height, width: output mask size in pixels.
        kind: "free_form", "object", "mixed" (both in every mask) or "either"
            (each mask one of the two, with equal probability).
        min_area, max_area: bounds of the hole fraction; every mask satisfies
            ``min_area <= mean(mask) <= max_area`` exactly. The paper's
            experiments use irregular holes of up to 25% of the image.
        templates_dir: directory of PNG object masks (non-zero = object, e.g.
            COCO segmentations), loaded once at construction. ``None`` uses
            ``random_silhouette`` blobs instead.
        max_strokes: most free-form components (strokes or spot clusters) per mask.
        max_vertices: segments per stroke (spots per cluster) at most.
        max_objects: most object shapes per mask.
        stroke_width: (min, max) stroke width as a fraction of the short side.
        template_size: side of the square canvas each template is stored at;
            memory is ``4 * template_size**2`` bytes per template.
        max_render_side: if set and smaller than the long output side, the
            distance fields are computed at this long side and bilinearly
            upsampled before thresholding (smooth edges, area still exact at
            the output size); a large speed-up for big masks.
    """

    def __init__(
        self,
        height,
        width,
        kind="mixed",
        min_area=0.02,
        max_area=0.25,
        templates_dir=None,
        max_strokes=10,
        max_vertices=8,
        max_objects=3,
        stroke_width=(0.02, 0.10),
        template_size=128,
        max_render_side=None,
    ):
        if int(height) != height or int(width) != width or height < 1 or width < 1:
            raise ValueError(f"height and width must be positive integers; got {height!r}, {width!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        if not 0.0 <= min_area <= max_area <= 1.0:
            raise ValueError(
                f"need 0 <= min_area <= max_area <= 1; got min_area={min_area!r}, max_area={max_area!r}"
            )
        lo, hi = _area_bounds(min_area, max_area, height * width)
        if lo > hi:
            raise ValueError(
                f"no pixel count of a {height}x{width} mask lies in "
                f"[min_area={min_area}, max_area={max_area}]; widen the range"
            )
        if max_strokes < 1 or max_vertices < 1 or max_objects < 1:
            raise ValueError(
                "max_strokes, max_vertices and max_objects must be >= 1; got "
                f"{max_strokes!r}, {max_vertices!r}, {max_objects!r}"
            )
        if not 0.0 < stroke_width[0] <= stroke_width[1]:
            raise ValueError(f"stroke_width must be (min, max) with 0 < min <= max; got {stroke_width!r}")
        if max_render_side is not None and max_render_side < 8:
            raise ValueError(f"max_render_side must be None or >= 8; got {max_render_side!r}")
        self.height = int(height)
        self.width = int(width)
        self.kind = kind
        self.min_area = float(min_area)
        self.max_area = float(max_area)
        self.templates_dir = templates_dir
        self.max_strokes = int(max_strokes)
        self.max_vertices = int(max_vertices)
        self.max_objects = int(max_objects)
        self.stroke_width = (float(stroke_width[0]), float(stroke_width[1]))
        self.template_size = int(template_size)
        self.max_render_side = max_render_side

        long_side = max(self.height, self.width)
        if max_render_side is not None and max_render_side < long_side:
            ratio = max_render_side / long_side
            self._render_hw = (max(1, round(self.height * ratio)), max(1, round(self.width * ratio)))
        else:
            self._render_hw = (self.height, self.width)

        self._templates = None
        self._template_areas = None
        if templates_dir is not None:
            sdfs, areas = load_templates(templates_dir, self.template_size)
            self._templates = tf.constant(sdfs)
            self._template_areas = tf.constant(areas)
        # No autograph: the loops are tf.while_loop and tf.cond already, and converting this
        # module's functions took about 3 s of every training start.
        self._generate = tf.function(
            self._generate_parts,
            input_signature=[tf.TensorSpec([2], tf.int64)],
            reduce_retracing=True,
            autograph=False,
        )

    @property
    def num_templates(self):
        return 0 if self._templates is None else int(self._templates.shape[0])

    def get_config(self):
        return {
            "height": self.height,
            "width": self.width,
            "kind": self.kind,
            "min_area": self.min_area,
            "max_area": self.max_area,
            "templates_dir": self.templates_dir,
            "max_strokes": self.max_strokes,
            "max_vertices": self.max_vertices,
            "max_objects": self.max_objects,
            "stroke_width": self.stroke_width,
            "template_size": self.template_size,
            "max_render_side": self.max_render_side,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __call__(self, seed):
        return self.sample_parts(seed)["mask"]

    def sample_parts(self, seed):
        """The mask and its split into object and free-form holes.

        Returns a dict of float32 [height, width, 1]: "mask", "object",
        "free_form"; the two parts are disjoint and their sum is "mask".
        """
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        if seed.shape.rank != 1 or seed.shape[0] != 2:
            raise ValueError(f"seed must be an integer tensor of shape [2]; got shape {seed.shape}")
        return self._generate(seed)

    # ----- components -------------------------------------------------------

    def _free_form_field(self, seed, xs, ys, height, width):
        """One brush stroke (thick polyline) or cluster of round spots."""
        num = self.max_vertices
        unit = float(min(height, width))
        size = tf.constant([width - 1.0, height - 1.0])
        s = tf.random.experimental.stateless_split(seed, 10)
        uniform = tf.random.stateless_uniform

        start = uniform([2], s[0]) * size
        turns = uniform([num], s[1], -_MAX_TURN, _MAX_TURN)
        angles = uniform([], s[2], 0.0, _TWO_PI) + tf.cumsum(turns)
        lengths = uniform([num], s[3], *_SEGMENT_LENGTH) * unit
        steps = tf.stack([tf.cos(angles), tf.sin(angles)], axis=1) * lengths[:, None]
        points = start[None, :] + tf.concat([tf.zeros([1, 2]), tf.cumsum(steps, axis=0)], axis=0)
        points = tf.clip_by_value(points, 0.0, size)
        stroke_hw = uniform([], s[4], *self.stroke_width) * unit / 2.0
        stroke_hw = tf.fill([num], stroke_hw)

        cluster = uniform([2], s[5]) * size
        centres = tf.clip_by_value(cluster + uniform([num, 2], s[6], -0.15, 0.15) * unit, 0.0, size)
        spot_r = uniform([num], s[7], *_SPOT_RADIUS) * unit

        is_spots = uniform([], s[8]) < _SPOT_PROBABILITY
        count = tf.random.stateless_uniform([], s[9], 1, num + 1, dtype=tf.int32)
        start_pts = tf.where(is_spots, centres, points[:-1])
        end_pts = tf.where(is_spots, centres, points[1:])
        half_width = tf.where(is_spots, spot_r, stroke_hw)
        active = tf.range(num) < count
        return _segments_field_xla(xs, ys, start_pts, end_pts, half_width, active)

    def _object_field(self, seed, area_px, xs, ys, height, width):
        """One object-shaped hole of about ``area_px`` pixels at a random place."""
        s = tf.random.experimental.stateless_split(seed, 6)
        uniform = tf.random.stateless_uniform
        center = uniform([2], s[0]) * tf.constant([width - 1.0, height - 1.0])
        angle = uniform([], s[1], -math.pi, math.pi)
        if self._templates is None:
            return random_silhouette(s[2], area_px, center, angle, xs, ys)
        index = tf.random.stateless_uniform(
            [], s[2], 0, self.num_templates, dtype=tf.int32
        )
        flip = uniform([], s[3]) < 0.5
        aspect = tf.exp(uniform([], s[4], -0.2, 0.2))
        scale = tf.sqrt(area_px / self._template_areas[index])
        return place_template(
            self._templates[index], height, width, center, angle, scale, aspect, flip
        )

    # ----- fields and selection ----------------------------------------------

    def _empty_field(self, height, width):
        # Above any real distance, but finite so the histogram span in select_lowest stays small.
        return tf.fill([height * width], 4.0 * float(height + width))

    def _objects_until(self, seed, k, xs, ys, height, width):
        """Add objects until their union covers ``k`` pixels (or budget ends)."""
        field = self._empty_field(height, width)
        jitter = _OBJECT_AREA_JITTER

        def body(i, field):
            covered = tf.reduce_sum(tf.cast(field <= 0.0, tf.float32))
            s = tf.random.experimental.stateless_split(
                tf.random.experimental.stateless_fold_in(seed, i), 2
            )
            want = (tf.cast(k, tf.float32) - covered) * tf.random.stateless_uniform([], s[0], *jitter)
            want = tf.maximum(want, 16.0)
            component = self._object_field(s[1], want, xs, ys, height, width)
            return i + 1, tf.minimum(field, component)

        def cond(i, field):
            covered = tf.reduce_sum(tf.cast(field <= 0.0, tf.int32))
            return tf.logical_and(i < self.max_objects, covered < k)

        _, field = tf.while_loop(cond, body, (tf.constant(0), field))
        return field

    def _strokes_until(self, seed, base, k, min_strokes, xs, ys, height, width):
        """Add free-form components until ``base | field <= 0`` covers ``k`` pixels."""
        field = self._empty_field(height, width)

        def body(i, field):
            seed_i = tf.random.experimental.stateless_fold_in(seed, i)
            component = self._free_form_field(seed_i, xs, ys, height, width)
            return i + 1, tf.minimum(field, component)

        def cond(i, field):
            covered = tf.reduce_sum(tf.cast(tf.logical_or(base, field <= 0.0), tf.int32))
            return tf.logical_and(
                i < self.max_strokes, tf.logical_or(i < min_strokes, covered < k)
            )

        _, field = tf.while_loop(cond, body, (tf.constant(0), field))
        return field

    def _pixel_count(self, target, num_pixels):
        lo, hi = _area_bounds(self.min_area, self.max_area, num_pixels)
        if lo > hi:  # only at a coarse render size; the output size was checked
            lo, hi = 0, num_pixels
        k = tf.cast(tf.round(target * num_pixels), tf.int32)
        return tf.clip_by_value(k, lo, hi)

    def _upsample(self, field, render_hw):
        """Bilinear resize of a flat field to the output size, in output pixels."""
        if render_hw == (self.height, self.width):
            return field
        image = tf.reshape(field, [render_hw[0], render_hw[1], 1])
        image = tf.image.resize(image, [self.height, self.width], method="bilinear")
        ratio = 0.5 * (self.height / render_hw[0] + self.width / render_hw[1])
        return tf.reshape(image, [-1]) * ratio

    def _parts_for(self, kind, seed):
        """(object mask, free-form mask), bool [height * width], for a fixed kind."""
        rh, rw = self._render_hw
        xs, ys = _pixel_grid(rh, rw)
        s = tf.random.experimental.stateless_split(seed, 4)
        target = tf.random.stateless_uniform([], s[0], self.min_area, self.max_area)
        k_render = self._pixel_count(target, rh * rw)
        k_out = self._pixel_count(target, self.height * self.width)
        n_out = self.height * self.width
        none = tf.zeros([n_out], tf.bool)

        if kind == "object":
            field = self._objects_until(s[1], k_render, xs, ys, rh, rw)
            mask, _ = select_lowest(self._upsample(field, (rh, rw)), k_out)
            return mask, none
        if kind == "free_form":
            field = self._strokes_until(
                s[2], tf.zeros([rh * rw], tf.bool), k_render, 1, xs, ys, rh, rw
            )
            mask, _ = select_lowest(self._upsample(field, (rh, rw)), k_out)
            return none, mask

        # Mixed: objects take exactly round(q * k) pixels, strokes the rest;
        # both shares are at least one pixel so both kinds are present.
        share = tf.random.stateless_uniform([], s[3], 0.3, 0.7)

        def object_count(k):
            k_obj = tf.cast(tf.round(share * tf.cast(k, tf.float32)), tf.int32)
            return tf.clip_by_value(k_obj, tf.minimum(k, 1), tf.maximum(k - 1, 0))

        object_field = self._objects_until(s[1], object_count(k_render), xs, ys, rh, rw)
        object_render, _ = select_lowest(object_field, object_count(k_render))
        stroke_field = self._strokes_until(s[2], object_render, k_render, 1, xs, ys, rh, rw)
        if (rh, rw) == (self.height, self.width):
            object_out = object_render
        else:
            object_out, _ = select_lowest(self._upsample(object_field, (rh, rw)), object_count(k_out))
        stroke_out = self._upsample(stroke_field, (rh, rw))
        # Object pixels rank first so the union is filled by strokes only.
        forced = tf.reduce_min(stroke_out) - 1.0
        mask, _ = select_lowest(tf.where(object_out, forced, stroke_out), k_out)
        return object_out, tf.logical_and(mask, tf.logical_not(object_out))

    def _generate_parts(self, seed):
        if self.kind == "either":
            choose = tf.random.experimental.stateless_fold_in(seed, 7919)
            is_object = tf.random.stateless_uniform([], choose) < 0.5
            object_part, free_part = tf.cond(
                is_object,
                lambda: self._parts_for("object", seed),
                lambda: self._parts_for("free_form", seed),
            )
        else:
            object_part, free_part = self._parts_for(self.kind, seed)
        shape = [self.height, self.width, 1]
        object_part = tf.reshape(tf.cast(object_part, tf.float32), shape)
        free_part = tf.reshape(tf.cast(free_part, tf.float32), shape)
        return {"mask": object_part + free_part, "object": object_part, "free_form": free_part}


def random_silhouette(seed, area_px, center, angle, xs, ys):
    """Field of a smooth star-shaped blob of about ``area_px`` pixels.

    The radius is a random low-order Fourier series in the polar angle,
    r(phi) = 1 + sum_k a_k cos(k phi + p_k), with a_k shrinking as 1/k so the
    outline stays smooth, then the blob is stretched (area kept) and rotated.
    A stand-in for real object shapes when no templates are given.
    """
    s = tf.random.experimental.stateless_split(seed, 3)
    order = tf.range(1, _SILHOUETTE_HARMONICS + 1, dtype=tf.float32)
    amps = tf.random.stateless_uniform([_SILHOUETTE_HARMONICS], s[0], 0.0, 0.35) / order
    phases = tf.random.stateless_uniform([_SILHOUETTE_HARMONICS], s[1], 0.0, _TWO_PI)
    aspect = tf.exp(tf.random.stateless_uniform([], s[2], -0.5, 0.5))
    # Area of the unit blob: 0.5 * integral of r^2 = pi * (1 + sum a_k^2 / 2).
    radius = tf.sqrt(area_px / (math.pi * (1.0 + 0.5 * tf.reduce_sum(amps * amps))))
    dx, dy = xs - center[0], ys - center[1]
    cos, sin = tf.cos(angle), tf.sin(angle)
    qx = (cos * dx + sin * dy) / (radius * aspect)
    qy = (-sin * dx + cos * dy) * aspect / radius
    rho = tf.sqrt(qx * qx + qy * qy)
    phi = tf.atan2(qy, qx)
    r = 1.0 + tf.reduce_sum(amps[:, None] * tf.cos(order[:, None] * phi[None, :] + phases[:, None]), axis=0)
    r = tf.maximum(r, 0.2)
    return (rho - r) * radius * tf.minimum(aspect, 1.0 / aspect)


_SAMPLE_CACHE = {}


def sample_mask(height, width, seed, **kwargs):
    """A fixed, seeded mask as np.uint8 [height, width] with 0 / 255 (255 = hole).

    For evaluation at any size: ``kwargs`` go to ``MaskGenerator``; unless
    given, ``max_render_side`` is 1024 so e.g. 5120x2880 masks are drawn at
    1024x576 and upsampled as distance fields (smooth edges, exact area).
    """
    kwargs.setdefault("max_render_side", 1024)
    key = (int(height), int(width), tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
    generator = _SAMPLE_CACHE.get(key)
    if generator is None:
        generator = MaskGenerator(height, width, **kwargs)
        if len(_SAMPLE_CACHE) > 16:
            _SAMPLE_CACHE.clear()
        _SAMPLE_CACHE[key] = generator
    mask = generator(tf.constant([int(seed), 0], tf.int64))
    return (mask.numpy()[:, :, 0] * 255).astype(np.uint8)
