"""Training input pipeline: image files or a TFDS dataset -> batches of image and mask.

Public API::

    list_image_files(directory) -> list[str]
    validate_image_files(paths, num_workers=2) -> (good, bad)
    make_dataset(source, image_size, batch_size, mode="crop", scale_range=None,
                 seed=0, mask_generator=None, mask_kwargs=None, shuffle=True,
                 repeat=True, tfds_data_dir=None, validate=True,
                 shuffle_buffer=512) -> (tf.data.Dataset, DatasetInfo)

Batches are dicts ``{"image": float32 [B, S, S, 3] in [-1, 1], "mask": float32
[B, S, S, 1]}`` with 1 = hole (§3.5, "Training Procedure").

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

from hifill_tf.data.masks import MaskGenerator

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
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


def list_image_files(directory):
    """Image files (jpg, jpeg, png, webp; any case) under ``directory``, recursively, sorted."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"image directory {directory!r} does not exist")
    paths = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(directory, followlinks=True)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not paths:
        raise ValueError(
            f"image directory {directory!r} holds no images with extensions {IMAGE_EXTENSIONS}"
        )
    return paths


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


def _crop_side(height, width, size, scale_range, seed):
    """Side (in source pixels) of the square window that becomes the S x S crop."""
    short = tf.cast(tf.minimum(height, width), tf.float32)
    size = float(size)
    if scale_range is None:
        target = tf.maximum(short, size)
    else:
        lo, hi = scale_range
        # Short side after scaling: log-uniform in [S*lo, min(S*hi, native)];
        # images already below S*lo are left at max(native, S).
        low = tf.minimum(size * lo, tf.maximum(short, size))
        high = tf.maximum(low, tf.minimum(size * hi, short))
        u = tf.random.stateless_uniform([], seed)
        target = tf.exp(tf.math.log(low) + u * (tf.math.log(high) - tf.math.log(low)))
    side = tf.cast(tf.round(size * short / target), tf.int32)
    return tf.clip_by_value(side, 1, tf.minimum(height, width))


def _decode_crop(encoded, size, scale_range, seed):
    """Random square window of the image (JPEGs decode only the window), uint8."""
    s = tf.random.experimental.stateless_split(seed, 3)

    def window(height, width):
        side = _crop_side(height, width, size, scale_range, s[0])
        top = tf.random.stateless_uniform([], s[1], 0, height - side + 1, dtype=tf.int32)
        left = tf.random.stateless_uniform([], s[2], 0, width - side + 1, dtype=tf.int32)
        return top, left, side

    def jpeg():
        shape = tf.io.extract_jpeg_shape(encoded)
        top, left, side = window(shape[0], shape[1])
        return tf.io.decode_and_crop_jpeg(encoded, tf.stack([top, left, side, side]), channels=3)

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        shape = tf.shape(image)
        top, left, side = window(shape[0], shape[1])
        return image[top : top + side, left : left + side]

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


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
    return dataset.map(lambda example: example["image"]), count


GREY_PROBABILITY = 0.15
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
    scale_range=None,
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
        image_size: side S of the square training images.
        batch_size: examples per batch; the last partial batch is dropped so
            the batch size is static.
        mode: "crop" takes a random S x S crop at native resolution (Places2
            in the paper; images with a short side below S are first scaled up
            so it is S); "resize" scales the whole image to S x S, aspect not
            kept (CelebA-HQ, DIV2K).
        scale_range: crop mode only, ``(lo, hi)`` with ``1 <= lo <= hi``
            (``hi`` may be ``math.inf``). Before cropping the image is scaled
            so its short side is drawn log-uniformly in
            ``[S * lo, min(S * hi, native short side)]``, so crops range from
            nearly the whole image (S * lo) to native-resolution texture;
            images whose short side is below ``S * lo`` are not scaled down.
            Implemented as a crop of the matching window resized to S x S.
        seed: drives file shuffling, crops, flips and masks.
        mask_generator: callable seed [2] -> float32 [S, S, 1]; default
            ``MaskGenerator(S, S, **mask_kwargs)``.
        shuffle, repeat: shuffle the file order (TFDS: files and a buffer of
            ``shuffle_buffer`` encoded images); repeat forever.
        validate: decode each file once first and leave out unreadable ones
            (directory sources).
        color_augment: permute each crop's RGB channels at random (one of 6) and turn
            ``GREY_PROBABILITY`` of them grey (BT.601 luma). With few training photos a
            network otherwise learns their palettes instead of taking colour from the
            context; these changes keep every photo a valid photo.

    Returns:
        (dataset, DatasetInfo).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if int(image_size) != image_size or image_size < 1:
        raise ValueError(f"image_size must be a positive integer; got {image_size!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    if scale_range is not None:
        if mode != "crop":
            raise ValueError(f"scale_range only applies to mode='crop'; got mode={mode!r}")
        if len(scale_range) != 2 or not 1.0 <= scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (lo, hi) with 1 <= lo <= hi; got {scale_range!r}")
    if mask_generator is not None and mask_kwargs:
        raise ValueError("give either mask_generator or mask_kwargs, not both")
    if mask_generator is None:
        mask_generator = MaskGenerator(image_size, image_size, **(mask_kwargs or {}))
    generator_hw = (getattr(mask_generator, "height", image_size), getattr(mask_generator, "width", image_size))
    if generator_hw != (image_size, image_size):
        raise ValueError(
            f"mask_generator makes {generator_hw[0]}x{generator_hw[1]} masks; image_size is {image_size}"
        )
    size = int(image_size)

    kind, name, split = _parse_source(source)
    if kind == "tfds":
        encoded, count = _tfds_images(name, split, tfds_data_dir, shuffle, seed)
        info = DatasetInfo(source=source, num_files=count)
        if shuffle:
            encoded = encoded.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
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
    usable = info.num_usable
    if not repeat and 0 <= usable < batch_size:
        raise ValueError(
            f"source {source!r} has {usable} usable images, fewer than batch_size={batch_size}, "
            "and repeat=False: no full batch"
        )
    if repeat:
        encoded = encoded.repeat()

    base_seed = tf.constant([seed, 0x48694669], tf.int64)  # second word: "HiFi"
    from_files = kind == "dir"

    def decode(index, item):
        example_seed = tf.random.experimental.stateless_fold_in(base_seed, index)
        data = tf.io.read_file(item) if from_files else item
        if mode == "crop":
            crop_seed = tf.random.experimental.stateless_split(example_seed, 3)[0]
            image = _decode_crop(data, size, scale_range, crop_seed)
        else:
            image = _decode_whole(data, size)
        image = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
        image.set_shape([size, size, 3])
        return example_seed, image

    def augment(example_seed, image):
        s = tf.random.experimental.stateless_split(example_seed, 3)  # crop, flip, mask
        image = tf.image.stateless_random_flip_left_right(image, s[1])
        if color_augment:  # its own stream: crops, flips and masks stay as without it
            image = recolour(image, tf.random.experimental.stateless_fold_in(example_seed, 7))
        image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
        mask = tf.ensure_shape(mask_generator(s[2]), [size, size, 1])
        return {"image": image, "mask": mask}

    dataset = encoded.enumerate()
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Only the decode can meet bad data; errors in masks or augmentation stay fatal.
    dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE), info
