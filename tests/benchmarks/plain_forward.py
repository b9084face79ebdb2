"""The floor of the whole-series analysis benchmark: a plain batched forward, in a process of its own.

Run as a :class:`~viewer.base.child_process.ChildProcess` (``"tests.benchmarks.plain_forward:create"``) at the
AI process's niceness and set up as the AI process is (:func:`models.runtime.service.create`), so floor and lane run
under the same conditions: a spawned interpreter, the same allocator setting
(:func:`models.runtime.allocator.keep_freed_memory_for_reuse`) and the app's torch threads
(:func:`models.runtime.device.configure_threads`). Timing the
floor in the benchmark's own process instead would include the GUI's ``mallopt`` (every block of 4 MB or more
mapped and unmapped, :func:`viewer.qt.app.return_large_blocks_to_the_os`), which costs a forward pass here
~1.6× (measured: 11.2–11.4 s against 7.0–7.8 s for the same 300 slices).

The loop is what a script would write with the public API: :func:`viewer.ai.analysis.context_stack` →
:func:`models.runtime.preprocess.preprocess` → :func:`models.runtime.predict.predict_probabilities`, timed inside the
child.
"""

from __future__ import annotations

import time
from typing import Any


class PlainForward:
    """Loads the series and the model once; then times plain batched forwards over chosen slices."""

    def __init__(self) -> None:
        self._volume: Any = None
        self._loaded: Any = None

    def setup(self, folder: str, model_path: str) -> int:
        """Load the series in ``folder`` and the bundle at ``model_path``; returns the torch thread count."""
        import torch

        from viewer.ai.analysis import load_model
        from viewer.ai.model_registry import find_model
        from viewer.core.scan import scan
        from viewer.core.volume import load_volume

        (series,) = scan(folder).series
        self._volume = load_volume(series)
        self._loaded = load_model(find_model(model_path))  # sets the app's torch threads
        return torch.get_num_threads()

    def _inputs(self, indices: list[int], batch: int):
        """Model inputs of ``indices`` in batches of ``batch``: context stacks, then preprocessing."""
        from models.runtime.preprocess import preprocess
        from viewer.ai.analysis import context_stack, presentation

        cfg = self._loaded.card.preprocess_config()
        shown = presentation(self._volume)  # a radiograph's window and MONOCHROME1 flag
        for s in range(0, len(indices), batch):
            yield preprocess(context_stack(self._volume, indices[s : s + batch], cfg.context), cfg, shown)

    def run(self, indices: list[int], batch: int) -> float:
        """Seconds for context stacks + preprocessing + forward of ``indices`` in batches of ``batch``."""
        from models.runtime.predict import predict_probabilities

        start = time.perf_counter()
        for x in self._inputs(indices, batch):
            predict_probabilities(self._loaded.model, x, batch_size=batch)
        return time.perf_counter() - start

    def forward_only(self, indices: list[int], batch: int) -> float:
        """Seconds for the forwards alone, the inputs prepared beforehand (untimed): what preprocessing leaves."""
        from models.runtime.predict import predict_probabilities

        inputs = list(self._inputs(indices, batch))
        start = time.perf_counter()
        for x in inputs:
            predict_probabilities(self._loaded.model, x, batch_size=batch)
        return time.perf_counter() - start


def create(cancel_event: Any) -> PlainForward:
    """The :class:`~viewer.base.child_process.ChildProcess` factory (allocator set as in the AI process)."""
    from models.runtime.allocator import keep_freed_memory_for_reuse

    keep_freed_memory_for_reuse()
    return PlainForward()
