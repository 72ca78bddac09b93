"""Fill the holes of many photos with an Apache Beam pipeline (RunInference).

  python -m hifill_tf.beam --input_pattern 'photos/*.jpg' --mask_dir masks/ \\
      --output_dir filled/ --direct_num_workers 2 --direct_running_mode multi_processing

The flags mirror infer.py's --input_dir mode; --input_pattern is a glob on any Beam filesystem
(local, gs://, s3:// with Beam's extras) and outputs keep their path below the glob's folder.
Any other flag is a Beam pipeline option (--runner, --direct_num_workers, --project, ...).
Outputs are replaced (retried bundles write them again); with --skip_existing a re-run only
does the photos that have no output. Photos that fail are listed in OUTPUT_DIR/_failures.jsonl
(path and infer.py's reason) and at the end. Exit status: 0 when every photo was done, 1 when
any failed, 2 on bad flags.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags  # noqa: E402

from hifill_tf import flags as shared_flags, io  # noqa: E402
from hifill_tf.batch import batch_summary  # noqa: E402
from hifill_tf.loading import ModelError, find_model  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("input_pattern", None, "Photos to fill: a glob on any Beam filesystem, "
                    "e.g. 'photos/*.jpg' or 'gs://bucket/in/**'. Files without an image "
                    "extension and hidden files are left out.")
flags.DEFINE_string("mask_dir", None, "Masks of the photos, matched by file stem as in infer.py: "
                    "photo.jpg takes photo.*, photo_mask.* or photo-mask.*. May hold the photos.")
flags.DEFINE_string("output_dir", None, "Where the filled photos go, under their path below the "
                    "folder of --input_pattern; also gets _failures.jsonl.")
shared_flags.define_model("saved_model")
shared_flags.define_mask_reading()
flags.DEFINE_bool("skip_existing", False, "Leave photos whose output exists alone (to resume an "
                  "interrupted run).")
shared_flags.define_max_pixels()
shared_flags.define_feather()
shared_flags.define_quality()
flags.adopt_module_key_flags(shared_flags)  # --help lists them with this program's own
flags.DEFINE_integer("model_copies", 0, "0: one model per worker process, shared by its threads. "
                     "N: N copies per machine, shared by all its worker processes (for an "
                     "accelerator or a model too large for one copy per core).", lower_bound=0)

EXIT_FAILED = 1
EXIT_USAGE = 2


def _usage(message):
    return app.UsageError(message, exitcode=EXIT_USAGE)


def _absolute(path):
    from hifill_tf.beam import files

    return os.path.abspath(path) if path and files.is_local(path) else path


def _check_flags():
    for name in ("input_pattern", "output_dir"):
        if FLAGS[name].value is None:
            raise _usage(f"--{name} is required")
    if (FLAGS.mask_dir is None) == (not FLAGS.mask_from_alpha):
        raise _usage("give one of --mask_dir and --mask_from_alpha")
    if problem := shared_flags.check_one_model():
        raise _usage(problem)


def _settings():
    from hifill_tf.beam.pipeline import Settings

    return Settings(
        input_pattern=_absolute(FLAGS.input_pattern), output_dir=_absolute(FLAGS.output_dir),
        mask_dir=_absolute(FLAGS.mask_dir), mask_from_alpha=FLAGS.mask_from_alpha,
        weights=_absolute(FLAGS.weights), saved_model=_absolute(FLAGS.saved_model),
        max_pixels=FLAGS.max_pixels, feather=FLAGS.feather, dilate=FLAGS.dilate,
        resize_mask=FLAGS.resize_mask, skip_existing=FLAGS.skip_existing, quality=FLAGS.quality,
        model_copies=FLAGS.model_copies)


def _check_inputs(settings):
    """Cheap checks on the launcher, so that a typo fails at once and not on every worker."""
    from apache_beam.io.filesystems import FileSystems

    from hifill_tf.beam import files

    find_model(settings.weights, settings.saved_model)
    if not FileSystems.match([settings.input_pattern], limits=[1])[0].metadata_list:
        raise io.InputError(f"{settings.input_pattern}: no files match")
    if settings.mask_dir and files.is_local(settings.mask_dir) and not os.path.isdir(
            settings.mask_dir):
        problem = "not a directory" if os.path.exists(settings.mask_dir) else "no such directory"
        raise io.InputError(f"{settings.mask_dir}: {problem}")


def main(argv):
    _check_flags()
    for note in shared_flags.saved_model_notes():
        print(note, file=sys.stderr)

    import logging

    import apache_beam as beam

    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # per-bundle INFO lines
    from apache_beam.options.pipeline_options import PipelineOptions, WorkerOptions

    from hifill_tf.beam import pipeline

    settings = _settings()
    try:
        _check_inputs(settings)
    except (ModelError, io.InputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED

    start = time.monotonic()
    options = PipelineOptions(argv[1:])
    if options.view_as(WorkerOptions).default_sdk_harness_log_level is None:
        options.view_as(WorkerOptions).default_sdk_harness_log_level = "WARNING"
    p = beam.Pipeline(runner=_local_runner(options), options=options)
    pipeline.inpaint_photos(p, settings)
    result = p.run()
    result.wait_until_finish()
    counts, photo_ms = pipeline.query_metrics(result)
    failures = pipeline.read_failures(settings)

    if failures:
        print(f"{len(failures)} failed (see {settings.failures_path}):", file=sys.stderr)
        for _, reason in failures:
            print(f"  {reason}", file=sys.stderr)
    timing = []
    if photo_ms is not None and photo_ms.count:
        timing.append(f"per photo {photo_ms.mean / 1000:.1f} s mean, {photo_ms.min / 1000:.1f}-"
                      f"{photo_ms.max / 1000:.1f} s")
    sys.stdout.flush()
    print(batch_summary(counts, counts["failed"], time.monotonic() - start, timing), flush=True)
    return EXIT_FAILED if counts["failed"] or failures else 0


def _local_runner(options):
    """For the DirectRunner: its batch engine, the FnApiRunner, set up as the DirectRunner does.

    The DirectRunner first tries the Prism runner, a binary it downloads from GitHub; the
    FnApiRunner runs here offline and honours --direct_num_workers and --direct_running_mode.
    Other runners (and --runner PrismRunner) are left to Beam: returns None.
    """
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    if runner not in (None, "DirectRunner", "SwitchingDirectRunner"):
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def _parse(argv):
    # Our flags are absl's; whatever absl does not know is left for Beam's PipelineOptions.
    return FLAGS(argv, known_only=True)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
