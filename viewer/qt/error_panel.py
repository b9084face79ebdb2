"""The one error panel: every unexpected exception, from any worker or from the last-resort hooks.

Each entry is an :class:`~viewer.core.error_report.ErrorReport` (type, message, traceback, the child
process's traceback when there is one, versions), shown in full when selected and copied to the
clipboard with one click, for a bug report. Reports are redacted of patient identifiers
(:mod:`viewer.core.privacy`). The panel only lists: the application keeps running.

:func:`install_last_resort_hooks` routes what escapes everything else — an exception raised in a Qt
slot or event handler (``sys.excepthook``) or in a plain Python thread (``threading.excepthook``) — to
the same :class:`~viewer.qt.workers.FailureHub` the workers report to.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from viewer.core.error_report import ErrorReport
from viewer.qt.workers import FailureHub, failure_hub

log = logging.getLogger(__name__)


class ErrorPanel(QWidget):
    """List of error reports (newest selected) above the selected report's full text; Copy and Clear."""

    #: number of reports listed
    sig_count_changed = Signal(int)
    #: a new report arrived (the window raises the panel's dock)
    sig_new_report = Signal(object)

    def __init__(self, hub: FailureHub | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hub = hub or failure_hub()
        self._reports: list[ErrorReport] = []
        self.list = QListWidget(self)
        self.detail = QPlainTextEdit(self)
        self.detail.setReadOnly(True)
        self.detail.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.detail.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.copy_button = QPushButton("Copy report", self)
        self.clear_button = QPushButton("Clear", self)
        self.copy_button.setEnabled(False)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.list)
        splitter.addWidget(self.detail)
        splitter.setSizes([120, 300])
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)
        layout.addLayout(buttons)
        self.list.currentRowChanged.connect(self._show)
        self.copy_button.clicked.connect(self.copy_report)
        self.clear_button.clicked.connect(self.clear)
        self.hub.sig_failure.connect(self._on_failure)

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def reports(self) -> list[ErrorReport]:
        return list(self._reports)

    def current_text(self) -> str:
        """The selected report's full text (what Copy puts on the clipboard); ``""`` when none."""
        row = self.list.currentRow()
        return self._reports[row].text() if 0 <= row < len(self._reports) else ""

    # -- actions -------------------------------------------------------------------------------------------

    def copy_report(self) -> str:
        """Put the selected report on the clipboard; returns it."""
        text = self.current_text()
        if text:
            QGuiApplication.clipboard().setText(text)
        return text

    def clear(self) -> None:
        self._reports.clear()
        self.list.clear()
        self.detail.clear()
        self.copy_button.setEnabled(False)
        self.sig_count_changed.emit(0)

    # -- slots ---------------------------------------------------------------------------------------------

    def _on_failure(self, report: ErrorReport) -> None:
        self._reports.append(report)
        item = QListWidgetItem(report.title)
        item.setToolTip(report.message)
        self.list.addItem(item)
        self.list.setCurrentRow(len(self._reports) - 1)
        self.sig_count_changed.emit(len(self._reports))
        self.sig_new_report.emit(report)

    def _show(self, row: int) -> None:
        text = self._reports[row].text() if 0 <= row < len(self._reports) else ""
        self.detail.setPlainText(text)
        self.copy_button.setEnabled(bool(text))


def install_last_resort_hooks(hub: FailureHub | None = None,
                              also: Callable[[ErrorReport], None] | None = None) -> Callable[[], None]:
    """Send exceptions nothing else caught to ``hub`` (and to ``also``); returns a function that undoes it.

    ``sys.excepthook`` receives what a Qt slot or event handler raised (PySide6 hands it there and
    carries on); ``threading.excepthook`` what a plain thread raised. ``KeyboardInterrupt`` keeps the
    previous behaviour. A hook that fails itself falls back to the previous hook.
    """
    hub = hub or failure_hub()
    previous_sys, previous_thread = sys.excepthook, threading.excepthook

    def report(source: str, value: BaseException) -> None:
        failure = ErrorReport.from_exception(source, value)
        log.error("%s\n%s", failure.message, failure.traceback_text)
        hub.report(failure)
        if also is not None:
            also(failure)

    def sys_hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous_sys(kind, value, tb)
            return
        try:
            report("UI", value if value is not None else kind())
        except Exception:  # noqa: BLE001 - the report itself failed: the previous hook still prints it
            previous_sys(kind, value, tb)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            previous_thread(args)
            return
        try:
            name = args.thread.name if args.thread is not None else "a thread"
            report(f"thread {name}", args.exc_value)
        except Exception:  # noqa: BLE001 - the report itself failed: the previous hook still prints it
            previous_thread(args)

    sys.excepthook = sys_hook
    threading.excepthook = thread_hook

    def uninstall() -> None:
        if sys.excepthook is sys_hook:
            sys.excepthook = previous_sys
        if threading.excepthook is thread_hook:
            threading.excepthook = previous_thread

    return uninstall


__all__ = ["ErrorPanel", "install_last_resort_hooks"]
