"""A tiny torch-free handler for tests/base/test_child_process.py, run in a child process.

Imported by the child only (the parent names it by string); keep it free of numpy-heavy or Qt imports.
"""

from __future__ import annotations

import os
import signal
import sys
import time


class ProbeError(ValueError):
    """Raised on purpose, two frames deep, so the traceback has something to show."""


class Probe:
    """Answers questions about the process it lives in."""

    def __init__(self, cancel) -> None:
        self.cancel_event = cancel

    def echo(self, *args, **kwargs):
        return args, kwargs

    def pid(self) -> int:
        return os.getpid()

    def niceness(self) -> int:
        return os.nice(0)

    def scheduling_policy(self) -> int:
        return os.sched_getscheduler(0)

    def ignores_sigint(self) -> bool:
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN

    def imported(self, name: str) -> bool:
        return name in sys.modules

    def count(self, n: int, delay_s: float = 0.0):
        """Yield 0..n-1, stopping early when the parent cancels (polled before every item)."""
        for i in range(n):
            if self.cancel_event.is_set():
                return
            if delay_s:
                time.sleep(delay_s)
            yield i

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def timed_sleep(self, seconds: float) -> tuple[float, float]:
        """Sleep; the system-wide monotonic clock at the start and the end (comparable across processes)."""
        start = time.monotonic()
        time.sleep(seconds)
        return start, time.monotonic()

    def sized(self, payload: bytes, size: int) -> bytes:
        """``size`` bytes back for ``payload`` (large messages both ways)."""
        return bytes([len(payload) % 251]) * size

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    def fail(self, message: str) -> None:
        self._deeper(message)

    def _deeper(self, message: str) -> None:
        raise ProbeError(message)

    def exit_hard(self, code: int) -> None:
        os._exit(code)


def make(cancel) -> Probe:
    return Probe(cancel)


def broken_factory(cancel) -> Probe:
    raise RuntimeError("the handler could not be built")
