"""The dialog's background work: one worker thread that talks to the fine-tune child process.

The project's Worker pattern (:class:`viewer.qt.workers.Worker`, here queueing, not newest-wins: every
step of the session must run, in order) drives a :class:`viewer.base.child_process.ChildProcess` running
:class:`viewer.ai.finetune_service.FineTuneService`. torch lives only in the child, at nice
:data:`NICE` and (Linux) in the idle scheduling class, so the window keeps its CPU and never waits for
the GIL while a model trains.

Answers reach the dialog as signals (queued to the UI thread): one per step, and during training one per
item the child streams (per-batch progress, per-epoch points, the result). Cancel sets the child's
shared event: the engine stops before its next batch and nothing is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from viewer.base.child_process import ChildError, ChildProcess
from viewer.base.errors import Cancelled
from viewer.qt.workers import JobContext, Worker

log = logging.getLogger(__name__)

#: The handler the child runs.
TARGET = "viewer.ai.finetune_service:create"
#: Niceness of the fine-tune process (Linux; the window stays at 0).
NICE = 10
#: Child exceptions that mean "stopped as asked", not a failure.
CANCELLED_TYPES = ("TrainingCancelled", "Cancelled")
#: Child exceptions that are about the reader's data or settings (too few images per class, a split the
#: patients cannot make): said in the dialog, in words, never reported as errors with a traceback.
REFUSED_TYPES = ("LabeledDataError", "TrainingDataError")


@dataclass(frozen=True)
class Refused:
    """A step the child refused for the reader's input; ``message`` says why in one line."""

    message: str


class StepFailed(Exception):
    """A step failed in the child; ``message`` is one line, ``traceback_text`` the child's traceback."""

    def __init__(self, message: str, traceback_text: str = "") -> None:
        super().__init__(message)
        self.traceback_text = traceback_text


class FineTuneLane(QObject):
    """Steps of one fine-tune session (see the module docstring); answers come as signals."""

    sig_data = Signal(object)  # DataSummary
    sig_prepared = Signal(object)  # PreparedSummary
    sig_item = Signal(object)  # TrainingProgress | EpochReport | ResultView (| GridProgress | GridRow)
    sig_compared = Signal(object)  # Comparison
    sig_threshold = Signal(object)  # ThresholdChoice stored for the save
    sig_saved = Signal(str)  # bundle folder
    sig_failed = Signal(str, str, str)  # step, one-line message, traceback
    sig_cancelled = Signal(str)  # step
    sig_refused = Signal(str, str)  # step, why (the reader's data or settings)
    sig_busy = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = Worker("finetune", latest_only=False, parent=self)
        self.worker.sig_finished.connect(self._on_finished)
        self.worker.sig_failed.connect(self._on_failed)
        self.worker.sig_cancelled.connect(self._on_cancelled)
        self.worker.sig_done.connect(lambda _rid: self.sig_busy.emit(self.busy))
        self._steps: dict[int, str] = {}
        self._child: ChildProcess | None = None

    @property
    def busy(self) -> bool:
        return self.worker.busy

    @property
    def child(self) -> ChildProcess:
        if self._child is None:
            self._child = ChildProcess(TARGET, nice=NICE, idle=True, name="radview-finetune")
        return self._child

    # -- steps (UI thread) -------------------------------------------------------------------------------------

    def _submit(self, step: str, fn) -> int:
        def job(ctx: JobContext) -> Any:
            try:
                return fn(ctx)
            except ChildError as e:
                if e.type_name in CANCELLED_TYPES:
                    raise Cancelled(e.message) from None
                if e.type_name in REFUSED_TYPES:
                    return Refused(e.message)
                raise StepFailed(e.message, e.traceback_text) from None

        rid = self.worker.submit(job, name=step)
        self._steps[rid] = step
        self.sig_busy.emit(True)
        return rid

    def load_data(self, source: Any) -> int:
        return self._submit("data", lambda ctx: self.child.call("load_data", source))

    def prepare(self, config: Any, test: float, val: float, positive: str | None, grid: Any = None) -> int:
        return self._submit("prepare", lambda ctx: self.child.call("prepare", config, test=test, val=val,
                                                                   positive=positive, grid=grid))

    def train(self) -> int:
        def run(ctx: JobContext) -> Any:
            last = None
            for item in self.child.stream("train"):
                self.sig_item.emit(item)  # from the worker thread: queued to the dialog
                last = item
            return last

        return self._submit("train", run)

    def compare(self, stack: Any) -> int:
        return self._submit("compare", lambda ctx: self.child.call("compare", stack))

    def set_threshold(self, method: str, target: float = 0.9, value: float | None = None) -> int:
        return self._submit("threshold", lambda ctx: self.child.call("set_threshold", method, target=target,
                                                                     value=value))

    def save(self, name: str) -> int:
        return self._submit("save", lambda ctx: self.child.call("save", name))

    def cancel(self) -> None:
        """Stop the running step at the child's next batch (thread-safe; nothing is kept)."""
        if self._child is not None:
            self._child.cancel()

    def shutdown(self) -> None:
        """Cancel, join the worker, end the child process (idempotent)."""
        self.cancel()
        if not self.worker.stop():
            log.warning("the fine-tune worker did not stop in time")
        if self._child is not None:
            self._child.close()
            self._child = None

    # -- answers (UI thread) -----------------------------------------------------------------------------------

    def _on_finished(self, rid: int, result: Any) -> None:
        step = self._steps.pop(rid, "")
        if isinstance(result, Refused):
            self.sig_refused.emit(step, result.message)
            return
        signal = {"data": self.sig_data, "prepare": self.sig_prepared, "compare": self.sig_compared,
                  "threshold": self.sig_threshold, "save": self.sig_saved}.get(step)
        if signal is not None:
            signal.emit(result)

    def _on_failed(self, rid: int, message: str, traceback_text: str) -> None:
        step = self._steps.pop(rid, "")
        message = message.split(": ", 1)[1] if message.startswith(f"{step}: ") else message
        self.sig_failed.emit(step, message, traceback_text)

    def _on_cancelled(self, rid: int) -> None:
        self.sig_cancelled.emit(self._steps.pop(rid, ""))
