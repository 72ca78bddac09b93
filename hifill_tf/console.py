"""Console output of the front ends and the trainers: the one duration format and a progress bar.

No TensorFlow, so a front end prints before the model loads.
"""

import math
import shutil
import sys
import time


def format_seconds(seconds):
    """3.25 -> '3.2 s', 125 -> '2m05s', 3725 -> '1h02m'; the one duration format of the logs."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Progress of a batch, with ETA, on `stream` (stderr by default).

    On a terminal: one bar redrawn in place, showing the item being worked on; other output
    goes through `print` so it scrolls above the bar. Elsewhere (logs, CI, pipes): one line
    per finished item, as carriage returns make a mess of log files. With `enabled=False`
    only `print` does anything (a batch of one needs no bar).
    """

    def __init__(self, total, stream=None, enabled=True):
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()
        self._first_done = None  # the first item pays for loading and tracing: ETA skips it
        self._current = ""
        self._drawn = False

    def _status(self):
        elapsed = time.monotonic() - self.started
        text = f"{self.done}/{self.total} {100 * self.done / max(self.total, 1):3.0f}%"
        text += f"  {format_seconds(elapsed)}"
        if 0 < self.done < self.total:
            if self.done == 1:
                per_item = elapsed
            else:
                per_item = (time.monotonic() - self._first_done) / (self.done - 1)
            text += f", ETA {format_seconds(per_item * (self.total - self.done))}"
        return text

    def _draw(self):
        columns = shutil.get_terminal_size((80, 20)).columns
        status = self._status()
        bar_width = max(10, min(30, columns // 4))
        filled = math.floor(bar_width * self.done / max(self.total, 1))
        line = f"[{'#' * filled}{'.' * (bar_width - filled)}] {status}  {self._current}"
        self.stream.write("\r\x1b[K" + line[:columns - 1])
        self.stream.flush()
        self._drawn = True

    def _clear(self):
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def start(self, label):
        """Item `label` is now being worked on."""
        self._current = label
        if self.tty:
            self._draw()

    def advance(self, label=None):
        """One more item finished."""
        self.done += 1
        if self.done == 1:
            self._first_done = time.monotonic()
        self._current = ""
        if self.tty:
            self._draw()
        elif self.enabled:
            self.stream.write(f"[{self._status()}] {label or ''}".rstrip() + "\n")
            self.stream.flush()

    def print(self, line, file=None):
        """Prints a line above the bar."""
        self._clear()
        print(line, file=file or sys.stdout, flush=True)
        if self.tty and self.done < self.total:
            self._draw()

    def close(self):
        self._clear()
