"""One pattern for every piece of background work: a job run on a worker thread, answered by signals.

The shape follows Qt for Python's ``examples/corelib/threads/mandelbrot.py``: one long-lived ``QThread``
per lane sleeps on a condition until a request arrives; the newest request wins (a lane may instead
queue its requests); every answer carries the id of the request it answers, so a receiver drops stale
ones with :meth:`Worker.is_current`; and :meth:`Worker.stop` aborts, wakes and joins the thread, so
nothing is left running when the application quits.

A job is any callable ``fn(ctx: JobContext) -> result``. It polls ``ctx.cancelled()`` (or calls
``ctx.check()``, which raises :class:`~viewer.base.errors.Cancelled`) and reports ``ctx.progress(done,
total)``, throttled here so the UI thread sees at most ~20 progress signals per second. Exceptions are
never swallowed: a :class:`Cancelled` job ends with ``sig_cancelled``, anything else with ``sig_failed``
carrying the message and the formatted traceback, for the receiver's one error handler. Every failure
also reaches the process's one :class:`FailureHub` as an :class:`~viewer.core.error_report.ErrorReport`
(stale ones too: an exception is never swallowed), which the error panel lists; an exception from a
child process (:class:`~viewer.base.child_process.ChildError`) brings the child's traceback along.

Signals are emitted from the worker thread by an object that lives in the UI thread, so Qt queues them
to the UI thread's slots. With ``sync=True`` (as napari's ``_LayerSlicer`` offers) a job runs inline in
the caller's thread instead, which makes tests deterministic.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QThread, Signal

from viewer.base.errors import Cancelled
from viewer.core.error_report import ErrorReport, child_traceback

log = logging.getLogger(__name__)

#: Minimum seconds between two progress signals of one job (the first and the last always pass).
PROGRESS_INTERVAL_S = 0.05

_request_ids = itertools.count(1)


def next_request_id() -> int:
    """A process-wide unique request id (ids never repeat across lanes)."""
    return next(_request_ids)


#: Failures the hub keeps for a panel that connects later (the oldest are dropped first).
KEPT_FAILURES = 100


class FailureHub(QObject):
    """The one place every background failure goes: workers, and the last-resort exception hooks.

    Lives in the UI thread; :meth:`report` may be called from any thread (the signal is queued to the
    receivers' thread). The last :data:`KEPT_FAILURES` reports are kept for a panel made later.
    """

    #: :class:`~viewer.core.error_report.ErrorReport`
    sig_failure = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._reports: deque[ErrorReport] = deque(maxlen=KEPT_FAILURES)

    def report(self, report: ErrorReport) -> None:
        """Record ``report`` and announce it (thread-safe)."""
        with self._lock:
            self._reports.append(report)
        self.sig_failure.emit(report)

    def reports(self) -> list[ErrorReport]:
        """The kept reports, oldest first."""
        with self._lock:
            return list(self._reports)


_hub: FailureHub | None = None
_hub_lock = threading.Lock()


def failure_hub() -> FailureHub:
    """The process's :class:`FailureHub` (made on first use, moved to the application's thread)."""
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = FailureHub()
            app = QCoreApplication.instance()
            if app is not None and _hub.thread() is not app.thread():
                _hub.moveToThread(app.thread())
        return _hub


class JobContext:
    """What a running job sees: its request id, a cancel flag and a throttled progress reporter."""

    def __init__(self, request_id: int, emit_progress: Callable[[int, int, int], None]) -> None:
        self.request_id = request_id
        self._cancel = threading.Event()
        self._emit_progress = emit_progress
        self._last_emit = 0.0
        self._emitted_any = False

    def cancel(self) -> None:
        """Ask the job to stop at its next poll (thread-safe)."""
        self._cancel.set()

    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called; jobs poll this between units of work."""
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled."""
        if self._cancel.is_set():
            raise Cancelled(f"request {self.request_id} cancelled")

    def progress(self, done: int, total: int) -> None:
        """Report progress; may be called from any thread (``load_into`` calls it from its decoders).

        Throttled to one signal per :data:`PROGRESS_INTERVAL_S`, except the first report (so the first
        decoded slice is shown at once) and the final one (``done >= total``).
        """
        now = time.monotonic()
        if self._emitted_any and done < total and now - self._last_emit < PROGRESS_INTERVAL_S:
            return
        self._emitted_any = True
        self._last_emit = now
        self._emit_progress(self.request_id, done, total)


@dataclass
class _Request:
    fn: Callable[[JobContext], Any]
    ctx: JobContext
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Worker(QThread):
    """A lane of background work: one thread, requests answered in order, newest wins by default.

    Parameters
    ----------
    name:
        Thread name (shown in debuggers and in failure messages).
    latest_only:
        True: a new request cancels the running one and replaces any waiting one (scan, load).
        False: requests queue up and all run (thumbnails).
    sync:
        Run each job inline in :meth:`submit` (tests, scripts); signals are then delivered directly.
    """

    #: request id, done, total (throttled, see :meth:`JobContext.progress`)
    sig_progress = Signal(int, int, int)
    #: request id, result
    sig_finished = Signal(int, object)
    #: request id, one-line message, traceback text
    sig_failed = Signal(int, str, str)
    #: request id (a cancelled job is not an error)
    sig_cancelled = Signal(int)
    #: request id, after any of the three endings was emitted
    sig_done = Signal(int)

    def __init__(self, name: str, *, latest_only: bool = True, sync: bool = False, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.name = name
        self.latest_only = latest_only
        self.sync = sync
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._running: _Request | None = None
        self._abort = False
        self._latest_id = 0
        # Answers not yet delivered to the UI thread; decremented there, so wait_idle() is exact.
        self._outstanding: set[int] = set()
        self.sig_done.connect(self._on_done)
        self._hub = failure_hub()  # made here, in the UI thread

    # -- called from the UI thread ---------------------------------------------------------------------

    def submit(self, fn: Callable[[JobContext], Any], name: str = "") -> int:
        """Queue ``fn(ctx)``; returns its request id (already current when the first signal arrives)."""
        if self._abort:
            raise RuntimeError(f"worker {self.name} is stopped")
        request = _Request(fn=fn, ctx=JobContext(next_request_id(), self.sig_progress.emit), name=name)
        rid = request.ctx.request_id
        self._outstanding.add(rid)
        self._latest_id = rid
        if self.sync:
            self._execute(request)
            return rid
        dropped: list[int] = []
        with self._cond:
            if self.latest_only:
                dropped = self._cancel_locked()
            self._queue.append(request)
            self._cond.notify()
        self._announce_dropped(dropped)
        if not self.isRunning():
            self.start()
        return rid

    def is_current(self, request_id: int) -> bool:
        """True if ``request_id`` is the newest request of this lane (for latest-only receivers)."""
        return request_id == self._latest_id

    def cancel(self) -> None:
        """Cancel the running request and drop the waiting ones (they end with ``sig_cancelled``)."""
        with self._cond:
            dropped = self._cancel_locked()
        self._latest_id = 0
        self._announce_dropped(dropped)

    def _cancel_locked(self) -> list[int]:
        """Flag the running request and empty the queue; returns the dropped ids (lock held)."""
        if self._running is not None:
            self._running.ctx.cancel()
        dropped = [r.ctx.request_id for r in self._queue]
        self._queue.clear()
        return dropped

    def _announce_dropped(self, dropped: list[int]) -> None:
        """Answer requests that never ran (outside the lock: receivers may submit again)."""
        for rid in dropped:
            self.sig_cancelled.emit(rid)
            self.sig_done.emit(rid)

    @property
    def busy(self) -> bool:
        """True while a request of this lane is waiting, running, or its answer is undelivered."""
        return bool(self._outstanding)

    def stop(self, timeout_ms: int = 10_000) -> bool:
        """Cancel everything, wake the thread and join it; returns False if it did not stop in time."""
        with self._cond:
            self._abort = True
            dropped = self._cancel_locked()
            self._cond.notify_all()
        self._announce_dropped(dropped)
        if self.isRunning():
            return self.wait(timeout_ms)
        return True

    def _on_done(self, request_id: int) -> None:
        self._outstanding.discard(request_id)

    def _source(self, request: _Request) -> str:
        """Where a failure happened, for the error report: the lane, and the job when it has a name."""
        return (
            f"{self.name} worker ({request.name})"
            if request.name and request.name != self.name
            else f"{self.name} worker"
        )

    # -- the worker thread -----------------------------------------------------------------------------

    def run(self) -> None:  # QThread entry point
        while True:
            with self._cond:
                while not self._queue and not self._abort:
                    self._cond.wait()
                if self._abort:
                    return
                request = self._queue.popleft()
                self._running = request
            try:
                self._execute(request)
            finally:
                with self._cond:
                    self._running = None

    def _execute(self, request: _Request) -> None:
        rid = request.ctx.request_id
        try:
            if request.ctx.cancelled():
                raise Cancelled(f"request {rid} cancelled before it started")
            result = request.fn(request.ctx)
        except Cancelled:
            self.sig_cancelled.emit(rid)
        except BaseException as e:  # noqa: BLE001 - every failure goes to the receiver's one handler, with its traceback
            text = traceback.format_exc()
            message = (
                f"{request.name or self.name}: {e}" if str(e) else f"{request.name or self.name}: {type(e).__name__}"
            )
            child_text = child_traceback(e)
            if child_text:
                text = f"{text}\nIn the child process:\n{child_text}"
            log.debug("job %s failed\n%s", rid, text)
            self._hub.report(ErrorReport.create(self._source(request), message, text, kind=type(e).__name__,
                                                child_text=child_text))
            self.sig_failed.emit(rid, message, text)
        else:
            self.sig_finished.emit(rid, result)
        finally:
            self.sig_done.emit(rid)


def wait_until_idle(workers: list[Worker], timeout_s: float = 30.0) -> bool:
    """Process UI events until no worker has outstanding requests; False on timeout.

    Answers are counted as delivered only once the UI thread processed them, and a receiver may submit
    follow-up work while handling one (scan finished -> load), so idleness is checked after each pass.
    """
    app = QCoreApplication.instance()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if app is not None:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if not any(w.busy for w in workers):
            if app is not None:
                app.processEvents()
            if not any(w.busy for w in workers):
                return True
        else:
            time.sleep(0.002)
    return False
