"""HiFill as a SavedModel for TensorFlow Serving: the generator plus the CRA graph.

Three signatures, every one traced once and free of NumPy, so Serving runs
the whole pipeline of :func:`hifill_tf.cra.inpaint_tensor` (plan, network,
Eq. (4) aggregation, paste) for photos of any size:

``serving_default``
    ``image`` uint8 [1, H, W, 3] and ``mask`` uint8 [1, H, W, 1] -> ``inpainted``
    uint8 [1, H, W, 3]. Masks follow :func:`hifill_tf.io.hole_mask`: above 127
    is hole, and a mask whose values are only 0 and 1 is a 0/1 mask (1 = hole).
``inpaint_bytes``
    ``image_bytes`` and ``mask_bytes``, tf.string holding one PNG/JPEG/GIF/BMP
    each, as a scalar or a [1] vector (unknown rank, so both the REST
    ``"inputs"`` form ``{"b64": ...}`` and ``[{"b64": ...}]`` / the
    ``"instances"`` form work) -> ``png_bytes`` tf.string [1], the PNG of the
    result. The ``_bytes`` suffix makes Serving's REST API base64 the output
    (``{"b64": ...}``). Masks are read as :func:`hifill_tf.io.read_mask` reads
    them: the brightest of R, G, B, composited over black by its alpha,
    then the rule of ``serving_default``. EXIF orientation is not applied (TensorFlow's decoders
    ignore it).
``generator_512``
    ``image`` float32 [N, 512, 512, 3] in [-1, 1] and ``mask`` float32
    [N, 512, 512, 1] (1 = hole) -> the raw network outputs ``coarse``,
    ``refined``, ``inpainted`` [N, 512, 512, 3] and ``scores`` [N, 1024, 1024].

Bad input fails in the graph with an InvalidArgumentError that says what is
wrong (a mask of another size, a side under 16 pixels, a hole covering the
whole photo, more than one encoded image).
"""

import os
import shutil
import tempfile

import tensorflow as tf

from hifill_tf import cra
from hifill_tf.api import MIN_SIDE
from hifill_tf.export.output_dir import check_output_dir

from hifill_tf.io import HOLE_THRESHOLD
NETWORK_SIDE = 512  # generator_512: the paper's training and inference size (§4.1)


def hole_tensor(mask_u8):
    """uint8 mask -> uint8 hole map (1 = hole): :func:`hifill_tf.io.hole_mask` in the graph."""
    binary = tf.reduce_max(mask_u8) <= 1  # a 0/1 mask, never silently empty
    return tf.cast(tf.where(binary, tf.equal(mask_u8, 1), mask_u8 > HOLE_THRESHOLD), tf.uint8)


def _decode_mask(data):
    """Encoded mask -> uint8 [H, W, 1] grey value, as hifill_tf.io.read_mask computes it."""
    pixels = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    channels = tf.shape(pixels)[-1]
    has_alpha = tf.equal(channels % 2, 0)  # LA or RGBA
    colour = channels - tf.cast(has_alpha, tf.int32)
    value = tf.cast(tf.reduce_max(pixels[..., :colour], axis=-1, keepdims=True), tf.int32)
    alpha = tf.where(has_alpha, tf.cast(pixels[..., -1:], tf.int32), 255)
    # Composite over black with read_mask's rounding, so transparent pixels are never holes.
    return tf.cast((value * alpha + 127) // 255, tf.uint8)


def _single(data, name):
    """A scalar or [1] string tensor -> scalar; anything else fails with a clear message."""
    check = tf.debugging.assert_equal(
        tf.size(data), 1,
        message=f"{name}: inpaint_bytes takes one encoded image, as a scalar or a [1] vector")
    with tf.control_dependencies([check]):
        return tf.reshape(data, [])


class HiFillServing(tf.Module):
    """The generator's variables and the three serving functions.

    The generator itself is not tracked, only its variables: the SavedModel
    then holds plain tf.functions and a checkpoint, which is all Serving
    needs (as keras.export.ExportArchive does).

    Args:
        generator: a :class:`hifill_tf.models.generator.Generator`.
        max_pixels: pixel budget of the network input (§4.1); None = ``cra.network_pixels``
            (the budget stored with the weights, else 512 * 512).
    """

    def __init__(self, generator, max_pixels=None):
        super().__init__(name="hifill")
        max_pixels = cra.network_pixels(generator, max_pixels)
        generator.build()
        # Track the tf.Variables inside the Keras variables: a tracked keras.Variable exports a
        # second, initialised copy of itself, which the SavedModel's saver restores while the
        # functions read the first, so TF1-style loaders (TensorFlow Serving, saved_model_cli
        # run) fail with "Could not find variable" (keras-team/keras#20095); tf.saved_model.load
        # hides the problem.
        self.generator_variables = [v.value for v in generator.variables]
        self.max_pixels = max_pixels

        # autograph=False here and below: the graphs have no Python control flow on tensors
        # (as api.inpaint_function), and converting cra took part of every export.
        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                                      tf.TensorSpec([None, None, 1], tf.uint8, name="hole")],
                      autograph=False)
        def inpaint(image, hole):
            """One photo uint8 [H, W, 3], hole uint8 [H, W, 1] (non-zero = hole)."""
            size, hole_size = tf.shape(image)[:2], tf.shape(hole)[:2]
            checks = [
                tf.debugging.assert_equal(
                    hole_size, size,
                    message="the mask and the image must have the same height and width (mask, then image)"),
                tf.debugging.assert_greater_equal(
                    tf.reduce_min(size), MIN_SIDE,
                    message=f"both sides of the image must be at least {MIN_SIDE} pixels"),
            ]
            with tf.control_dependencies(checks):
                return cra.inpaint_tensor(generator, image, hole, max_pixels)

        # One trace of the CRA graph, called by both photo signatures: the
        # SavedModel's function library holds it once.

        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="image"),
                                      tf.TensorSpec([1, None, None, 1], tf.uint8, name="mask")],
                      autograph=False)
        def serving_default(image, mask):
            return {"inpainted": inpaint(image[0], hole_tensor(mask[0]))[None]}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="image_bytes"),
                                      tf.TensorSpec(None, tf.string, name="mask_bytes")],
                      autograph=False)
        def inpaint_bytes(image_bytes, mask_bytes):
            image = tf.io.decode_image(_single(image_bytes, "image_bytes"), channels=3,
                                       dtype=tf.uint8, expand_animations=False)
            mask = _decode_mask(_single(mask_bytes, "mask_bytes"))
            result = inpaint(image, hole_tensor(mask))
            return {"png_bytes": tf.reshape(tf.io.encode_png(result), [1])}

        side = NETWORK_SIDE

        @tf.function(input_signature=[
            tf.TensorSpec([None, side, side, 3], tf.float32, name="image"),
            tf.TensorSpec([None, side, side, 1], tf.float32, name="mask")], autograph=False)
        def generator_512(image, mask):
            return dict(generator(image, mask))

        # Not tracked: a tracked tf.function is saved with every concrete function it has,
        # and tf.saved_model.save traces it again under its save context (a different cache
        # key), which was 8 of the 18 s of an export. Only the signatures are saved.
        self._functions = self._no_dependency(
            {"serving_default": serving_default, "inpaint_bytes": inpaint_bytes,
             "generator_512": generator_512})

    def signatures(self):
        """{signature name: concrete function} for tf.saved_model.save."""
        return {name: function.get_concrete_function()
                for name, function in self._functions.items()}


def describe_signatures(signatures):
    """Human-readable lines 'name: inputs -> outputs' for concrete functions."""

    def spec(name, tensor):
        shape = "unknown rank" if tensor.shape.rank is None else str(
            [d if d is not None else "?" for d in tensor.shape.as_list()]).replace("'", "")
        return f"{name} {tensor.dtype.name} {shape}"

    lines = []
    for name, function in signatures.items():
        inputs = function.structured_input_signature[0]  # TensorSpecs named like the inputs
        outputs = function.structured_outputs
        lines.append(f"{name}: " + ", ".join(spec(s.name, s) for s in inputs)
                     + " -> " + ", ".join(spec(k, v) for k, v in sorted(outputs.items())))
    return lines


def export_saved_model(generator, output_dir, max_pixels=None, overwrite=False):
    """Write the SavedModel of ``generator`` to ``output_dir``; see the module docstring.

    The model is written to a temporary directory beside ``output_dir`` and
    renamed into place, so a failed export leaves nothing half-written (and
    an old export, with ``overwrite``, intact). For TensorFlow Serving, use a
    numbered version folder such as ``models/hifill/1``.

    Returns {signature name: concrete function} (see :func:`describe_signatures`).
    """
    output_dir = os.path.abspath(os.fspath(output_dir))
    check_output_dir(output_dir, overwrite)
    module = HiFillServing(generator, max_pixels)
    signatures = module.signatures()

    parent, base = os.path.split(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide the model from a server user
    old = None  # where a replaced export waits until the new one is in place
    try:
        tf.saved_model.save(module, staging, signatures=signatures)
        check_output_dir(output_dir, overwrite)  # again: the export took a while
        if os.path.isdir(output_dir):
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.replace(output_dir, os.path.join(old, base))
        os.replace(staging, output_dir)
    except BaseException:
        if old is not None and not os.path.exists(output_dir):
            os.replace(os.path.join(old, base), output_dir)
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return signatures
