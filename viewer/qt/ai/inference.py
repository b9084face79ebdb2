"""The inference lane: one long-lived worker thread that owns the loaded models and analyses slices.

It is the project's one background-work pattern (:class:`~viewer.qt.workers.Worker`, newest request
wins), applied to inference:

- A request (:class:`AnalysisRequest`) names the series, the slice on screen, the model (its
  :attr:`~viewer.core.model_registry.ModelEntry.version_key`) and carries its request id on every answer.
  A newer request cancels the running one at its next batch boundary; the receiver
  (:class:`~viewer.qt.ai.state.AIState`) drops answers whose id is no longer current.
- The model is loaded in the worker thread (:func:`viewer.analysis.load_model`, which imports torch and
  picks the GPU when there is one), so the window opens before torch loads, and kept for later requests
  (at most :data:`MAX_LOADED_MODELS`, keyed by bundle path *and* version, so a corrupt copy of a good bundle
  is still loaded, and refused, on its own).
- A sweep request analyses the whole series in small batches (:data:`BATCH_SIZE` slices). Before each
  batch it picks the unanalysed slices nearest to the slice the reader is looking at *now*: the UI posts
  that slice into a mailbox (:meth:`InferenceLane.set_focus`) instead of cancelling, so scrolling to an
  unanalysed slice gets it analysed next without wasting the batch in flight. The faithfulness test of
  the slice the reader paused on (22 forwards) is posted the same way (:meth:`ask_faithfulness`).
- Heatmaps travel and are cached as uint8 (64 KB for 256², a quarter of float32): the overlay's colour
  table has 256 entries anyway.
- A GPU that runs out of memory moves the model to the CPU and the batch is retried there; the lane says
  so (:attr:`InferenceLane.sig_notice`). A bundle that cannot be loaded ends the request with a
  :class:`ModelLoadError` (a one-line reason), through the worker's one failure route.

- The worker thread runs at a lower priority (Linux: nice :data:`NICE`), so that scrolling wins the CPU;
  the cyclic garbage collector is paused while torch is imported and the model built, and everything
  that import created is then frozen out of its sight (:func:`gc.freeze`): a full collection holds the
  GIL, and over torch's objects it took ~0.2 s, a visible freeze of the UI thread. Importing torch's C
  extension still holds the GIL for a few hundred milliseconds once, at the first model load.

One thread owns the model: Grad-CAM registers hooks on it, so two threads must never run it at once.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from viewer.analysis import analysis_order, context_stack
from viewer.core.model_registry import ModelEntry
from viewer.core.volume import Volume

from ..workers import JobContext, Worker

log = logging.getLogger(__name__)

#: Slices per forward. Small batches are as fast per slice as large ones for the compact CNNs here
#: (23 ms/slice at 4 against 33 ms at 16 on this machine, one thread), and keep re-prioritising prompt.
BATCH_SIZE = 4
#: Loaded models kept by the lane (the active one and the previous one, for a quick switch back).
MAX_LOADED_MODELS = 2
#: Niceness of the inference thread on Linux (0..19; the UI thread stays at 0).
NICE = 10
#: Float heatmaps a sweep keeps for a faithfulness test of a slice it analysed recently.
RECENT_HEATMAPS = 16


class ModelLoadError(Exception):
    """A model bundle that could not be loaded or run on this series; the message is one line."""

    def __init__(self, entry: ModelEntry, reason: str) -> None:
        super().__init__(f"could not load model {entry.name!r}: {reason}")
        self.entry = entry
        self.reason = reason


class AnalysisError(Exception):
    """The loaded model failed on a batch (e.g. its input does not fit the series)."""


def heat_to_u8(heatmap: np.ndarray) -> np.ndarray:
    """A heatmap in [0, 1] as uint8 0..255 (rounded), the form the cache and the overlay use."""
    return (np.clip(np.asarray(heatmap, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class SliceAI:
    """The model's answer for one slice: probability, heatmap (uint8, spans the whole image), its peak."""

    index: int
    probability: float
    heat: np.ndarray
    peak_rc: tuple[float, float]


@dataclass(frozen=True, eq=False)
class AnalysisRequest:
    """What to analyse: a series (its key and volume), the slice on screen, a model.

    ``volume`` None only loads the model. ``done`` marks the slices whose results the receiver already
    holds for this model (not redone); ``sweep`` asks for the whole series after the slice on screen,
    ``faithfulness`` for the deletion test of the slice on screen once it is analysed.
    """

    series_key: str
    volume: Volume | None
    slice_index: int
    entry: ModelEntry
    done: np.ndarray
    sweep: bool = True
    faithfulness: bool = False

    @property
    def version_key(self) -> str:
        return self.entry.version_key


@dataclass(frozen=True, eq=False)
class AnalysisBatch:
    """Results of one batch, with what they answer and the sweep's progress."""

    series_key: str
    version_key: str
    results: tuple[SliceAI, ...]
    done: int
    total: int


@dataclass(frozen=True)
class FaithfulnessReport:
    """Deletion faithfulness of one slice's heatmap (see :mod:`models.faithfulness`)."""

    series_key: str
    version_key: str
    index: int
    score: float
    faithful: bool
    initial_probability: float


@dataclass(frozen=True)
class ModelReady:
    """A model is loaded (or was already) and about to run; ``device`` is where it runs."""

    entry: ModelEntry
    device: str


@dataclass(frozen=True)
class JobSummary:
    """What a finished request did."""

    series_key: str
    version_key: str
    analysed: int


@contextmanager
def _collector_paused():
    """No cyclic garbage collection while torch is imported and a model built (worker thread).

    Importing torch and timm creates ~4·10^5 objects; the collections they trigger hold the GIL for up to
    ~0.2 s each, freezing the UI thread. Reference counting still frees almost everything meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_frozen = False


def _freeze_imports_once() -> None:
    """After the first model load: move torch's and timm's ~4·10^5 long-lived objects out of the collector's
    sight, so a full collection (which holds the GIL while the UI thread waits) takes ~1 ms, not ~0.2 s."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


def analysable(volume: Volume, context: int) -> np.ndarray:
    """Slices whose pixels and context neighbours are in memory and readable (bool per slice)."""
    ok = volume.loaded.astype(bool).copy()
    for i in volume.failed:
        ok[i] = False
    if context > 0 and len(ok) > 1:
        loaded = volume.loaded.astype(bool)
        n = len(ok)
        for offset in range(1, context + 1):
            ok[: n - offset] &= loaded[offset:]  # the neighbour after (clamped at the end)
            ok[offset:] &= loaded[: n - offset]  # the neighbour before
    return ok


class InferenceLane(QObject):
    """The inference worker: submit :class:`AnalysisRequest` s; answers arrive as signals with their id.

    Parameters
    ----------
    sync:
        Run requests inline (tests, scripts), as :class:`~viewer.qt.workers.Worker` does.
    device:
        ``"auto"`` (GPU when present, else CPU) or a torch device name.
    batch_size:
        Slices per forward.
    """

    #: request id, :class:`ModelReady` (before the first batch of every request)
    sig_model_ready = Signal(int, object)
    #: request id, :class:`AnalysisBatch`
    sig_results = Signal(int, object)
    #: request id, :class:`FaithfulnessReport`
    sig_faithfulness = Signal(int, object)
    #: request id, one line for the reader (e.g. the GPU ran out of memory and the CPU took over)
    sig_notice = Signal(int, str)

    def __init__(self, parent: QObject | None = None, *, sync: bool = False, device: str = "auto",
                 batch_size: int = BATCH_SIZE) -> None:
        super().__init__(parent)
        self.worker = Worker("inference", sync=sync, parent=self)
        self.device = device
        self.batch_size = batch_size
        self._models: OrderedDict[tuple[str, str], Any] = OrderedDict()  # touched by the worker thread only
        self._lock = threading.Lock()
        self._focus: tuple[str, int] | None = None
        self._faith: tuple[str, str, int] | None = None
        #: Called in the worker thread before each analysis batch with (request id, slice indices);
        #: tests use it to hold a request at a known point.
        self.before_batch: Callable[[int, list[int]], None] | None = None
        #: Id of the request the worker thread is running (0 when none), for tests and diagnostics.
        self.running_request = 0
        #: Niceness added to the worker thread (Linux), so that scrolling wins the CPU over analysis.
        self.nice = NICE
        self._niced = False

    # -- UI thread ---------------------------------------------------------------------------------------

    def submit(self, request: AnalysisRequest) -> int:
        """Queue ``request`` (cancelling the running one); returns its id."""
        self.set_focus(request.series_key, request.slice_index)
        return self.worker.submit(lambda ctx: self._run(request, ctx), name="AI")

    def is_current(self, request_id: int) -> bool:
        return self.worker.is_current(request_id)

    @property
    def busy(self) -> bool:
        return self.worker.busy

    def cancel(self) -> None:
        """Cancel the running request at its next batch; every answer it still sends is stale."""
        with self._lock:
            self._faith = None
        self.worker.cancel()

    def set_focus(self, series_key: str, index: int) -> None:
        """The slice on screen: a running sweep of that series analyses the slices nearest to it next."""
        with self._lock:
            self._focus = (series_key, int(index))

    def ask_faithfulness(self, series_key: str, version_key: str, index: int) -> None:
        """Ask a running request of that series and model for the faithfulness of slice ``index``."""
        with self._lock:
            self._faith = (series_key, version_key, int(index))

    def stop(self, timeout_ms: int = 10_000) -> bool:
        return self.worker.stop(timeout_ms)

    # -- worker thread -----------------------------------------------------------------------------------

    def _focus_for(self, request: AnalysisRequest) -> int:
        with self._lock:
            focus = self._focus
        return focus[1] if focus is not None and focus[0] == request.series_key else request.slice_index

    def _take_faithfulness(self, request: AnalysisRequest) -> int | None:
        with self._lock:
            wanted = self._faith
            if wanted is not None and wanted[:2] == (request.series_key, request.version_key):
                self._faith = None
                return wanted[2]
        return None

    def _ensure_model(self, entry: ModelEntry, rid: int) -> Any:
        """The entry's :class:`models.analysis.SliceAnalyzer`, loading (and verifying) the bundle once."""
        key = (str(entry.path), entry.version_key)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        from viewer.analysis import load_model  # imports torch: only ever here, in the worker thread

        try:
            try:
                with _collector_paused():
                    loaded = load_model(entry, self.device)
            except Exception as e:
                from models.device import is_oom

                if not is_oom(e):
                    raise
                oom = True
            else:
                oom = False
            if oom:  # retried outside the except block, so the GPU tensors of the traceback are freed
                loaded = load_model(entry, "cpu")
                self.sig_notice.emit(rid, f"GPU out of memory loading {entry.name}: running on the CPU")
        except Exception as e:
            from models.bundle import BundleError

            reason = e.reason if isinstance(e, BundleError) else f"{type(e).__name__}: {e}"
            raise ModelLoadError(entry, reason) from e
        from models.analysis import SliceAnalyzer

        analyzer = SliceAnalyzer(loaded, batch_size=self.batch_size)
        _freeze_imports_once()
        self._models[key] = analyzer
        while len(self._models) > MAX_LOADED_MODELS:
            self._models.popitem(last=False)
        return analyzer

    def _with_oom_fallback(self, analyzer: Any, rid: int, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; if the GPU runs out of memory, move the model to the CPU (for good) and retry."""
        try:
            return fn()
        except Exception as e:
            from models.device import is_oom

            if not is_oom(e):
                raise
        import torch

        analyzer.loaded.model.to("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.sig_notice.emit(rid, "GPU out of memory: the AI continues on the CPU (slower)")
        return fn()

    def _next_batch(self, request: AnalysisRequest, done: np.ndarray, ok: np.ndarray) -> list[int]:
        if not request.sweep:
            i = request.slice_index
            return [i] if ok[i] and not done[i] else []
        order = analysis_order(len(done), self._focus_for(request))
        batch = []
        for i in order:
            if ok[i] and not done[i]:
                batch.append(i)
                if len(batch) == self.batch_size:
                    break
        return batch

    def _analyze(self, analyzer: Any, request: AnalysisRequest, batch: list[int], rid: int) -> list[Any]:
        volume = request.volume
        try:
            return self._with_oom_fallback(
                analyzer, rid, lambda: analyzer.analyze(batch, context_stack(volume, batch, analyzer.context)))
        except Exception as e:
            raise AnalysisError(f"model {request.entry.name!r} could not analyse slice(s) "
                                f"{', '.join(str(i + 1) for i in batch)}: {type(e).__name__}: {e}") from e

    def _lower_priority(self) -> None:
        """Make the worker thread yield the CPU to the UI thread (Linux: a per-thread nice value)."""
        if self._niced or self.worker.sync:
            return
        self._niced = True
        if self.nice and hasattr(os, "setpriority") and sys.platform.startswith("linux"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError as e:  # not allowed here: the analysis simply competes as an equal
                log.debug("could not lower the inference thread's priority: %s", e)

    def _run(self, request: AnalysisRequest, ctx: JobContext) -> JobSummary:
        rid = ctx.request_id
        self._lower_priority()
        self.running_request = rid
        try:
            return self._sweep(request, ctx)
        finally:
            self.running_request = 0

    def _sweep(self, request: AnalysisRequest, ctx: JobContext) -> JobSummary:
        rid = ctx.request_id
        analyzer = self._ensure_model(request.entry, rid)
        ctx.check()
        from models.predict import model_device

        device = str(model_device(analyzer.loaded.model))
        self.sig_model_ready.emit(rid, ModelReady(request.entry, device))
        volume = request.volume
        if volume is None:  # a load-only request (a model chosen before any series is open)
            return JobSummary(request.series_key, request.version_key, 0)
        done = np.array(request.done, dtype=bool, copy=True)
        ok = analysable(volume, analyzer.context)
        total = int(ok.sum()) if request.sweep else 1
        recent: OrderedDict[int, np.ndarray] = OrderedDict()
        faith_pending = request.slice_index if request.faithfulness else None
        analysed = 0
        while True:
            ctx.check()
            asked = self._take_faithfulness(request)
            if asked is not None:
                faith_pending = asked
            if faith_pending is not None and (done[faith_pending] or not ok[faith_pending]):
                index, faith_pending = faith_pending, None
                if ok[index]:
                    self._faithfulness(analyzer, request, index, recent, rid)
                continue
            batch = self._next_batch(request, done, ok)
            if not batch:
                if faith_pending is not None:  # not analysable yet: analyse it alone, then test it
                    batch = [faith_pending]
                else:
                    break
            if self.before_batch is not None:
                self.before_batch(rid, batch)
            results = self._analyze(analyzer, request, batch, rid)
            for r in results:
                recent[r.index] = r.heatmap
                recent.move_to_end(r.index)
            while len(recent) > RECENT_HEATMAPS:
                recent.popitem(last=False)
            done[batch] = True
            analysed += len(batch)
            n_done = int((done & ok).sum()) if request.sweep else 1
            items = tuple(SliceAI(r.index, float(r.probability), heat_to_u8(r.heatmap),
                                  (float(r.peak_rc[0]), float(r.peak_rc[1]))) for r in results)
            # Emitted before the next cancel check: an answer computed for a superseded request still
            # reaches the receiver, which drops it by its id (the pattern's "stale results are dropped").
            self.sig_results.emit(rid, AnalysisBatch(request.series_key, request.version_key, items, n_done, total))
            ctx.progress(n_done, total)
            if not request.sweep and faith_pending is None:
                break
        return JobSummary(request.series_key, request.version_key, analysed)

    def _faithfulness(self, analyzer: Any, request: AnalysisRequest, index: int,
                      recent: OrderedDict[int, np.ndarray], rid: int) -> None:
        heat = recent.get(index)
        if heat is None:  # analysed by an earlier request: one more forward gives the float heatmap
            heat = self._analyze(analyzer, request, [index], rid)[0].heatmap
        hu = context_stack(request.volume, [index], analyzer.context)
        result = self._with_oom_fallback(analyzer, rid, lambda: analyzer.faithfulness(hu, heat[None])[0])
        self.sig_faithfulness.emit(rid, FaithfulnessReport(request.series_key, request.version_key, index,
                                                           float(result.score), bool(result.faithful),
                                                           float(result.initial_probability)))


__all__ = [
    "BATCH_SIZE", "AnalysisBatch", "AnalysisError", "AnalysisRequest", "FaithfulnessReport", "InferenceLane",
    "JobSummary", "ModelLoadError", "ModelReady", "SliceAI", "analysable", "heat_to_u8",
]
