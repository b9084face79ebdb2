"""The PACS work of the window, on workers: searches on one lane (the newest wins), transfers on another
(queued, each with progress and cancel), and the storage SCP's arrivals, all answered by signals.

Nothing here waits on the network in the UI thread. A search or echo that a newer one replaced is dropped
when it answers (its request id is stale). A PACS that refuses or cannot be reached, or findings that
cannot be written as DICOM (:class:`~viewer.core.results.seg.ResultsRefused`), is an expected answer, a
one-line reason (:class:`~viewer.core.pacs.errors.PacsError`), not an error for the error panel: the jobs
return it instead of raising it. A transfer is a :class:`Transfer` row: a retrieve into the
user cache (one folder per study, :class:`~viewer.core.pacs.study_cache.StudyFolder`) or a send; its
``state`` is ``queued``, ``running``, ``done``, ``failed`` or ``cancelled``, with a one-line ``message``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from viewer.base.errors import Cancelled
from viewer.core.pacs import remote
from viewer.core.pacs.errors import PacsError
from viewer.core.pacs.nodes import Node, PacsSettings, load_settings
from viewer.core.pacs.query import Query
from viewer.core.pacs.storage_scp import Received, StorageSCP, retrieve_by_move
from viewer.core.pacs.study_cache import StudyFolder
from viewer.core.results.seg import ResultsRefused
from viewer.core.user_dirs import cache_dir
from viewer.qt.workers import JobContext, Worker


def pacs_cache() -> Path:
    """Where the window's retrieves and the SCP's arrivals go: ``<cache>/pacs/<StudyInstanceUID>/``."""
    return cache_dir() / "pacs"


@dataclass
class Transfer:
    """One row of the transfer queue."""

    id: int
    kind: str  # "retrieve" or "send"
    what: str  # what a reader recognises: the study's description and date, or the files sent
    node: str
    state: str = "queued"
    done: int = 0
    total: int = 0
    message: str = ""
    folder: Path | None = None  # a retrieve's study folder
    opened: bool = False  # the window showed the study's first image already


class PacsJobs(QObject):
    """The dialog's engine (see the module docstring)."""

    sig_echo = Signal(str)  # one line: how long the node took, or why it did not answer
    sig_rows = Signal(list)  # the rows of the newest search (viewer.core.pacs.query)
    sig_search_failed = Signal(str)  # one line
    sig_transfer_changed = Signal(object)  # Transfer
    sig_first_instance = Signal(object)  # Transfer: its study's first instance is on disk
    sig_received = Signal(object)  # Received (from the storage SCP, queued to the UI thread)
    sig_listening = Signal(str)  # one line: listening on ..., stopped, or why it could not

    def __init__(self, parent: QObject | None = None, *, sync: bool = False,
                 settings: Callable[[], PacsSettings] = load_settings) -> None:
        super().__init__(parent)
        self._settings = settings
        self.query = Worker("pacs-query", latest_only=True, sync=sync, parent=self)
        self.transfer = Worker("pacs-transfer", latest_only=False, sync=sync, parent=self)
        self._by_request: dict[int, Transfer] = {}  # the transfers not ended yet
        self._stops: dict[int, threading.Event] = {}
        self._scp: StorageSCP | None = None
        self.query.sig_finished.connect(self._on_query_finished)
        self.query.sig_failed.connect(self._on_query_failed)
        for signal, handler in ((self.transfer.sig_progress, self._on_progress),
                                (self.transfer.sig_finished, self._on_transfer_finished),
                                (self.transfer.sig_failed, self._on_transfer_failed),
                                (self.transfer.sig_cancelled, self._on_transfer_cancelled)):
            signal.connect(handler)

    @property
    def settings(self) -> PacsSettings:
        return self._settings()

    # -- searching -------------------------------------------------------------------------------------

    def echo(self, node: Node) -> int:
        own = self.settings.ae_title

        def job(ctx: JobContext) -> tuple[str, Any]:
            try:
                return "echo", f"{node}: answered in {remote.echo(node, own) * 1000:.0f} ms"
            except PacsError as e:
                return "echo", str(e)

        return self.query.submit(job, "echo")

    def search(self, node: Node, query: Query) -> int:
        own = self.settings.ae_title

        def job(ctx: JobContext) -> tuple[str, Any]:
            try:
                return "rows", remote.find(node, query, own)
            except PacsError as e:
                return "failed", str(e)

        return self.query.submit(job, "search")

    def _on_query_finished(self, rid: int, answer: tuple[str, Any]) -> None:
        if not self.query.is_current(rid):
            return
        kind, value = answer
        if kind == "echo":
            self.sig_echo.emit(value)
        elif kind == "failed":
            self.sig_search_failed.emit(value)
        else:
            self.sig_rows.emit(value)

    def _on_query_failed(self, rid: int, message: str, _tb: str) -> None:
        if self.query.is_current(rid):
            self.sig_search_failed.emit(message)

    # -- transfers ------------------------------------------------------------------------------------

    def _queue(self, kind: str, what: str, node: Node, fn: Callable[[JobContext, Callable[[], bool]], Any],
               folder: Path | None = None) -> Transfer:
        transfer = Transfer(0, kind, what, str(node), folder=folder)
        stop = threading.Event()

        def job(ctx: JobContext) -> Any:
            if stop.is_set():
                raise Cancelled("cancelled before it started")
            try:
                return fn(ctx, lambda: stop.is_set() or ctx.cancelled())
            except (PacsError, ResultsRefused) as e:  # an expected refusal: the row's one line, not the error panel
                return e

        rid = self.transfer.submit(job, kind)
        self._stops[rid] = stop
        transfer.id = rid
        self._by_request[rid] = transfer
        self.sig_transfer_changed.emit(transfer)
        return transfer

    def retrieve(self, node: Node, study_uid: str, what: str, series_uid: str = "", move: bool = False) -> Transfer:
        """Bring the study (or one series) into :func:`pacs_cache`; resumes what is there already. ``move``:
        by C-MOVE to radview's storage SCP, which must be listening (:meth:`listen`) and known to the PACS."""
        own = self.settings.ae_title
        folder = StudyFolder(pacs_cache(), study_uid)
        scp = self._scp

        def fn(ctx: JobContext, cancelled: Callable[[], bool]) -> Any:
            if move:
                if scp is None or node.is_dicomweb:
                    return PacsError("C-MOVE needs a DIMSE node and radview listening (tick Listen below)")
                return retrieve_by_move(node, own, study_uid, folder, scp, series_uid=series_uid,
                                        progress=ctx.progress, cancelled=cancelled)
            return remote.retrieve(node, own, study_uid, folder, series_uid=series_uid, progress=ctx.progress,
                                   cancelled=cancelled)

        return self._queue("retrieve", what, node, fn, folder.path)

    def send(self, node: Node, files: list[Path], what: str,
             prepare: Callable[[], list[Path]] | None = None) -> Transfer:
        """Send ``files`` (or what ``prepare`` makes on the worker: the findings' SEG and SR)."""
        own = self.settings.ae_title

        def fn(ctx: JobContext, cancelled: Callable[[], bool]) -> Any:
            paths = prepare() if prepare is not None else files
            return remote.send(node, own, paths, progress=ctx.progress, cancelled=cancelled)

        return self._queue("send", what, node, fn)

    def cancel(self, transfer_id: int) -> None:
        """Stop a transfer between two instances (a queued one never starts); what arrived is kept."""
        stop = self._stops.get(transfer_id)
        if stop is not None:
            stop.set()

    def _update(self, transfer: Transfer, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(transfer, key, value)
        self.sig_transfer_changed.emit(transfer)

    def _on_progress(self, rid: int, done: int, total: int) -> None:
        transfer = self._by_request.get(rid)
        if transfer is None:
            return
        self._update(transfer, state="running", done=done, total=total)
        if transfer.kind == "retrieve" and done >= 1 and not transfer.opened:
            transfer.opened = True
            self.sig_first_instance.emit(transfer)

    def _ended(self, rid: int) -> Transfer | None:
        """The transfer of request ``rid``, no longer running (None: not one of ours)."""
        self._stops.pop(rid, None)
        return self._by_request.pop(rid, None)

    def _on_transfer_finished(self, rid: int, result: Any) -> None:
        transfer = self._ended(rid)
        if transfer is None:
            return
        if isinstance(result, (PacsError, ResultsRefused)):
            self._update(transfer, state="failed", message=str(result))
        elif transfer.kind == "retrieve":
            message = (f"{result.received} received, {result.skipped} already here: complete"
                       if result.received or result.skipped else "complete")
            self._update(transfer, state="done", done=result.listed, total=result.listed, message=message)
        else:
            failed = f", {len(result.failed)} refused" if result.failed else ""
            self._update(transfer, state="failed" if result.failed else "done",
                         message=f"{result.sent} sent{failed}")

    def _on_transfer_failed(self, rid: int, message: str, _tb: str) -> None:
        transfer = self._ended(rid)
        if transfer is not None:
            self._update(transfer, state="failed", message=message)

    def _on_transfer_cancelled(self, rid: int) -> None:
        transfer = self._ended(rid)
        if transfer is not None:
            kept = " (what arrived is kept: retrieve again to resume)" if transfer.kind == "retrieve" else ""
            self._update(transfer, state="cancelled", message=f"cancelled{kept}")

    # -- receiving ------------------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        return self._scp is not None

    def listen(self, on: bool) -> None:
        """Start or stop radview's storage SCP (the settings' AE title and port), keeping into the cache."""
        if not on:
            if self._scp is not None:
                self._scp.stop()
                self._scp = None
                self.sig_listening.emit("Not listening")
            return
        if self._scp is not None:
            return
        settings = self.settings
        scp = StorageSCP(pacs_cache(), settings.ae_title, settings.port, on_stored=self.sig_received.emit)
        try:
            scp.start()
        except Exception as e:  # noqa: BLE001 - a taken port is a line in the dialog, not a crash
            self.sig_listening.emit(f"Cannot listen: {e}")
            return
        self._scp = scp
        self.sig_listening.emit(f"Listening as {settings.ae_title} on port {settings.port}")

    def stop(self) -> None:
        """Stop the SCP and the workers (the window is closing)."""
        self.listen(False)
        for stop in list(self._stops.values()):
            stop.set()
        self.query.stop()
        self.transfer.stop()


__all__ = ["PacsJobs", "Received", "Transfer", "pacs_cache"]
