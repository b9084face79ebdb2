"""A seam for tests and benchmarks into the inference lane's sweep: see and hold it between batches.

Attach one as ``lane.probe``; the lane's worker thread calls :meth:`SweepProbe.before_batch` before it
sends each analysis batch. Nothing of it runs when no probe is attached (the reader's window never has
one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class SweepProbe:
    """Watches the batches of a sweep and can hold it with nothing in flight.

    Parameters
    ----------
    on_batch:
        Called in the worker thread with (request id, slice indices) before each batch is sent; a test
        may block there to keep a request at a known point (a sweep may have one batch in flight then).
    """

    def __init__(self, on_batch: Callable[[int, list[int]], None] | None = None) -> None:
        self.on_batch = on_batch
        #: Set while a sweep waits in a hold (nothing in flight).
        self.held = threading.Event()
        self._hold_wanted = threading.Event()
        self._release = threading.Event()
        self._release.set()

    def hold(self) -> None:
        """Stop the running sweep before its next batch, with nothing in flight, until :meth:`release`
        (benchmarks measure the window with the AI idle in the middle of a sweep)."""
        self._release.clear()
        self._hold_wanted.set()

    def release(self) -> None:
        self._hold_wanted.clear()
        self._release.set()

    def before_batch(self, rid: int, batch: list[int], drain: Callable[[], None]) -> None:
        """Worker thread: wait out a hold (after ``drain`` took every answer in flight), then report."""
        if self._hold_wanted.is_set():
            drain()
            self.held.set()
            try:
                self._release.wait()
            finally:
                self.held.clear()
        if self.on_batch is not None:
            self.on_batch(rid, batch)
