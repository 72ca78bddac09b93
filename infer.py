"""Fill holes in photos of any size (up to 8K and beyond) with HiFill + CRA.

One photo:
  python infer.py --image photo.jpg --mask mask.png --output filled.jpg

A folder (each photo's mask has the same file stem, e.g. masks/photo.png for photo.jpg):
  python infer.py --input_dir photos/ --mask_dir masks/ --output_dir filled/

Masks are image files of the photo's size: white (> 127; 1 in a 0/1 file) marks the hole. With --mask_from_alpha
the photo's transparent pixels are the hole instead. The model is the bundled default, or
--weights FILE.npz, or --saved_model DIR (from export.py). Outputs have the photo's size, and
pixels outside the hole are the photo's; the format follows the output's extension.
Exit status: 0 when every photo was done, 1 when any failed (listed at the end), 2 on bad flags.
"""

import os
import sys
import time
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags  # noqa: E402

from hifill_tf import flags as shared_flags, io  # noqa: E402
from hifill_tf.batch import batch_summary, failure_message, hole_coverage, read_example  # noqa: E402
from hifill_tf.console import Progress, format_seconds  # noqa: E402
from hifill_tf.imports import skip_unused_imports  # noqa: E402
from hifill_tf.loading import ModelError, find_model, load_inpainter  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("image", None, "One photo to fill (jpg, png, webp, tif, bmp; RGBA, grayscale "
                    "and 16-bit are fine, EXIF orientation is applied).")
flags.DEFINE_string("mask", None, "Mask of --image: same size, white (> 127; 1 in a 0/1 file) = hole.")
flags.DEFINE_string("output", None, "Where to write the filled --image; the format follows the "
                    "extension.")
flags.DEFINE_string("input_dir", None, "Instead of --image: fill every photo in this folder.")
flags.DEFINE_string("mask_dir", None, "Masks of the --input_dir photos, matched by file stem: "
                    "photo.jpg takes photo.*, photo_mask.* or photo-mask.*. May be --input_dir.")
flags.DEFINE_string("output_dir", None, "Where the filled --input_dir photos go, under their "
                    "own file names.")
flags.DEFINE_string("side_by_side", None, "Also write a picture of input + hole next to the "
                    "output, with 1:1 crops of the hole, to this path (one photo).")
flags.DEFINE_string("side_by_side_dir", None, "With --input_dir: write such pictures to this "
                    "folder as <stem>.jpg.")
shared_flags.define_model("saved_model")
shared_flags.define_mask_reading()
flags.DEFINE_bool("overwrite", False, "Replace existing output files (inputs are never "
                  "overwritten).")
flags.DEFINE_bool("skip_existing", False, "With --input_dir: leave photos whose output exists "
                  "alone (to resume an interrupted batch).")
shared_flags.define_max_pixels()
shared_flags.define_feather()
shared_flags.define_quality()
flags.adopt_module_key_flags(shared_flags)  # --help lists them with this program's own

EXIT_FAILED = 1
EXIT_USAGE = 2


class Job(NamedTuple):
    image: str
    mask: str | None  # None with --mask_from_alpha
    output: str
    side_by_side: str | None


class Outcome(NamedTuple):
    status: str  # "done", "unchanged" (empty mask) or "skipped"
    message: str


def _usage(message):
    return app.UsageError(message, exitcode=EXIT_USAGE)


def _check_flags():
    """Raises UsageError for a contradictory or incomplete set of flags."""
    single, batch = FLAGS.image is not None, FLAGS.input_dir is not None
    if single == batch:
        raise _usage("give either --image (one photo) or --input_dir (a folder)")
    mode, other = (("--image", ("input_dir", "mask_dir", "output_dir", "side_by_side_dir",
                                "skip_existing"))
                   if single else ("--input_dir", ("mask", "output", "side_by_side")))
    for name in other:
        if FLAGS[name].present:
            raise _usage(f"--{name} does not go with {mode}")
    mask_flag, output_flag = ("mask", "output") if single else ("mask_dir", "output_dir")
    if FLAGS[output_flag].value is None:
        raise _usage(f"{mode} needs --{output_flag}")
    if (FLAGS[mask_flag].value is None) == (not FLAGS.mask_from_alpha):
        raise _usage(f"give one of --{mask_flag} and --mask_from_alpha")
    if problem := shared_flags.check_one_model():
        raise _usage(problem)
    if FLAGS.overwrite and FLAGS.skip_existing:
        raise _usage("give --overwrite or --skip_existing, not both")
    if batch and io.same_file(FLAGS.input_dir, FLAGS.output_dir):
        raise _usage("--output_dir must differ from --input_dir: inputs are never overwritten")
    for path in (FLAGS.output, FLAGS.side_by_side):
        if path and os.path.splitext(path)[1].lower() not in io.FORMATS:
            raise _usage(f"{path}: unknown image extension; use one of "
                         f"{', '.join(io.IMAGE_EXTENSIONS)}")


def _jobs():
    """(jobs, failures) for the flags; failures (photo -> message) are photos without a mask."""
    if FLAGS.image is not None:
        return [Job(FLAGS.image, FLAGS.mask, FLAGS.output, FLAGS.side_by_side)], {}
    images = io.find_images(FLAGS.input_dir)
    masks, failures = {}, {}
    if not FLAGS.mask_from_alpha:
        masks, failures = io.match_masks(images, FLAGS.mask_dir)
        if io.same_file(FLAGS.mask_dir, FLAGS.input_dir):  # masks beside the photos are not photos
            mask_files = {os.path.realpath(m) for m in masks.values()}
            images = [i for i in images if os.path.realpath(i) not in mask_files]
            failures = {i: m for i, m in failures.items() if i in images}
    jobs = []
    for image in images:
        if image in failures:
            continue
        name = os.path.basename(image)
        sbs = None
        if FLAGS.side_by_side_dir:
            sbs = os.path.join(FLAGS.side_by_side_dir, os.path.splitext(name)[0] + ".jpg")
        jobs.append(Job(image, masks.get(image), os.path.join(FLAGS.output_dir, name), sbs))
    return jobs, failures


def _check_outputs(job):
    """Raises InputError before any work if an output would replace an input or an old file."""
    outputs = [p for p in (job.output, job.side_by_side) if p]
    for path in outputs:
        for source in (job.image, job.mask):
            if source and io.same_file(path, source):
                raise io.InputError(f"{path}: refusing to overwrite the input {source}")
    existing = [p for p in outputs if os.path.exists(p)]
    if existing and not FLAGS.overwrite and not FLAGS.skip_existing:
        raise io.InputError(f"{existing[0]}: exists; pass --overwrite to replace it")
    return bool(existing) and FLAGS.skip_existing


def _read(job):
    """The photo and its hole mask (255 = hole), checked, with --dilate applied."""
    return read_example(job.image, job.mask, from_alpha=FLAGS.mask_from_alpha,
                        resize_mask=FLAGS.resize_mask, dilate=FLAGS.dilate)


def _process(job, get_inpainter):
    """Fills one photo and writes its outputs; raises on failure."""
    if _check_outputs(job):
        return Outcome("skipped", f"{job.image}: skipped, {job.output} exists")
    times = {}
    tick = time.monotonic()
    rgb, mask, notes = _read(job)
    times["read"] = time.monotonic() - tick
    label = job.mask if job.mask else job.image
    coverage = hole_coverage(mask, label)
    if coverage is None:
        result, status = rgb, "unchanged"
        notes.append(f"mask is empty ({label}), nothing to fill: wrote the photo unchanged")
    else:
        status = "done"
        notes.insert(0, f"hole {100 * coverage:.1f}%")
        inpainter = get_inpainter()
        tick = time.monotonic()
        result = inpainter(rgb, mask, name=job.image)
        times["inpaint"] = time.monotonic() - tick
    tick = time.monotonic()
    io.write_image_atomic(job.output, result, protect=(job.image, job.mask),
                          quality=FLAGS.quality)
    if job.side_by_side:
        io.write_image_atomic(job.side_by_side, io.side_by_side(rgb, mask, result),
                              protect=(job.image, job.mask), quality=FLAGS.quality)
    times["write"] = time.monotonic() - tick
    times["total"] = sum(times.values())  # not the model loading, reported on its own
    height, width = rgb.shape[:2]
    timing = ", ".join(f"{k} {format_seconds(v)}" for k, v in times.items())
    details = ", ".join([f"{width}x{height}"] + notes)
    if FLAGS.input_dir is not None:  # the folders are known: name the photo only
        return Outcome(status, f"{os.path.basename(job.image)}: {details}; {timing}")
    return Outcome(status, f"{job.image} -> {job.output}: {details}; {timing}")


def main(argv):
    if len(argv) > 1:
        raise _usage(f"unexpected arguments: {' '.join(argv[1:])}")
    _check_flags()
    skip_unused_imports()  # before TensorFlow loads: a faster start, less memory
    for note in shared_flags.saved_model_notes():
        print(note, file=sys.stderr)
    try:
        find_model(FLAGS.weights, FLAGS.saved_model)
        jobs, failures = _jobs()
    except (ModelError, io.InputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED

    inpainter = None

    def get_inpainter():
        nonlocal inpainter
        if inpainter is None:
            tick = time.monotonic()
            inpainter = load_inpainter(FLAGS.weights, FLAGS.saved_model, FLAGS.max_pixels,
                                       FLAGS.feather)
            progress.print(f"model: {inpainter.description} (loaded in "
                           f"{format_seconds(time.monotonic() - tick)}; the first photo also "
                           "pays for tracing the graph)")
        return inpainter

    batch = FLAGS.input_dir is not None
    progress = Progress(len(jobs), enabled=batch)
    counts = {"done": 0, "unchanged": 0, "skipped": 0}
    start = time.monotonic()
    for message in failures.values():
        progress.print(f"FAILED {message}", file=sys.stderr)
    try:
        if batch and jobs:
            progress.start("loading the model")
            get_inpainter()  # a broken model should fail once, not once per photo
        for job in jobs:
            progress.start(os.path.basename(job.image))
            try:
                outcome = _process(job, get_inpainter)
            except ModelError:
                raise
            except Exception as e:  # noqa: BLE001 -- a batch goes on past any one bad photo
                message = failure_message(job.image, e)
                failures[job.image] = message
                progress.print(f"{'FAILED' if batch else 'error:'} {message}", file=sys.stderr)
            else:
                counts[outcome.status] += 1
                progress.print(outcome.message)
            progress.advance(os.path.basename(job.image))
    except ModelError as e:
        progress.close()
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        progress.close()
        print(f"interrupted after {sum(counts.values())} of {len(jobs)} photos", file=sys.stderr)
        return 130
    progress.close()

    if batch:
        if failures:
            print(f"{len(failures)} failed:", file=sys.stderr)
            for image in sorted(failures):
                print(f"  {failures[image]}", file=sys.stderr)
        sys.stdout.flush()
        print(batch_summary(counts, len(failures), time.monotonic() - start), flush=True)
    return EXIT_FAILED if failures else 0


if __name__ == "__main__":
    app.run(main)
