"""The RunInference model handler: HiFill + CRA on photos of any size."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from hifill_tf.batch import failure_message
from hifill_tf.loading import ModelError, load_inpainter


class Inference(NamedTuple):
    """What RunInference returns for one photo: the filled photo, or why there is none."""

    image: np.ndarray | None  # uint8 [H, W, 3]; the photo itself when its mask is empty
    status: str  # "done", "unchanged" (empty mask) or "failed"
    error: str | None  # infer.py's one-line reason when failed
    seconds: float


class _LoadedOnFirstCall:
    """An inpainter that `load()` builds on its first call (once, whichever thread calls)."""

    def __init__(self, load):
        self._load = load
        self._model = None
        self._lock = threading.Lock()

    def __call__(self, image, mask, name=None):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model(image, mask, name=name)


class HiFillModelHandler(ModelHandler):
    """Examples are (job, image uint8 [H, W, 3], mask uint8 [H, W]) with any H, W per photo.

    `load_model` gives the inpainter of `loading.load_inpainter` (the bundled weights,
    `weights` .npz or a `saved_model` directory), once per worker process: RunInference shares
    it between the process's threads (the graph is traced once for all sizes). It is loaded
    when the worker's first photo with a hole arrives: a worker with nothing to fill (a rerun
    with --skip_existing, empty masks) never imports TensorFlow. With
    `model_copies` the model lives in that many processes per machine instead, shared by all
    worker processes there (for an accelerator, or a model too large for one copy per core).

    Photos differ in size, so batches hold one photo (`max_batch_size=1`). A photo that fails
    to inpaint comes back with status "failed" and its reason; a model that cannot be loaded
    fails the pipeline (ModelError).
    """

    def __init__(self, weights=None, saved_model=None, max_pixels=None, feather=0,
                 model_copies=None):
        super().__init__(min_batch_size=1, max_batch_size=1, model_copies=model_copies or None)
        self.weights = weights
        self.saved_model = saved_model
        self.max_pixels = max_pixels
        self.feather = feather

    def load_model(self):
        return _LoadedOnFirstCall(
            lambda: load_inpainter(self.weights, self.saved_model, self.max_pixels, self.feather))

    def run_inference(self, batch: Sequence[tuple], model,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        results = []
        for job, image, mask in batch:
            tick = time.monotonic()
            if not mask.any():  # infer.py writes the photo unchanged and never calls the model
                inference = Inference(image, "unchanged", None, 0.0)
            else:
                try:
                    filled = model(image, mask, name=job.photo)
                except ModelError:
                    raise
                except Exception as e:  # noqa: BLE001 -- one bad photo must not stop the batch
                    inference = Inference(None, "failed", failure_message(job.photo, e),
                                          time.monotonic() - tick)
                else:
                    inference = Inference(np.asarray(filled), "done", None,
                                          time.monotonic() - tick)
            results.append(PredictionResult(job, inference, self.model_description()))
        return results

    def model_description(self):
        return self.saved_model or self.weights or "bundled weights"

    def get_num_bytes(self, batch: Sequence[tuple]) -> int:
        # The default pickles the batch to measure it: 100 MB per 8K photo for nothing.
        return sum(image.nbytes + mask.nbytes for _, image, mask in batch)

    def get_metrics_namespace(self) -> str:
        return "hifill_RunInference"
