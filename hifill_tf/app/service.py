"""The server's shared service: one model, loaded and traced at start, and the memory budget.

The page and the REST API both fill through `Inpainting`: one photo at a time (on two cores
two 8K photos at once would take as long as one after the other, with twice the memory), each
request's working memory reserved on `budget` first (`hifill_tf.app.memory`).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from hifill_tf.app import memory

MODEL_NAME = "hifill"  # the model's name in IOPaint's routes


class Inpainting:
    """The server's model, shared by the page and the REST API.

    Args:
        inpainter: a `hifill_tf.loading` inpainter (``inpainter(image, mask, name)``).
        name: how the page names the model (default: the inpainter's description).
        budget: a `memory.MemoryBudget` (default: `memory.default_budget()` bytes).
    Calls are serialised; `busy` tells whether one is running.
    """

    def __init__(self, inpainter, name=None, budget=None):
        self.inpainter = inpainter
        self.description = inpainter.description
        self.name = name or self.description
        self.budget = budget or memory.MemoryBudget(memory.default_budget())
        self.max_body = memory.max_body(self.budget.total)
        self._lock = threading.Lock()
        self.network_pixels = None  # fixed at export for a SavedModel, and not recorded
        generator = inpainter.generator
        if generator is not None:
            from hifill_tf import cra

            self.network_pixels = cra.network_pixels(generator, inpainter.max_pixels)

    @classmethod
    def load(cls, weights=None, saved_model=None, max_pixels=None, budget=None):
        """Loads the model (see `loading.load_inpainter`) and traces its graph."""
        from hifill_tf.loading import find_model, load_inpainter

        path = os.path.basename(os.path.normpath(find_model(weights, saved_model)))
        name = (f"SavedModel {path}" if saved_model else f"weights {path}" if weights
                else f"bundled weights {path}")
        service = cls(load_inpainter(weights, saved_model, max_pixels), name, budget)
        service.warm_up()
        return service

    def warm_up(self):
        """One small fill: the graph (one tf.function for all sizes) is traced now, not on the
        first photo."""
        image = np.full((64, 64, 3), 128, np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        mask[24:40, 24:40] = 255
        self(image, mask)

    @property
    def busy(self):
        return self._lock.locked()

    def __call__(self, rgb, mask, name=None):
        """Fills the hole (mask nonzero = hole, same size as rgb); InputError on bad input."""
        with self._lock:
            return self.inpainter(rgb, mask, name=name)

    @property
    def network_size(self):
        side = int(self.network_pixels ** 0.5) if self.network_pixels else None
        return f"{side}x{side}" if side else "fixed at export"

    def largest_photo(self):
        """The most pixels a photo may have to fit the budget alone."""
        return self.budget.total // memory.BYTES_PER_PIXEL

    def health(self):
        from hifill_tf.version import __version__

        return {
            "status": "ok",
            "model": self.description,
            "max_pixels": self.network_pixels,
            "network_size": self.network_size,
            "busy": self.busy,
            "memory_budget": self.budget.total,
            "memory_used": self.budget.used,
            "max_body": self.max_body,
            "largest_photo_pixels": self.largest_photo(),
            "rss": memory.rss_bytes(),
            "hifill_tf": __version__,
        }
