"""The server's memory budget: requests reserve their working memory before they use it.

A request's cost is known before any pixel is decoded: its body's size (reserved by the guard
before the body is read, `BODY_COPIES` times: the bytes, the JSON text, the decoded files) and
then its photo's pixel count from the file header (`BYTES_PER_PIXEL` each: decoding, the
fill's tensors, encoding). Work that fits is admitted, work that would overflow waits for
memory to be returned (up to `QUEUE_SECONDS`), and work larger than the whole budget is refused
at once. After each request the freed memory goes back to the system (`release_memory`),
so that the server's RSS returns near its idle level (the command line also turns off
TensorFlow's oneDNN allocator, which keeps what it once held).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import re
import threading
import time

# Working memory of one request per pixel of its photo, with room to spare: an 8K PNG request
# peaked at 17 bytes a pixel beyond its body (Pillow's decoding at 4 bytes a pixel, then the
# arrays: photo 3, alpha 1, mask 1-4; the fill's full-resolution tensors; the encoded result).
BYTES_PER_PIXEL = 32
BODY_COPIES = 3
QUEUE_SECONDS = 60.0  # the longest a request waits for memory before a 503


class OverBudget(Exception):
    """Work that cannot get its memory: `status` is 413 (larger than the budget) or 503
    (the budget is taken for longer than QUEUE_SECONDS); the message is one line."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def parse_bytes(text) -> int:
    """'6G', '512M', '1.5GB', '2000000000' -> bytes (binary units: 1G = 2**30)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not match:
        raise ValueError(f"not a size: {text!r}; write e.g. 6G, 512M or a number of bytes")
    value, unit = match.groups()
    return int(float(value) * 1024 ** " kmgt".index(unit or " "))


def format_bytes(count) -> str:
    return f"{count / 2**30:.1f} GB" if count >= 2**30 else f"{count / 2**20:.0f} MB"


def default_budget() -> int:
    """A quarter of the machine's memory: room for the model, the OS and other programs."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4


def max_body(budget) -> int:
    """The largest request body: what its copies may hold of the budget, a quarter of it
    (a photo that fits the budget is far smaller as a file, even in base64)."""
    return budget // (4 * BODY_COPIES)


class MemoryBudget:
    """Bytes of working memory that requests may hold at once; each request holds a `Ticket`."""

    def __init__(self, total, queue_seconds=QUEUE_SECONDS):
        if total <= 0:
            raise ValueError(f"memory budget must be positive; got {total}")
        self.total = int(total)
        self.queue_seconds = queue_seconds
        self.used = 0
        self.peak = 0
        self._condition = threading.Condition()
        self._holders = 0  # tickets holding memory
        self._stuck = 0  # of those, the ones waiting for more

    def ticket(self) -> Ticket:
        return Ticket(self)

    def _admit(self, ticket, nbytes, what, deadline, block):
        """Adds `nbytes` to `ticket` if it fits now; raises OverBudget, or returns False when
        the caller should wait (block=False) or after waiting until the deadline."""
        if ticket.held + nbytes > self.total:
            raise OverBudget(413, f"{what} needs {format_bytes(ticket.held + nbytes)} of working "
                             f"memory, above this server's budget of {format_bytes(self.total)} "
                             "(--memory_budget)")
        with self._condition:
            waiting = False
            try:
                while self.used + nbytes > self.total:
                    # Holders that all wait for more can never be satisfied: refuse this one.
                    if ticket.held and self._stuck + (not waiting) >= self._holders:
                        raise OverBudget(503, "the server's memory is taken by other requests; "
                                         "try again")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise OverBudget(503, f"no memory free for {what} within "
                                         f"{self.queue_seconds:.0f} s; try again later")
                    if not block:
                        return False
                    if ticket.held and not waiting:
                        self._stuck += 1
                    waiting = True
                    self._condition.wait(min(remaining, 1.0))
            finally:
                if waiting and ticket.held:
                    self._stuck -= 1
            if not ticket.held:
                self._holders += 1
            ticket.held += nbytes
            self.used += nbytes
            self.peak = max(self.peak, self.used)
            return True

    def _release(self, ticket):
        with self._condition:
            freed, ticket.held = ticket.held, 0
            if freed:
                self.used -= freed
                self._holders -= 1
                self._condition.notify_all()
        if freed:
            release_memory_soon()


class Ticket:
    """One request's share of the budget: grown before each use, released once at the end."""

    def __init__(self, budget):
        self.budget = budget
        self.held = 0

    def grow(self, nbytes, what="this request"):
        """Waits (in a worker thread) until `nbytes` more fit; OverBudget if they never will."""
        deadline = time.monotonic() + self.budget.queue_seconds
        self.budget._admit(self, int(nbytes), what, deadline, block=True)

    async def grow_async(self, nbytes, what="this request"):
        """`grow` for the event loop: polls instead of blocking it."""
        deadline = time.monotonic() + self.budget.queue_seconds
        while not self.budget._admit(self, int(nbytes), what, deadline, block=False):
            await asyncio.sleep(0.05)

    def release(self):
        self.budget._release(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


# ---------------------------------------------------------------------------------------------
# Giving memory back to the system
# ---------------------------------------------------------------------------------------------

_libc = None
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _glibc():
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else False
            _libc.malloc_trim  # glibc only (not musl)
        except (OSError, AttributeError):
            _libc = False
    return _libc


def configure_allocator():
    """Buffers of 32 MB and more get their own mappings, returned to the system when freed;
    the smaller ones stay with the process until the request is over.

    glibc moves its mmap threshold with each large free; fixed here at its largest value,
    photo-sized buffers still go back at once, while the smaller ones (the network's tensors,
    Pillow's 16 MB blocks, CRA's bands) are reused from the heap instead of being mapped and
    zeroed afresh each time. glibc also gives back the top of a heap whenever 128 KB of it is
    free, so one stage's freed pages were faulted in again by the next: with that threshold at
    1 GB, an 8K fill after the photo's decoding took 0.34-0.44 s instead of 0.65-1.36 s (page
    faults 32-56k instead of 169-336k). `release_memory` returns the heap's free pages after
    each request (`release_memory_soon`); it can trim the top of glibc's main heap only, so
    every thread allocates from that one (with a heap per thread, RSS stayed 200-290 MB above
    idle after the load test's burst). Process-wide; called once by the server.
    """
    libc = _glibc()
    if libc:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(_M_ARENA_MAX, 1)


def release_memory():
    """Returns the free pages of glibc's heaps to the system (malloc_trim)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)


_trim_timer = None
_trim_lock = threading.Lock()
TRIM_DELAY_SECONDS = 1.0


def release_memory_soon():
    """`release_memory` a second after the last of these calls: a request's reservation ends
    before its last buffers do (its answer is still being sent), and requests end together."""
    global _trim_timer
    with _trim_lock:
        if _trim_timer is not None:
            _trim_timer.cancel()
        _trim_timer = threading.Timer(TRIM_DELAY_SECONDS, release_memory)
        _trim_timer.daemon = True
        _trim_timer.start()


def rss_bytes(pid="self"):
    """Resident memory of a process, for health and the load test; None without Linux's /proc."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        return None
    return None
