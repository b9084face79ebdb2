"""The torch thread count that trains fastest right now, chosen again and again while training runs."""

from __future__ import annotations

import time

import numpy as np


class ThreadTuner:
    """Picks the faster torch thread count, again and again, while training runs.

    On this 2-core machine another process often holds one core; torch's 2 threads then wait on each
    other (measured: 2.1 s a step against 0.8 s with 1 thread, and 0.35 s with 2 threads on an idle
    machine). Every ``period`` steps, each candidate count is timed for ``probe`` steps and the faster
    is kept.
    """

    def __init__(self, max_threads: int, period: int = 150, probe: int = 6) -> None:
        import torch

        self.torch = torch
        self.candidates = sorted({1, max(1, max_threads)})
        self.period, self.probe = period, probe
        self.current = self.candidates[-1]
        self.step = 0
        self.times: dict[int, list[float]] = {c: [] for c in self.candidates}
        self.schedule: list[int] = []
        self.t = 0.0
        self.history: list[int] = []

    def before_step(self) -> None:
        if len(self.candidates) > 1 and self.step % self.period == 0:
            self.schedule = [c for c in self.candidates for _ in range(self.probe)]
            self.times = {c: [] for c in self.candidates}
        if self.schedule:
            self._set(self.schedule[0])
        self.t = time.perf_counter()

    def after_step(self) -> None:
        dt = time.perf_counter() - self.t
        if self.schedule:
            c = self.schedule.pop(0)
            self.times[c].append(dt)
            if not self.schedule:  # probing done: keep the faster (median, first step of each dropped)
                best = min(self.candidates, key=lambda k: float(np.median(self.times[k][1:] or self.times[k])))
                self._set(best)
                self.history.append(best)
        self.step += 1

    def _set(self, n: int) -> None:
        if n != self.current:
            self.torch.set_num_threads(n)
            self.current = n

    def describe(self) -> str:
        return f"{self.current} thread(s)"
