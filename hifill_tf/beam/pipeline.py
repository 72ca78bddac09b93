"""The batch pipeline: match photos, pair them with masks, read, RunInference, write.

    photos = MatchFiles(input_pattern), image extensions only, no hidden files
          -> pair with masks (io.match_masks, by file stem; a photo that is another photo's mask
             is not a photo, as in infer.py with --mask_dir = --input_dir)
          -> output path (relative to the pattern's folder), --skip_existing
          -> read + decode (batch.read_example: EXIF, RGBA, 16-bit, --dilate)
          -> RunInference(HiFillModelHandler)
          -> encode (io.encode_image, as infer.py) and write atomically (files.write_atomic)
    every photo ends as one Outcome: done, unchanged (empty mask), skipped or failed; failures
    go to OUTPUT_DIR/_failures.jsonl (path and infer.py's reason) and the pipeline goes on.

Counters in namespace "hifill": done, unchanged, skipped, failed; distribution photo_ms (read +
inpaint + encode + write, per photo written).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import RunInference

from hifill_tf import io
from hifill_tf.beam import files
from hifill_tf.beam.model_handler import HiFillModelHandler
from hifill_tf.batch import STATUSES, failure_message, hole_coverage, read_example

NAMESPACE = "hifill"
FAILURES_FILE = "_failures.jsonl"
_PAIR_BATCH = 1000  # photos per io.match_masks call (one listing of --mask_dir each)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The pipeline's configuration: the flags of `python -m hifill_tf.beam`."""

    input_pattern: str
    output_dir: str
    mask_dir: str | None = None
    mask_from_alpha: bool = False
    weights: str | None = None
    saved_model: str | None = None
    max_pixels: int | None = None
    feather: int = 0
    dilate: int = 0
    resize_mask: bool = False
    skip_existing: bool = False
    quality: int = 95
    model_copies: int = 0

    def __post_init__(self):
        if (self.mask_dir is None) == (not self.mask_from_alpha):
            raise ValueError("give one of mask_dir and mask_from_alpha")
        if self.weights and self.saved_model:
            raise ValueError("give weights or saved_model, not both")

    @property
    def failures_path(self):
        return FileSystems.join(self.output_dir, FAILURES_FILE)


class Job(NamedTuple):
    photo: str
    mask: str | None  # None with --mask_from_alpha
    output: str
    seconds: float = 0.0  # time spent on it so far


class Outcome(NamedTuple):
    status: str  # one of STATUSES
    photo: str
    message: str  # the reason when failed


def _counter(status):
    return beam.metrics.Metrics.counter(NAMESPACE, status)


def is_photo_name(path: str) -> bool:
    """What io.find_images lists: an image extension, not a hidden (or temporary) file."""
    name = FileSystems.split(path)[1]
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in io.FORMATS


def _is_input(path: str, output_dir: str) -> bool:
    """A photo to fill: not one of the outputs (a pattern like photos/** can cover them)."""
    return is_photo_name(path) and not path.startswith(output_dir.rstrip("/") + "/")


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    if files.is_local(a) and files.is_local(b):
        return io.same_file(a, b)
    return a == b


def _key(path: str) -> str:
    return os.path.realpath(path) if files.is_local(path) else path


# ---------------------------------------------------------------------------------------------
# Photos and masks
# ---------------------------------------------------------------------------------------------


class _PairBatch(beam.DoFn):
    """io.match_masks on a batch of photos; emits (key, ("photo", Job | Outcome)) and, for
    every mask found, (key of the mask, ("mask", None)).

    io.match_masks lists a local folder. For a remote --mask_dir, each worker lists it once
    and mirrors the names as empty local files, so the matching rule stays the library's.
    """

    def __init__(self, settings: Settings, root: str):
        self.settings, self.root = settings, root
        self._mirror = None

    def setup(self):
        mask_dir = self.settings.mask_dir
        if not files.is_local(mask_dir):
            self._mirror = tempfile.mkdtemp(prefix="hifill-masks-")
            pattern = FileSystems.join(mask_dir, "*")
            for metadata in FileSystems.match([pattern])[0].metadata_list:
                name = FileSystems.split(metadata.path)[1]
                if is_photo_name(name):
                    open(os.path.join(self._mirror, name), "wb").close()

    def teardown(self):
        if self._mirror:
            shutil.rmtree(self._mirror, ignore_errors=True)

    def _match(self, photos):
        mask_dir = self.settings.mask_dir
        if self._mirror is None:
            return io.match_masks(photos, mask_dir)
        remote, mirror = mask_dir.rstrip("/"), self._mirror

        def to_mirror(path):  # a photo inside --mask_dir is never its own mask
            folder, name = FileSystems.split(path)
            return os.path.join(mirror, name) if folder.rstrip("/") == remote else path

        def back(text):
            return text.replace(mirror, remote)

        local = {to_mirror(p): p for p in photos}
        masks, errors = io.match_masks(list(local), mirror)
        return ({local[p]: back(m) for p, m in masks.items()},
                {local[p]: back(e) for p, e in errors.items()})

    def process(self, photos):
        s = self.settings
        masks, errors = self._match(photos)
        for photo in photos:
            if photo in errors:
                yield _key(photo), ("photo", Outcome("failed", photo, errors[photo]))
            else:
                yield _key(photo), ("photo", Job(photo, masks[photo], _output(s, self.root, photo)))
                yield _key(masks[photo]), ("mask", None)


def _not_a_mask(keyed):
    """Drops photos that are another photo's mask (with masks beside the photos)."""
    _, tagged = keyed
    tagged = list(tagged)
    if any(kind == "mask" for kind, _ in tagged):
        return
    for kind, value in tagged:
        if kind == "photo":
            yield value


def _output(settings: Settings, root: str, photo: str) -> str:
    return FileSystems.join(settings.output_dir, files.relative_to(photo, root))


class _CheckOutput(beam.DoFn):
    """Refuses to write over an input; with --skip_existing, leaves written photos alone."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def process(self, job):
        if isinstance(job, Outcome):  # no mask
            yield job
            return
        for source in (job.photo, job.mask):
            if _same(job.output, source):
                yield Outcome("failed", job.photo,
                              f"{job.output}: refusing to overwrite the input {source}")
                return
        if self.settings.skip_existing and FileSystems.exists(job.output):
            yield Outcome("skipped", job.photo, f"{job.photo}: skipped, {job.output} exists")
            return
        yield job


class _Read(beam.DoFn):
    """Reads and checks the photo and its mask: (job, image, mask) for RunInference."""

    FAILED = "failed"

    def __init__(self, settings: Settings):
        self.settings = settings

    def process(self, job: Job):
        s = self.settings
        tick = time.monotonic()
        try:
            with files.local_copy(job.photo) as photo, files.local_copy(job.mask) as mask_file:
                try:
                    image, mask, _ = read_example(photo, mask_file, from_alpha=s.mask_from_alpha,
                                                  resize_mask=s.resize_mask, dilate=s.dilate)
                    label = job.mask if job.mask else job.photo
                    hole_coverage(mask, label)  # None (empty): written unchanged, as infer.py does
                except io.InputError as e:
                    message = str(e)
                    for local, original in ((photo, job.photo), (mask_file, job.mask)):
                        if local and local != original:
                            message = message.replace(local, original)
                    raise io.InputError(message) from None
        except Exception as e:  # noqa: BLE001 -- the pipeline goes on past any one bad photo
            yield beam.pvalue.TaggedOutput(self.FAILED, Outcome(
                "failed", job.photo, failure_message(job.photo, e)))
            return
        yield job._replace(seconds=job.seconds + time.monotonic() - tick), image, mask


class _Write(beam.DoFn):
    """Encodes a RunInference result as infer.py does and writes it atomically."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.photo_ms = beam.metrics.Metrics.distribution(NAMESPACE, "photo_ms")

    def process(self, result):
        job, inference = result.example, result.inference
        if inference.status == "failed":
            yield Outcome("failed", job.photo, inference.error)
            return
        tick = time.monotonic()
        try:
            data = io.encode_image(inference.image, job.output, self.settings.quality)
            files.write_atomic(job.output, data)
        except Exception as e:  # noqa: BLE001
            yield Outcome("failed", job.photo, failure_message(job.photo, e))
            return
        seconds = job.seconds + inference.seconds + time.monotonic() - tick
        self.photo_ms.update(int(round(1000 * seconds)))
        yield Outcome(inference.status, job.photo, "")


def _count(outcome: Outcome) -> Outcome:
    _counter(outcome.status).inc()
    return outcome


# ---------------------------------------------------------------------------------------------
# The end of the run
# ---------------------------------------------------------------------------------------------


class _Summary(beam.CombineFn):
    """Counts per status and the failures, sorted by photo."""

    def create_accumulator(self):
        return {status: 0 for status in STATUSES}, []

    def add_input(self, accumulator, outcome):
        counts, failures = accumulator
        counts[outcome.status] += 1
        if outcome.status == "failed":
            failures.append((outcome.photo, outcome.message))
        return accumulator

    def merge_accumulators(self, accumulators):
        counts, failures = self.create_accumulator()
        for more_counts, more_failures in accumulators:
            for status, n in more_counts.items():
                counts[status] += n
            failures.extend(more_failures)
        return counts, failures

    def extract_output(self, accumulator):
        counts, failures = accumulator
        return counts, sorted(failures)


def failure_lines(failures) -> str:
    return "".join(json.dumps({"path": photo, "reason": reason}) + "\n"
                   for photo, reason in failures)


def _finish(summary, settings: Settings):
    """After every photo: writes _failures.jsonl (only if it changed), removes stale temps."""
    _, failures = summary
    text = failure_lines(failures)
    if files.read_text(settings.failures_path) != text:
        files.write_atomic(settings.failures_path, text.encode("utf-8"))
    files.remove_temps(settings.output_dir)
    return summary


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


def _flatten(label, pcolls):
    return tuple(pcolls) | label >> beam.Flatten()


def inpaint_photos(root: beam.pvalue.PBegin, settings: Settings):
    """Adds the pipeline to `root` (a Pipeline); returns the PCollection of Outcomes."""
    s = settings
    pattern_root = files.pattern_root(s.input_pattern)
    photos = (root
              | "MatchPhotos" >> fileio.MatchFiles(s.input_pattern)
              | "Paths" >> beam.Map(lambda metadata: metadata.path)
              | "PhotosOnly" >> beam.Filter(_is_input, s.output_dir))
    if s.mask_dir is not None:
        paired = (photos
                  | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=_PAIR_BATCH)
                  | "PairMasks" >> beam.ParDo(_PairBatch(s, pattern_root))
                  | "ByPath" >> beam.GroupByKey()
                  | "NotAMask" >> beam.FlatMap(_not_a_mask))
        jobs_or_failed = paired
    else:
        jobs_or_failed = (photos
                          | "Jobs" >> beam.Map(lambda p: Job(p, None, _output(s, pattern_root, p)))
                          | "Spread" >> beam.Reshuffle())

    checked = jobs_or_failed | "CheckOutput" >> beam.ParDo(_CheckOutput(s))
    early = checked | "Early" >> beam.Filter(lambda x: isinstance(x, Outcome))
    jobs = checked | "Todo" >> beam.Filter(lambda x: isinstance(x, Job))

    read = jobs | "Read" >> beam.ParDo(_Read(s)).with_outputs(_Read.FAILED, main="examples")
    handler = HiFillModelHandler(s.weights, s.saved_model, s.max_pixels, s.feather,
                                 s.model_copies)
    written = (read.examples
               | "Inpaint" >> RunInference(handler)
               | "Write" >> beam.ParDo(_Write(s)))

    outcomes = (_flatten("Outcomes", [early, read[_Read.FAILED], written])
                | "Count" >> beam.Map(_count))
    _ = (outcomes
         | "Summarise" >> beam.CombineGlobally(_Summary())
         | "Finish" >> beam.Map(_finish, s))
    return outcomes


def read_failures(settings: Settings) -> list[tuple[str, str]]:
    """(photo, reason) of the run's _failures.jsonl, [] when there is none."""
    text = files.read_text(settings.failures_path) or ""
    return [(r["path"], r["reason"]) for r in map(json.loads, text.splitlines()) if r]


def query_metrics(result):
    """{counter name: value} and the photo_ms distribution (or None) of a finished run."""
    from apache_beam.metrics.metric import MetricsFilter

    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))

    def value(m):
        return m.committed if m.committed is not None else m.attempted

    counts = {status: 0 for status in STATUSES}
    for m in metrics["counters"]:
        counts[m.key.metric.name] = counts.get(m.key.metric.name, 0) + value(m)
    distribution = None
    for m in metrics["distributions"]:
        if m.key.metric.name == "photo_ms":
            distribution = value(m)
    return counts, distribution
