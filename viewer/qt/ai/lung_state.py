"""Whether the lung mask is drawn, and the mask of the series on screen (the Findings panel's toggle).

Turning it on computes the lungs of the series on screen on a worker of their own
(:func:`viewer.ai.lung_overlay.lung_overlay`, a few seconds for a 300-slice CT), with progress; a mask
that arrives for a series no longer on screen is dropped, and turning the toggle off, or changing the
series, cancels the job. The mask of the last series is kept, so turning the toggle back on is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from viewer.ai.findings import FindingsRefused, voxel_spacing
from viewer.ai.lung_overlay import LungOverlay, lung_overlay
from viewer.qt.view_state import series_identity
from viewer.qt.workers import JobContext, Worker

if TYPE_CHECKING:
    from viewer.qt.view_state import ErrorSink, ViewState


class LungMaskState(QObject):
    """The lung overlay of one controller (see the module docstring)."""

    sig_changed = Signal()  # the mask to draw changed (shown, hidden, or arrived)
    sig_status = Signal(str)  # "lung mask: 40 %", "" when there is nothing to say

    def __init__(self, view: ViewState, report_error: ErrorSink, *, sync: bool = False,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._c = view
        self._report_error = report_error
        self.visible = False
        self._overlay: LungOverlay | None = None
        self._voxel_mm3 = 0.0
        self._rid = 0
        self._job_key = ""  # the series the running job finds the lungs of
        self.worker = Worker("lungs", sync=sync, parent=self)
        self.worker.sig_progress.connect(self._on_progress)
        self.worker.sig_finished.connect(self._on_finished)
        self.worker.sig_failed.connect(self._on_failed)
        view.sig_series_selected.connect(self._on_series)
        view.sig_series_loaded.connect(self._on_series)

    def overlay(self) -> LungOverlay | None:
        """The lungs to draw: the series on screen's while the toggle is on, else None."""
        o = self._overlay
        return o if self.visible and o is not None and o.series_key == series_identity(self._c) else None

    def set_visible(self, visible: bool) -> None:
        if visible == self.visible:
            return
        self.visible = visible
        if visible:
            self._start()
        else:
            self._cancel()
        self.sig_changed.emit()

    def stop(self) -> bool:
        return self.worker.stop()

    def _start(self) -> None:
        key, volume = series_identity(self._c), self._c.volume
        if not self.visible or not key or volume is None or self.overlay() is not None:
            return
        if not volume.loaded.all():
            self.sig_status.emit("lung mask: once the series has loaded")
            return
        try:
            z, y, x = voxel_spacing(volume)
        except FindingsRefused as e:
            self.sig_status.emit(f"lung mask: {e}")
            return
        self._voxel_mm3 = z * y * x

        def job(ctx: JobContext) -> LungOverlay:
            def each_slice(done: int, total: int) -> None:
                ctx.check()
                ctx.progress(done, total)

            return lung_overlay(key, volume, each_slice)

        self.sig_status.emit("lung mask: finding the lungs…")
        self._job_key = key
        self._rid = self.worker.submit(job, "find the lungs")

    def _cancel(self) -> None:
        if self._rid:
            self.worker.cancel()
            self._rid = 0
        self.sig_status.emit("")

    def _on_series(self, *_: object) -> None:
        if self._rid and self._job_key != series_identity(self._c):
            self._cancel()
        self._start()
        self.sig_changed.emit()

    def _on_progress(self, rid: int, done: int, total: int) -> None:
        if rid == self._rid and total:
            self.sig_status.emit(f"lung mask: {100 * done // total} %")

    def _on_finished(self, rid: int, overlay: LungOverlay) -> None:
        if rid != self._rid or overlay.series_key != series_identity(self._c):
            return  # stale: another series is on screen
        self._rid = 0
        self._overlay = overlay
        litres = overlay.voxels * self._voxel_mm3 / 1e6
        self.sig_status.emit(f"lung mask: {litres:.1f} L" if overlay.voxels else "lung mask: no lungs found")
        self.sig_changed.emit()

    def _on_failed(self, rid: int, message: str, traceback_text: str) -> None:
        if rid != self._rid:
            return
        self._rid = 0
        self.sig_status.emit("lung mask failed")
        self._report_error(message, traceback_text)
