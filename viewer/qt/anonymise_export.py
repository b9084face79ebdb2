"""File › Anonymise and export DICOM…: the open study (or a chosen folder), anonymised on a worker thread.

The work is :func:`viewer.core.anonymise.anonymise_series_folder` run as a job of the project's worker
pattern, with a progress dialog that can cancel it (nothing is written then). A refused output folder
or a folder without images is a one-line message; anything unexpected reaches the error panel through
the worker's failure route.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QProgressDialog, QWidget

from viewer.core.anonymise import AnonymiseResult, anonymise_series_folder
from viewer.core.errors import NothingLoadableError
from viewer.qt.workers import JobContext, Worker


def summary(result: AnonymiseResult) -> str:
    """One line for the status bar."""
    text = f"Anonymised {len(result.files)} file(s) in {result.n_series} series to {result.out_dir}"
    if result.burned_in:
        text += (f"; {len(result.burned_in)} may show identifying text burned into the pixels "
                 f"(not cleaned, marked Patient Identity Removed = NO)")
    if result.skipped:
        text += f"; {len(result.skipped)} file(s) skipped"
    return text


def output_folder_dialog(parent: QWidget | None) -> QFileDialog:
    """A dialog that takes an existing empty folder or the name of a new one (a folder picker would only
    take existing folders): the export creates it."""
    dialog = QFileDialog(parent, "Export anonymised DICOM to a new or empty folder")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setFileMode(QFileDialog.FileMode.AnyFile)
    dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    dialog.setOption(QFileDialog.Option.DontConfirmOverwrite, True)  # an existing folder is refused unless empty
    dialog.setLabelText(QFileDialog.DialogLabel.Accept, "Export")
    dialog.setLabelText(QFileDialog.DialogLabel.FileName, "Folder")
    return dialog


class AnonymiseExport(QObject):
    """Runs anonymising exports, one at a time, and says how each ended.

    Parameters
    ----------
    sync:
        Run the export inline (tests).
    """

    #: one line: the summary, or why nothing was written
    sig_message = Signal(str)
    #: :class:`~viewer.core.anonymise.AnonymiseResult`
    sig_finished = Signal(object)

    def __init__(self, parent: QObject | None = None, *, sync: bool = False) -> None:
        super().__init__(parent)
        self.worker = Worker("anonymise", latest_only=False, sync=sync, parent=self)
        self.worker.sig_finished.connect(self._on_finished)
        self.worker.sig_failed.connect(
            lambda rid, message, tb: self.sig_message.emit(f"Anonymisation failed: {message}")
        )
        self.worker.sig_cancelled.connect(lambda rid: self.sig_message.emit("Anonymisation cancelled; nothing written"))
        self.worker.sig_progress.connect(self._on_progress)
        self.worker.sig_done.connect(self._on_done)
        self._dialog: QProgressDialog | None = None
        self._running = False

    def start(self, inputs: list[str | Path], out_dir: str | Path, parent_widget: QWidget | None = None,
              seed: str | None = None) -> int:
        """Anonymise ``inputs`` into ``out_dir`` on the worker; returns the request id."""
        inputs = [Path(p) for p in inputs]
        out_dir = Path(out_dir)
        if parent_widget is not None and not self.worker.sync:
            self._show_dialog(parent_widget)

        def job(ctx: JobContext) -> AnonymiseResult | str:
            try:
                return anonymise_series_folder(inputs, out_dir, seed=seed, progress=ctx.progress, cancel=ctx.cancelled)
            except (ValueError, NothingLoadableError) as e:  # the user's choice of folders: a reason, not a crash
                return str(e)

        return self.worker.submit(job, name="anonymise and export")

    def _show_dialog(self, parent_widget: QWidget) -> None:
        """The one progress dialog, made once and kept: a modal QProgressDialog's ``setValue`` processes
        events, in which the job's end may arrive, so a dialog deleted there would be used after its
        deletion (a segmentation fault seen once in a loaded test run)."""
        dialog = self._dialog
        if dialog is None or dialog.parentWidget() is not parent_widget:
            if dialog is not None:
                dialog.deleteLater()
            dialog = QProgressDialog("Anonymising…", "Cancel", 0, 0, parent_widget)
            dialog.setWindowTitle("Anonymise and export DICOM")
            dialog.setWindowModality(Qt.WindowModality.WindowModal)
            dialog.setMinimumDuration(300)
            dialog.canceled.connect(self.worker.cancel)
            self._dialog = dialog
        dialog.reset()
        dialog.setRange(0, 0)
        self._running = True

    def _on_progress(self, rid: int, done: int, total: int) -> None:
        if self._dialog is not None and self._running:
            self._dialog.setMaximum(total)
            self._dialog.setValue(done)

    def _on_done(self, rid: int) -> None:
        self._running = False
        if self._dialog is not None:
            self._dialog.reset()  # hides it; the dialog is kept for the next export

    def _on_finished(self, rid: int, result: AnonymiseResult | str) -> None:
        if isinstance(result, str):
            self.sig_message.emit(f"Nothing written: {result}")
            return
        self.sig_message.emit(summary(result))
        self.sig_finished.emit(result)

    def choose_and_start(self, open_files: list[Path], parent_widget: QWidget) -> int | None:
        """Ask for the input (when no study is open) and the output folder, then start; None if abandoned."""
        inputs: list[str | Path] = list(open_files)
        if not inputs:
            folder = QFileDialog.getExistingDirectory(parent_widget, "Folder to anonymise")
            if not folder:
                return None
            inputs = [folder]
        dialog = output_folder_dialog(parent_widget)
        if not dialog.exec() or not dialog.selectedFiles():
            return None
        return self.start(inputs, dialog.selectedFiles()[0], parent_widget)

    def stop(self) -> None:
        self.worker.stop()


__all__ = ["AnonymiseExport", "summary"]
