"""``python -m hifill_tf.evaluate``: the command line of the quality report (see the package
docstring, which ``--help`` prints)."""

import os
import sys

import hifill_tf.evaluate as _package
from hifill_tf.evaluate import (
    METHODS,
    RESAMPLING,
    InputError,
    _import_cv2,
    _photo_paths,
    evaluate,
    markdown_table,
    parse_methods,
    parse_sizes,
    size_label,
    to_json,
    write_atomic,
)

__doc__ = _package.__doc__  # absl's --help prints the docstring of the main module


def _define_flags():
    # Defined only when run as a program, so importing the library never collides with the
    # flags of another front end (train.py has --seed, --min_area, ...).
    from absl import flags

    from hifill_tf import flags as shared_flags

    flags.DEFINE_string("data_dir", None, "Folder of photos to evaluate on (jpg, png, webp, tif, bmp; not recursive).")
    flags.DEFINE_list("images", None, "Instead of --data_dir: comma-separated photo files.")
    flags.DEFINE_integer("max_images", 0, "Use only the first N photos (sorted by name); 0 = all.")
    flags.DEFINE_list("sizes", ["512x512", "2048x1280", "native"], "Sizes WIDTHxHEIGHT to resize every photo to, or 'native' (as is).")
    flags.DEFINE_list("methods", list(METHODS), "Methods to compare: hifill (model + CRA), bicubic (model output up-sampled bicubically, §4.4), telea (OpenCV).")
    shared_flags.define_model("checkpoint")
    flags.DEFINE_integer("seed", 0, "Mask seed: photo k gets the hole of seed + k, the same for every method and size.")
    flags.DEFINE_float("min_area", 0.10, "Smallest hole, as a fraction of the image.")
    flags.DEFINE_float("max_area", 0.25, "Largest hole, as a fraction of the image (paper: up to 25%).")
    flags.DEFINE_enum("mask_kind", "mixed", ["free_form", "object", "mixed", "either"], "Hole shapes (hifill_tf.data.masks): strokes, object silhouettes, both, or one of them.")
    flags.DEFINE_enum("resample", "lanczos", list(RESAMPLING), "Filter for resizing photos to --sizes: lanczos, or area (box) averaging.")
    shared_flags.define_max_pixels(saved_model=False)
    flags.adopt_module_key_flags(shared_flags)  # --help lists them with this program's own
    flags.DEFINE_bool("ms_ssim", True, "Compute MS-SSIM (--noms_ssim skips it: the slowest metric on large photos).")
    flags.DEFINE_string("output", None, "Also write the Markdown table to this file (atomically).")
    flags.DEFINE_string("json", None, "Also write all results, per image included, as JSON to this file.")
    flags.DEFINE_integer("holes", 1, "Holes per photo and size (seeds seed + k * holes + j); each counts as one image.")
    flags.DEFINE_string("pictures", None, "Folder for one comparison picture per photo and size (every method and the truth, whole and 1:1).")


def _network_pixels(generator, max_pixels):
    if generator is None:
        return max_pixels
    from hifill_tf import cra

    return cra.network_pixels(generator, max_pixels)


def _check_writable(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{path}: folder {folder} does not exist")


def main(argv):
    from absl import flags

    from hifill_tf import flags as shared_flags, loading

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        sys.exit(f"evaluate: unexpected arguments {argv[1:]}")
    try:
        paths = _photo_paths(FLAGS.data_dir, FLAGS.images, FLAGS.max_images)
        sizes = parse_sizes(",".join(FLAGS.sizes))
        methods = parse_methods(",".join(FLAGS.methods))
        for path in (FLAGS.output, FLAGS.json):
            if path:
                _check_writable(path)
        if problem := shared_flags.check_one_model():
            raise InputError(problem)
        generator, model = None, None
        if {"hifill", "bicubic"} & set(methods):
            generator, source = loading.generator_from(FLAGS.weights or FLAGS.checkpoint)
            model = source.path
        if "telea" in methods:
            _import_cv2()
        results = evaluate(paths, sizes, methods, generator, seed=FLAGS.seed,
                           min_area=FLAGS.min_area, max_area=FLAGS.max_area,
                           mask_kind=FLAGS.mask_kind, max_pixels=FLAGS.max_pixels,
                           resample=FLAGS.resample, with_ms_ssim=FLAGS.ms_ssim,
                           progress=lambda line: print(line, file=sys.stderr, flush=True),
                           holes=FLAGS.holes, pictures=FLAGS.pictures)
    except (InputError, loading.ModelError, ImportError, ValueError, FileNotFoundError) as error:
        sys.exit(f"evaluate: {error}")

    config = {"model": model, "photos": len(paths), "sizes": [size_label(s) for s in sizes],
              "methods": methods, "seed": FLAGS.seed, "min_area": FLAGS.min_area,
              "max_area": FLAGS.max_area, "mask_kind": FLAGS.mask_kind,
              "resample": FLAGS.resample, "holes": FLAGS.holes,
              "max_pixels": _network_pixels(generator, FLAGS.max_pixels)}
    per_photo = f"{FLAGS.holes} " if FLAGS.holes > 1 else ""
    budget = config["max_pixels"]
    network = f" (network input <= {budget} px)" if budget else ""
    title = (f"{len(paths)} photos, model {model or 'none'}{network}, {per_photo}{FLAGS.mask_kind} holes "
             f"of {100 * FLAGS.min_area:.0f}-{100 * FLAGS.max_area:.0f}%"
             f"{' per photo' if per_photo else ''}, seed {FLAGS.seed}")
    table = markdown_table(results, title=title)
    print(table)
    if FLAGS.output:
        write_atomic(FLAGS.output, table)
    if FLAGS.json:
        write_atomic(FLAGS.json, to_json(results, config))


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
