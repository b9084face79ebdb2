"""The DICOM SEG that lies on the series on screen, drawn as outlines in every plane.

When a series is selected, the segmentations the scan found in the same folders
(:attr:`viewer.core.scan.ScanResult.segmentations`) are asked, on a worker, which series they lie on;
the first that lies on this one is read onto its images (:func:`viewer.core.results.read.read_seg`, by SOP
Instance UID, so the segments land on the right slices whatever the display order), and its union of
segments is drawn green. An answer for a series no longer on screen is dropped; a SEG that cannot be read
(another pixel grid, a damaged file) is a one-line status, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from viewer.core.mask_overlay import MaskOverlay
from viewer.core.results.read import read_seg, seg_sources
from viewer.core.results.seg import ResultsRefused
from viewer.qt.view_state import series_identity
from viewer.qt.workers import JobContext, Worker

if TYPE_CHECKING:
    from viewer.qt.view_state import ViewState


@dataclass(frozen=True)
class SegmentOverlay(MaskOverlay):
    """The segments of one SEG on one series: ``labels`` (value k: segment k) and their names."""

    names: tuple[str, ...] = ()
    source: str = ""  # the SEG file's name


class SegmentState(QObject):
    """The SEG overlay of one controller (see the module docstring)."""

    sig_changed = Signal()  # the outline to draw changed
    sig_status = Signal(str)  # "SEG: 3 segments (...)", or why the SEG could not be shown; "" for none

    def __init__(self, view: ViewState, *, sync: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._c = view
        self._overlay: SegmentOverlay | None = None
        self.status = ""
        self.worker = Worker("segmentations", sync=sync, parent=self)
        self.worker.sig_finished.connect(self._on_finished)
        self.worker.sig_failed.connect(lambda rid, message, tb: self._say(f"SEG: {message}"))
        view.sig_series_selected.connect(self._on_series)

    def overlay(self) -> SegmentOverlay | None:
        o = self._overlay
        return o if o is not None and o.series_key == series_identity(self._c) else None

    def _say(self, text: str) -> None:
        self.status = text
        self.sig_status.emit(text)

    def _on_series(self, key: str) -> None:
        self._overlay = None
        self.sig_changed.emit()
        scan, series = self._c.scan_result, self._c.series
        if scan is None or series is None or not scan.segmentations:
            self.worker.cancel()
            self._say("")
            return
        paths = [h.path for h in scan.segmentations if h.study_uid == series.study_uid]
        order = [h.sop_uid for h, _ in series.sources]
        rows, cols, spacing = series.rows, series.cols, series.geometry.pixel_spacing
        uid, key = series.series_uid, series_identity(self._c) or ""

        def job(ctx: JobContext) -> SegmentOverlay | str | None:
            for path in paths:
                ctx.check()
                try:
                    on, _ = seg_sources(path)
                    if on != uid:
                        continue
                    labels = read_seg(path, order, rows, cols, spacing)
                except ResultsRefused as e:
                    return f"SEG not shown: {e}"
                names = tuple(labels.names[n] for n in sorted(labels.names))
                return SegmentOverlay(key, labels.labels > 0, names, path.name)
            return None

        self.worker.submit(job, "read SEG")

    def _on_finished(self, rid: int, result: SegmentOverlay | str | None) -> None:
        if not self.worker.is_current(rid):
            return
        if isinstance(result, str):
            self._say(result)
            return
        if result is None or result.series_key != series_identity(self._c):
            self._say("")
            return
        self._overlay = result
        shown = ", ".join(result.names[:3]) + ("…" if len(result.names) > 3 else "")
        self._say(f"SEG {result.source}: {len(result.names)} segment(s) outlined green ({shown})")
        self.sig_changed.emit()

    def shutdown(self) -> None:
        self.worker.stop()
