"""The AI's results kept in the window: per (series, model version), bounded by bytes (Qt-free)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from viewer.qt.ai.inference import FaithfulnessReport, SliceAI

#: Bytes of cached heatmaps (uint8) before the least recently used series' results are dropped.
CACHE_BUDGET_BYTES = 200 * 2**20

class SeriesResults:
    """One model's results on one series: probability per slice, uint8 heatmaps, faithfulness."""

    def __init__(self, n: int) -> None:
        self.probabilities = np.full(n, np.nan, np.float32)
        self.heat: dict[int, np.ndarray] = {}
        self.peak: dict[int, tuple[float, float]] = {}
        self.faithfulness: dict[int, FaithfulnessReport] = {}
        #: the series' nodules (models.runtime.findings.find.SeriesFindings), once the sweep has ended
        self.findings: object | None = None

    @property
    def done(self) -> np.ndarray:
        return ~np.isnan(self.probabilities)

    @property
    def nbytes(self) -> int:
        return self.probabilities.nbytes + sum(h.nbytes for h in self.heat.values())

    def add(self, item: SliceAI) -> None:
        self.probabilities[item.index] = item.probability
        self.heat[item.index] = item.heat
        self.peak[item.index] = item.peak_rc


class ResultCache:
    """Results per (series key, model version key), least recently used series dropped past a byte budget."""

    def __init__(self, budget_bytes: int = CACHE_BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, str], SeriesResults] = OrderedDict()

    def get(self, series_key: str, version_key: str) -> SeriesResults | None:
        key = (series_key, version_key)
        results = self._entries.get(key)
        if results is not None:
            self._entries.move_to_end(key)
        return results

    def add(self, series_key: str, version_key: str, n: int, items: tuple[SliceAI, ...]) -> SeriesResults:
        key = (series_key, version_key)
        results = self.get(series_key, version_key)
        if results is None or len(results.probabilities) != n:
            results = self._entries[key] = SeriesResults(n)
        for item in items:
            results.add(item)
        self._evict(keep=key)
        return results

    def _evict(self, keep: tuple[str, str]) -> None:
        total = self.nbytes
        for key in list(self._entries):
            if total <= self.budget_bytes:
                break
            if key != keep:
                total -= self._entries.pop(key).nbytes

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self._entries.values())

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._entries

    def clear(self) -> None:
        self._entries.clear()
