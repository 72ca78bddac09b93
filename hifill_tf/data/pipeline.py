"""Training input pipeline: image files or a TFDS dataset -> batches of image and mask.

Public API::

    list_image_files(directory) -> list[str]
    validate_image_files(paths, num_workers=2) -> (good, bad)
    make_dataset(source, image_size, batch_size, mode="crop", factor_range=(1, None),
                 seed=0, mask_generator=None, mask_kwargs=None, shuffle=True,
                 repeat=True, tfds_data_dir=None, validate=True,
                 shuffle_buffer=512) -> (tf.data.Dataset, DatasetInfo)

Batches are dicts ``{"image": float32 [B, S, S, 3] in [-1, 1], "mask": float32
[B, S, S, 1]}`` with 1 = hole (§3.5, "Training Procedure"). In the default
"crop" mode each example is reduced from photo resolution by the same code
inference uses (``cra.reduce_photo``; see ``training_view``).

Unreadable files. For a directory every listed file is decoded once on the
host with the same TF decoders the pipeline uses (JPEGs at 1/8 scale, which
still reads the whole entropy-coded stream, so truncation is caught); the
files that fail are left out, counted in ``DatasetInfo`` and named in a
warning. The decode map is also followed by ``ignore_errors`` so a file that
breaks later is dropped rather than fatal (with a logged warning, uncounted);
that is the only guard for TFDS sources, whose images were checked when the
dataset was built.

Determinism. Files are shuffled with ``seed``; each element then gets a
seed folded from ``seed`` and its position in the (shuffled, repeated)
stream, which drives its crop, flip and mask through stateless ops, so the
same arguments give the same batches.
"""

import dataclasses
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf

from hifill_tf import cra
from hifill_tf.data.files import list_image_files
from hifill_tf.data.masks import MaskGenerator
from hifill_tf.data.numpy_feed import GREY_PROBABILITY, check_view_arguments

MODES = ("crop", "resize")

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class DatasetInfo:
    """What ``make_dataset`` found in its source.

    num_files: image files listed (or examples in the TFDS split).
    num_skipped: files left out because they could not be decoded.
    skipped_files: their paths.
    """

    source: str
    num_files: int
    num_skipped: int = 0
    skipped_files: list = dataclasses.field(default_factory=list)

    @property
    def num_usable(self):
        return self.num_files - self.num_skipped


def _check_image(path):
    """True if the pipeline's decoders can read ``path``."""
    try:
        data = tf.io.read_file(path)
        if tf.io.is_jpeg(data):
            tf.io.decode_jpeg(data, channels=3, ratio=8)
        else:
            tf.io.decode_image(data, channels=3, expand_animations=False)
        return True
    except (tf.errors.OpError, OSError):
        return False


def validate_image_files(paths, num_workers=2):
    """Split ``paths`` into (readable, unreadable) by decoding each once.

    Eager TF decodes release the GIL, so a few threads overlap file reads and
    decoding. About 8 ms per 2560x1600 JPEG on one core.
    """
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        ok = list(pool.map(_check_image, paths))
    good = [p for p, fine in zip(paths, ok) if fine]
    bad = [p for p, fine in zip(paths, ok) if not fine]
    return good, bad


def _view_window(height, width, size, factor_range, seed):
    """Window (top, left, h, w) of a photo and the integer factor f of one training view.

    f is uniform over the integers in ``factor_range`` that fit the photo; each
    side is uniform in ``((S - 16) f, S f]``, so mirror padding to S f adds at
    most one grid cell, as at inference (``cra.plan`` pads less than 16 f).
    """
    s = tf.random.experimental.stateless_split(seed, 5)
    lo, hi = factor_range
    fit = tf.maximum((tf.minimum(height, width) - 1) // (size - cra.CELL), 1)
    high = fit if hi is None else tf.minimum(int(hi), fit)
    low = tf.minimum(int(lo), high)
    factor = tf.random.stateless_uniform([], s[0], low, high + 1, dtype=tf.int32)

    def side(n, seed):
        return tf.random.stateless_uniform([], seed, (size - cra.CELL) * factor + 1,
                                           tf.minimum(size * factor, n) + 1, dtype=tf.int32)

    h, w = side(height, s[1]), side(width, s[2])
    top = tf.random.stateless_uniform([], s[3], 0, height - h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], s[4], 0, width - w + 1, dtype=tf.int32)
    return top, left, h, w, factor


def _decode_view(encoded, size, factor_range, seed):
    """(uint8 window [h, w, 3], f) of one training view; JPEGs decode only the window.

    Photos with a short side below S are first scaled up so it is S (bilinear).
    """

    def crop(image):
        shape = tf.shape(image)
        top, left, h, w, factor = _view_window(shape[0], shape[1], size, factor_range, seed)
        return image[top:top + h, left:left + w], factor

    def scaled_up(image):
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        target = tf.cast(tf.math.ceil(shape * size / tf.reduce_min(shape)), tf.int32)
        image = tf.image.resize(image, target, method="bilinear")
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    def decoded():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        small = tf.reduce_min(tf.shape(image)[:2]) < size
        return crop(tf.cond(small, lambda: scaled_up(image), lambda: image))

    def jpeg_window():
        shape = tf.io.extract_jpeg_shape(encoded)
        top, left, h, w, factor = _view_window(shape[0], shape[1], size, factor_range, seed)
        return tf.io.decode_and_crop_jpeg(encoded, tf.stack([top, left, h, w]), channels=3), factor

    def jpeg():
        small = tf.reduce_min(tf.io.extract_jpeg_shape(encoded)[:2]) < size
        return tf.cond(small, decoded, jpeg_window)

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, decoded)


def training_view(window, hole, factor, size):
    """Network input of one view: ``cra.reduce_photo``, the very code inference runs.

    window uint8 [h, w, 3] and hole bool [h, w, 1] at photo resolution, with
    ``(S - 16) f < h, w <= S f``. Returns (low float32 [S, S, 3] in 0..255,
    low hole float32 [S, S, 1]).
    """
    low, low_hole = cra.reduce_photo(window, hole, factor, size, size)
    low.set_shape([size, size, 3])
    low_hole.set_shape([size, size, 1])
    return low, low_hole


def _decode_whole(encoded, size):
    """Whole image, uint8; JPEGs are decoded at the coarsest 1/2^n scale still >= S."""

    def jpeg():
        shape = tf.io.extract_jpeg_shape(encoded)
        fold = tf.cast(tf.minimum(shape[0], shape[1]), tf.float32) / float(size)
        branch = tf.clip_by_value(tf.cast(tf.floor(tf.math.log(tf.maximum(fold, 1.0)) / math.log(2.0)), tf.int32), 0, 3)
        return tf.switch_case(
            branch,
            [lambda r=r: tf.io.decode_jpeg(encoded, channels=3, ratio=r) for r in (1, 2, 4, 8)],
        )

    def other():
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def _parse_source(source):
    """(kind, name, split) for "tfds:NAME[:SPLIT]", else ("dir", path, None)."""
    if isinstance(source, str) and source.startswith("tfds:"):
        name, _, split = source[len("tfds:") :].partition(":")
        if not name:
            raise ValueError(f"source {source!r}: expected 'tfds:NAME' or 'tfds:NAME:SPLIT'")
        return "tfds", name, split or "train"
    return "dir", os.fspath(source), None


def _tfds_images(name, split, data_dir, shuffle, seed):
    """Encoded image bytes of a prepared TFDS dataset, and its example count."""
    import tensorflow_datasets as tfds  # slow import, only for TFDS sources

    builder = tfds.builder(name, data_dir=data_dir)
    features = builder.info.features
    if "image" not in features or not isinstance(features["image"], tfds.features.Image):
        raise ValueError(f"TFDS dataset {name!r} has no 'image' Image feature; features: {list(features)}")
    try:
        dataset = builder.as_dataset(
            split=split,
            shuffle_files=shuffle,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
            decoders={"image": tfds.decode.SkipDecoding()},
        )
    except AssertionError as error:  # tfds' "not prepared / not found" signal
        raise FileNotFoundError(
            f"TFDS dataset {name!r} split {split!r} is not prepared in data_dir "
            f"{data_dir!r} (it cannot be downloaded here): {error}"
        ) from error
    try:
        count = builder.info.splits[split].num_examples
    except (KeyError, ValueError):
        count = -1
    image = tf.autograph.experimental.do_not_convert(lambda example: example["image"])
    return dataset.map(image), count


_PERMUTATIONS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
_LUMA = (0.299, 0.587, 0.114)


def recolour(image, seed):
    """A random channel permutation of ``image`` [..., 3], made grey with GREY_PROBABILITY."""
    s = tf.random.experimental.stateless_split(seed, 2)
    which = tf.random.stateless_uniform([], s[0], 0, len(_PERMUTATIONS), dtype=tf.int32)
    luma = tf.reduce_sum(image * tf.constant(_LUMA, image.dtype), axis=-1, keepdims=True)
    image = tf.gather(image, tf.gather(tf.constant(_PERMUTATIONS), which), axis=-1)
    grey = tf.random.stateless_uniform([], s[1]) < GREY_PROBABILITY
    return tf.where(grey, tf.broadcast_to(luma, tf.shape(image)), image)


def make_dataset(
    source,
    image_size,
    batch_size,
    mode="crop",
    factor_range=(1, None),
    seed=0,
    mask_generator=None,
    mask_kwargs=None,
    shuffle=True,
    repeat=True,
    tfds_data_dir=None,
    validate=True,
    shuffle_buffer=512,
    color_augment=False,
):
    """Batches of training images in [-1, 1] and random hole masks.

    Args:
        source: a directory of images (searched recursively), or
            ``"tfds:NAME"`` / ``"tfds:NAME:SPLIT"`` (split defaults to
            "train") for a TFDS dataset already prepared in ``tfds_data_dir``,
            read from its "image" feature.
        image_size: side S of the square network input.
        batch_size: examples per batch; the last partial batch is dropped so
            the batch size is static.
        mode: "crop" makes each example as inference makes its network input
            (``training_view``): a window of the photo of about S f x S f
            pixels, f a random integer, hole drawn at photo resolution,
            mirror-padded and averaged f x f down to S x S with the any-pixel
            hole rule (``cra.reduce_photo``). f = 1 gives native-resolution
            texture, the largest f nearly the whole short side. Photos with a
            short side below S are first scaled up so it is S. "resize" scales
            the whole image to S x S, aspect not kept (CelebA-HQ, DIV2K), with
            masks drawn at S x S; it does not match inference.
        factor_range: crop mode: ``(lo, hi)`` integer averaging factors to draw
            f from (uniformly), ``hi=None`` for as large as the photo allows.
        seed: drives file shuffling, windows, flips and masks.
        mask_generator: callable seed [2] -> float32 [M, M, 1] (1 = hole);
            default ``MaskGenerator(M, M, **mask_kwargs)`` with M = 2 S in crop
            mode (the mask is scaled to each window with nearest neighbours, so
            its edges are finer than a network pixel) and M = S in resize mode.
        shuffle, repeat: shuffle the file order (TFDS: files and a buffer of
            ``shuffle_buffer`` encoded images); repeat forever.
        validate: decode each file once first and leave out unreadable ones
            (directory sources).
        color_augment: permute each view's RGB channels at random (one of 6) and turn
            ``GREY_PROBABILITY`` of them grey (BT.601 luma). With few training photos a
            network otherwise learns their palettes instead of taking colour from the
            context; these changes keep every photo a valid photo.

    Returns:
        (dataset, DatasetInfo).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    check_view_arguments(image_size, batch_size, factor_range, size_name="image_size")
    size = int(image_size)
    mask_generator, canvas = _hole_generator(mode, size, mask_generator, mask_kwargs)
    encoded, info, from_files = _encoded_images(source, shuffle, seed, validate, tfds_data_dir,
                                                shuffle_buffer)
    usable = info.num_usable
    if not repeat and 0 <= usable < batch_size:
        raise ValueError(
            f"source {source!r} has {usable} usable images, fewer than batch_size={batch_size}, "
            "and repeat=False: no full batch"
        )
    if repeat:
        encoded = encoded.repeat()

    decode = _decoder(mode, size, factor_range, seed, from_files)
    augment = _augmenter(size, canvas, mask_generator, color_augment)
    dataset = encoded.enumerate()
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Only the decode can meet bad data; errors in masks or augmentation stay fatal.
    dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE), info


def _hole_generator(mode, size, mask_generator, mask_kwargs):
    """(mask generator, canvas side M) of ``make_dataset``: M = 2 S in crop mode, S in resize."""
    if mask_generator is not None and mask_kwargs:
        raise ValueError("give either mask_generator or mask_kwargs, not both")
    canvas = 2 * size if mode == "crop" else size
    if mask_generator is None:
        mask_kwargs = dict(mask_kwargs or {})
        if mode == "crop":
            mask_kwargs.setdefault("max_render_side", size)  # distance fields at S: fast
        mask_generator = MaskGenerator(canvas, canvas, **mask_kwargs)
    generator_hw = (getattr(mask_generator, "height", canvas), getattr(mask_generator, "width", canvas))
    if generator_hw != (canvas, canvas):
        raise ValueError(f"mask_generator makes {generator_hw[0]}x{generator_hw[1]} masks; mode "
                         f"{mode!r} with image_size {size} needs {canvas}x{canvas}")
    return mask_generator, canvas


def _encoded_images(source, shuffle, seed, validate, tfds_data_dir, shuffle_buffer):
    """(dataset of file paths or encoded bytes, DatasetInfo, True if paths) of ``source``."""
    kind, name, split = _parse_source(source)
    if kind == "tfds":
        encoded, count = _tfds_images(name, split, tfds_data_dir, shuffle, seed)
        info = DatasetInfo(source=source, num_files=count)
        if shuffle:
            encoded = encoded.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return encoded, info, False
    paths = list_image_files(name)
    good, bad = validate_image_files(paths) if validate else (paths, [])
    info = DatasetInfo(source=name, num_files=len(paths), num_skipped=len(bad), skipped_files=bad)
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        logger.warning("skipped %d unreadable image file(s) of %d in %s: %s", len(bad), len(paths), name, shown)
    if not good:
        raise ValueError(f"image directory {name!r}: none of its {len(paths)} image files can be decoded")
    encoded = tf.data.Dataset.from_tensor_slices(good)
    if shuffle:
        encoded = encoded.shuffle(len(good), seed=seed, reshuffle_each_iteration=True)
    return encoded, info, True


def _decoder(mode, size, factor_range, seed, from_files):
    """The map (index, path or bytes) -> (example seed, uint8 window, factor f)."""
    base_seed = tf.constant([seed, 0x48694669], tf.int64)  # second word: "HiFi"

    def decode(index, item):
        example_seed = tf.random.experimental.stateless_fold_in(base_seed, index)
        data = tf.io.read_file(item) if from_files else item
        if mode == "crop":
            crop_seed = tf.random.experimental.stateless_split(example_seed, 3)[0]
            window, factor = _decode_view(data, size, factor_range, crop_seed)
        else:
            image = tf.image.resize(_decode_whole(data, size), [size, size], method="bilinear",
                                    antialias=True)
            window = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
            factor = tf.constant(1)
        return example_seed, window, factor

    # Not converted by autograph (the branches are tf.cond already): converting the map
    # functions and all they call took seconds of every training start.
    return tf.autograph.experimental.do_not_convert(decode)


def _augmenter(size, canvas, mask_generator, color_augment):
    """The map (example seed, window, f) -> {"image", "mask"}: flip, hole, view, colour."""

    def augment(example_seed, window, factor):
        s = tf.random.experimental.stateless_split(example_seed, 3)  # window, flip, mask
        window = tf.image.stateless_random_flip_left_right(window, s[1])
        mask = tf.ensure_shape(mask_generator(s[2]), [canvas, canvas, 1])
        hole = tf.image.resize(mask, tf.shape(window)[:2], method="nearest") > 0.5
        image, mask = training_view(window, hole, factor, size)
        if color_augment:  # its own stream: windows, flips and masks stay as without it
            image = recolour(image, tf.random.experimental.stateless_fold_in(example_seed, 7))
        image = tf.clip_by_value(cra.to_network(image), -1.0, 1.0)
        return {"image": image, "mask": mask}

    return tf.autograph.experimental.do_not_convert(augment)  # as in _decoder
