"""The inference lane: one long-lived worker thread that drives the model service in a child process.

It is the project's one background-work pattern (:class:`~viewer.qt.workers.Worker`, newest request
wins), applied to inference:

- A request (:class:`AnalysisRequest`) names the series, the slice on screen, the model (its
  :attr:`~viewer.ai.model_registry.ModelEntry.version_key`) and carries its request id on every answer.
  A newer request cancels the running one at its next batch boundary; the receiver
  (:class:`~viewer.qt.ai.state.AIState`) drops answers whose id is no longer current.
- The models live in a child process (:class:`~viewer.base.child_process.ChildProcess` running
  :class:`models.runtime.service.ModelService`), started by the first request, at nice :data:`NICE`. The GUI
  process never imports torch: importing torch's C extension holds the GIL for a few hundred milliseconds,
  and in a worker *thread* of the GUI process that froze the window once at the first model load (and
  the garbage collector's passes over torch's objects, and every forward, competed with the UI thread
  for the GIL). The worker thread here only sends stored slices and waits on a pipe. The service keeps at
  most two models, keyed by bundle path *and* sha256, so a corrupt copy of a good bundle is still
  loaded, and refused, on its own.
- A sweep request analyses the whole series in small batches (:data:`BATCH_SIZE` slices, one call to the
  child each, :data:`LOOK_AHEAD` of them in flight: the next is sent while the child computes the
  previous one). Before sending a batch it picks the unanalysed slices nearest to the slice the reader is
  looking at *now*: the UI posts that slice into a mailbox (:meth:`InferenceLane.set_focus`) instead of
  cancelling, so scrolling to an unanalysed slice gets it analysed next without wasting the batches in
  flight. The faithfulness test of the slice the reader paused on (22 forwards) is posted the same way
  (:meth:`ask_faithfulness`); the child keeps the float heatmaps of the request's recent slices for it.
- Slices cross as stored integers with their rescale (:func:`viewer.ai.analysis.stored_slices`), each
  distinct slice once; heatmaps come back, and are cached, as uint8 (64 KB for 256², a quarter of
  float32): the overlay's colour table has 256 entries anyway.
- A GPU that runs out of memory moves the model to the CPU and the batch is retried there; the lane says
  so (:attr:`InferenceLane.sig_notice`). A bundle that cannot be loaded ends the request with a
  :class:`ModelLoadError` (a one-line reason), a batch the model cannot take with an
  :class:`AnalysisError`, and a child that dies mid-request (crash, kill, out-of-memory killer) with a
  :class:`ServiceDiedError` (after :attr:`InferenceLane.sig_service_died`); the next request starts a
  new child. All go through the worker's one failure route, the child's traceback included.

A lane given a ``service`` (tests share one child per session) uses it and never closes it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from viewer.ai.analysis import (  # torch-free
    SERVICE_TARGET,
    BatchAnalysis,
    ModelInfo,
    ModelRef,
    analysis_order,
    stored_slices,
)
from viewer.ai.model_registry import ModelEntry
from viewer.base.child_process import ChildDied, ChildError, ChildProcess, Pipeline, describe_exit
from viewer.base.errors import Cancelled
from viewer.core.volume import Volume
from viewer.qt.ai.probe import SweepProbe
from viewer.qt.workers import JobContext, Worker

log = logging.getLogger(__name__)

#: Slices per forward: small batches keep re-prioritising prompt, and cost no more per slice. In the service
#: process (allocator set by :func:`models.runtime.allocator.keep_freed_memory_for_reuse`) the demo model's Grad-CAM
#: took 23.5, 23.4 and 23.7 ms a slice at batch 2, 4 and 8 here, one thread.
BATCH_SIZE = 4
#: Batches in the service at once during a sweep: the next is sent while the child computes the previous
#: one, so the round trip (~7–13 ms a batch here: slices out, answers back, signals) costs the child no time.
LOOK_AHEAD = 2
#: Niceness of the model service's process (0..19; the GUI process stays at 0), so that scrolling wins.
NICE = 10
#: Process name of the model service (shown by ``ps`` and in the message when it dies).
SERVICE_NAME = "radview-ai"
#: Seconds :meth:`InferenceLane.stop` lets a call in progress finish before the service is terminated.
STOP_GRACE_S = 1.0


def model_service() -> ChildProcess:
    """A model service process (not started: the first call starts it)."""
    return ChildProcess(SERVICE_TARGET, nice=NICE, name=SERVICE_NAME)


class ModelLoadError(Exception):
    """A model bundle that could not be loaded or run on this series; the message is one line."""

    def __init__(self, entry: ModelEntry, reason: str) -> None:
        super().__init__(f"could not load model {entry.name!r}: {reason}")
        self.entry = entry
        self.reason = reason


class AnalysisError(Exception):
    """The loaded model failed on a batch (e.g. its input does not fit the series)."""


class ServiceDiedError(AnalysisError):
    """The model service's process ended in the middle of a request; the next request starts a new one."""


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
    ``faithfulness`` for the deletion test of the slice on screen once it is analysed, ``findings`` for
    the series' nodules once the sweep is done (a :class:`FindingsReport`).
    """

    series_key: str
    volume: Volume | None
    slice_index: int
    entry: ModelEntry
    done: np.ndarray
    sweep: bool = True
    faithfulness: bool = False
    findings: bool = False

    @property
    def version_key(self) -> str:
        return self.entry.version_key


@dataclass(frozen=True, eq=False)
class FindingsReport:
    """The nodules of a series (:class:`models.runtime.findings.find.SeriesFindings`) for one model."""

    series_key: str
    version_key: str
    findings: object


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
    """Deletion faithfulness of one slice's heatmap (see :mod:`models.runtime.faithfulness`)."""

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


def _slices_text(indices: list[int]) -> str:
    return ", ".join(str(i + 1) for i in indices)


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
    service:
        The model service to use (a :class:`~viewer.base.child_process.ChildProcess` running
        :data:`models.runtime.service.SERVICE_TARGET`). Default: the lane makes its own, and closes it in
        :meth:`stop`; a service given here is left running.
    """

    #: request id, :class:`ModelReady` (before the first batch of every request)
    sig_model_ready = Signal(int, object)
    #: request id, :class:`AnalysisBatch`
    sig_results = Signal(int, object)
    #: request id, :class:`FaithfulnessReport`
    sig_faithfulness = Signal(int, object)
    #: request id, :class:`FindingsReport`
    sig_findings = Signal(int, object)
    #: request id, one line for the reader (e.g. the GPU ran out of memory and the CPU took over)
    sig_notice = Signal(int, str)
    #: request id, one line: the service's process died during that request (it then fails, and the
    #: next request starts a new process)
    sig_service_died = Signal(int, str)

    def __init__(self, parent: QObject | None = None, *, sync: bool = False, device: str = "auto",
                 batch_size: int = BATCH_SIZE, service: ChildProcess | None = None) -> None:
        super().__init__(parent)
        self.worker = Worker("inference", sync=sync, parent=self)
        self.device = device
        self.batch_size = batch_size
        self._owns_service = service is None
        self._stopping = False
        self.service = service if service is not None else model_service()
        self._lock = threading.Lock()
        self._focus: tuple[str, int] | None = None
        self._faith: tuple[str, str, int] | None = None
        #: A test seam (:class:`viewer.qt.ai.probe.SweepProbe`): sees, and may hold, each batch of a sweep.
        self.probe: SweepProbe | None = None

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
        """Cancel, close the service process if this lane made it, and join the worker thread.

        The service is closed first: a call in progress (e.g. the first model load, seconds of torch
        import) is given :data:`STOP_GRACE_S` and then the process is terminated, so quitting never waits
        for it; the request then ends as cancelled.
        """
        self._stopping = True
        self.worker.cancel()
        if self.probe is not None:
            self.probe.release()  # a sweep held by a test or benchmark must reach its end
        if self._owns_service:
            self.service.close(timeout=STOP_GRACE_S)
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

    def _call(self, method: str, *args, **kwargs):
        """A call to the service, unless the lane is stopping (which would start a new process)."""
        if self._stopping:
            raise Cancelled("the AI is shutting down")
        return self.service.call(method, *args, **kwargs)

    def _died(self, rid: int, e: ChildDied, task: str) -> Exception:
        if self._stopping:  # closed by stop(): not a failure
            return Cancelled(f"request {rid} cancelled: the AI is shutting down")
        text = (f"the AI process ended unexpectedly ({describe_exit(e.exitcode)}) and could not {task}; "
                "it restarts with the next request")
        self.sig_service_died.emit(rid, text)
        return ServiceDiedError(text)

    def _load(self, entry: ModelEntry, ref: ModelRef, rid: int) -> ModelInfo:
        """Load (and verify) the entry's bundle in the service, unless it is loaded there already."""
        try:
            info: ModelInfo = self._call("load", ref)
        except ChildDied as e:
            raise self._died(rid, e, f"load model {entry.name!r}") from e
        except ChildError as e:
            raise ModelLoadError(entry, e.message if e.type_name == "ModelLoadFailed" else str(e)) from e
        self._notice(rid, info.notice)
        return info

    def _notice(self, rid: int, text: str) -> None:
        if text:
            self.sig_notice.emit(rid, text)

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

    def _run(self, request: AnalysisRequest, ctx: JobContext) -> JobSummary:
        rid = ctx.request_id
        ref = ModelRef(str(request.entry.path), request.entry.card.sha256, self.device)
        info = self._load(request.entry, ref, rid)
        ctx.check()
        self.sig_model_ready.emit(rid, ModelReady(request.entry, info.device))
        volume = request.volume
        if volume is None:  # a load-only request (a model chosen before any series is open)
            return JobSummary(request.series_key, request.version_key, 0)
        if self._stopping:
            raise Cancelled("the AI is shutting down")
        _lower_this_threads_priority()
        with self.service.pipeline() as pipe:
            return _Sweep(self, request, ctx, ref, info, pipe).run()

    def _before_sending(self, rid: int, batch: list[int], drain: Callable[[], None]) -> None:
        probe = self.probe
        if probe is not None:
            probe.before_batch(rid, batch, drain)
        if self._stopping:
            raise Cancelled("the AI is shutting down")

def _lower_this_threads_priority() -> None:
    """Give the calling thread (the lane's worker) the service's niceness; Linux only, where it is per thread.

    While a sweep runs, this thread picks, gathers and sends the next batch and turns answers into signals;
    at the window's niceness it competed with the UI thread for a core. Measured in the window benchmark,
    alternating runs: p95 slice update during analysis ÷ idle 1.08–1.24 (median 1.17) with the thread at
    nice 0, 1.04–1.13 (median 1.09) at :data:`NICE`. (macOS and Windows have no per-thread nice value.)
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is threading.main_thread():
        return  # (a lane run inline, ``sync=True``, must not lower the caller's thread for good)
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < NICE:
            os.setpriority(os.PRIO_PROCESS, tid, NICE)
    except OSError as e:
        log.debug("could not lower the AI worker thread's priority: %s", e)


class _Sweep:
    """One request's loop in the worker thread: batches sent ahead, answers handled as they come.

    Up to :data:`LOOK_AHEAD` batches are in the service at once, so the child goes from one batch to the
    next while this thread picks the next slices, sends them and turns answers into signals. The next batch
    is chosen when it is sent, from the slice on screen at that moment, so scrolling to an unanalysed slice
    still gets it analysed within one batch of the one in flight.
    """

    def __init__(self, lane: InferenceLane, request: AnalysisRequest, ctx: JobContext, ref: ModelRef,
                 info: ModelInfo, pipe: Pipeline) -> None:
        self.lane, self.request, self.ctx, self.ref, self.info, self.pipe = lane, request, ctx, ref, info, pipe
        self.rid = ctx.request_id
        volume = request.volume
        self.done = np.array(request.done, dtype=bool, copy=True)
        self.ok = analysable(volume, info.context)
        self.in_flight: deque[list[int]] = deque()
        self.total = int(self.ok.sum()) if request.sweep else 1
        self.analysed = 0

    def run(self) -> JobSummary:
        try:
            return self._loop()
        except Cancelled:
            # The batches in flight are computed anyway: their answers go out like any other, and the
            # receiver drops them by their request id (the pattern's "stale results are dropped").
            try:
                self._drain()
            except (AnalysisError, ServiceDiedError):
                pass
            raise

    def _loop(self) -> JobSummary:
        request, lane = self.request, self.lane
        faith_pending = request.slice_index if request.faithfulness else None
        while True:
            self.ctx.check()
            asked = lane._take_faithfulness(request)
            if asked is not None:
                faith_pending = asked
            if faith_pending is not None and (self.done[faith_pending] or not self.ok[faith_pending]):
                index, faith_pending = faith_pending, None
                if self.ok[index]:
                    self._drain()  # answers come in order: the batches in flight first
                    self._faithfulness(index)
                continue
            sent = self._sent()
            batch = lane._next_batch(request, self.done | sent, self.ok)
            if not batch and faith_pending is not None and not sent[faith_pending]:
                batch = [faith_pending]  # not analysable in the sweep's order yet: analyse it alone, then test it
            if batch:
                lane._before_sending(self.rid, batch, self._drain)
                self._send(batch)
                if len(self.in_flight) < LOOK_AHEAD:
                    continue
            if not self.in_flight:
                break
            self._take_answer()
            if not request.sweep and faith_pending is None and not self.in_flight:
                break
        if request.sweep and request.findings:
            self.ctx.check()
            self._findings()
        return JobSummary(request.series_key, request.version_key, self.analysed)

    def _sent(self) -> np.ndarray:
        """The slices in flight, as a mask."""
        sent = np.zeros_like(self.done)
        for batch in self.in_flight:
            sent[batch] = True
        return sent

    def _post(self, task: str, method: str, indices: list[int], *args) -> None:
        """Send ``method(ref, *args, stored slices of indices)`` to the service; a dead child names ``task``."""
        try:
            self.pipe.send(method, self.ref, *args, stored_slices(self.request.volume, indices, self.info.context),
                           scope=str(self.rid))
        except ChildDied as e:
            raise self.lane._died(self.rid, e, task) from e

    def _send(self, batch: list[int]) -> None:
        task = f"analyse slice(s) {_slices_text(batch)}"
        try:
            self.pipe.send("analyze", self.ref, batch, stored_slices(self.request.volume, batch, self.info.context),
                           scope=str(self.rid), series=self.request.series_key)
        except ChildDied as e:
            raise self.lane._died(self.rid, e, task) from e
        self.in_flight.append(batch)

    def _receive(self, task: str):
        try:
            answer = self.pipe.receive()
        except ChildDied as e:
            raise self.lane._died(self.rid, e, task) from e
        except ChildError as e:
            raise AnalysisError(f"model {self.request.entry.name!r} could not {task}: {e}") from e
        self.lane._notice(self.rid, answer.notice)
        return answer

    def _take_answer(self) -> None:
        batch = self.in_flight.popleft()
        answer: BatchAnalysis = self._receive(f"analyse slice(s) {_slices_text(batch)}")
        self.done[batch] = True
        self.analysed += len(batch)
        request = self.request
        n_done = int((self.done & self.ok).sum()) if request.sweep else 1
        items = tuple(SliceAI(i, p, heat, peak) for i, p, heat, peak
                      in zip(answer.indices, answer.probabilities, answer.heatmaps, answer.peaks_rc))
        # Emitted before the next cancel check: an answer computed for a superseded request still
        # reaches the receiver, which drops it by its id (the pattern's "stale results are dropped").
        self.lane.sig_results.emit(self.rid, AnalysisBatch(request.series_key, request.version_key, items, n_done,
                                                           self.total))
        self.ctx.progress(n_done, self.total)

    def _drain(self) -> None:
        while self.in_flight:
            self._take_answer()

    def _findings(self) -> None:
        """The series' nodules, from the maps and slices the child kept during the sweep (the whole stored
        volume crosses again, out of band, only when the child does not hold it); skipped for a series
        without slice spacing."""
        from viewer.ai.findings import FindingsRefused, segmentation_head, voxel_spacing

        volume, request = self.request.volume, self.request
        try:
            spacing = voxel_spacing(volume)
        except FindingsRefused as e:
            log.info("%s", e)
            return
        task = "find the nodules of the series"
        n, head = volume.n_slices, segmentation_head()

        def ask(slices):
            try:
                self.pipe.send("findings", self.ref, request.series_key, slices, spacing, self.ok, head, n_slices=n)
            except ChildDied as e:
                raise self.lane._died(self.rid, e, task) from e
            return self._receive(task)

        answer = ask(None)
        if answer.findings is None:  # the child does not hold every slice: they cross
            answer = ask(stored_slices(volume, range(n), self.info.context))
        self.lane.sig_findings.emit(self.rid, FindingsReport(request.series_key, request.version_key,
                                                             answer.findings))

    def _faithfulness(self, index: int) -> None:
        request = self.request
        task = f"test the heatmap of slice {index + 1}"
        self._post(task, "faithfulness", [index], index)
        answer = self._receive(task)
        self.lane.sig_faithfulness.emit(self.rid, FaithfulnessReport(request.series_key, request.version_key, index,
                                                                     answer.score, answer.faithful,
                                                                     answer.initial_probability))


__all__ = [
    "BATCH_SIZE", "NICE", "AnalysisBatch", "AnalysisError", "AnalysisRequest", "FaithfulnessReport", "FindingsReport",
    "InferenceLane", "JobSummary", "ModelLoadError", "ModelReady", "ServiceDiedError", "SliceAI", "analysable",
    "model_service",
]
