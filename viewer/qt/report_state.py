"""The measurements of the structured reports (TID 1500 SR) that report on the series on screen.

When a series is selected, the SRs the scan found (:attr:`viewer.core.scan.ScanResult.reports`) are read on
a worker (:func:`viewer.core.results.read.read_sr`); those whose evidence lists this series give one row per
measurement group: its name, its kind, and what it says (each measurement with its unit, each qualitative
evaluation). radview's own reports and other systems' are read alike. An answer for a series no longer on
screen is dropped; an SR that is not a measurement report is left out with its one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from viewer.core.results.read import ReportedGroup, read_sr
from viewer.core.results.seg import ResultsRefused
from viewer.qt.view_state import series_identity
from viewer.qt.workers import JobContext, Worker

if TYPE_CHECKING:
    from viewer.qt.view_state import ViewState

#: How a group's kind is shown.
KINDS = {"volumetric": "volume", "planar": "region", "other": "image"}


@dataclass(frozen=True)
class ReportRow:
    """One measurement group of a report, as the Measurements panel lists it."""

    label: str
    kind: str
    text: str
    report: str  # the SR file's name
    group: ReportedGroup | None = None  # the values behind the text (the Findings panel reads them)


def _unit(unit: str) -> str:
    return {"mm3": "mm³", "1": ""}.get(unit, unit)


def group_text(group: ReportedGroup) -> str:
    """``Long axis 16.1 mm · Short axis 13.8 mm · Reader review: Accepted by the reader``."""
    parts = [f"{m.name} {m.value:.4g}{(' ' + _unit(m.unit)) if _unit(m.unit) else ''}" for m in group.measurements]
    parts += [f"{name}: {value}" for name, value in group.evaluations.items()]
    return " · ".join(parts)


class ReportState(QObject):
    """The report rows of one controller (see the module docstring)."""

    sig_changed = Signal()

    def __init__(self, view: ViewState, *, sync: bool = False, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._c = view
        self._rows: tuple[ReportRow, ...] = ()
        self._key: str | None = None
        self.refused: tuple[str, ...] = ()  # one line per SR that could not be read
        self.worker = Worker("reports", sync=sync, parent=self)
        self.worker.sig_finished.connect(self._on_finished)
        view.sig_series_selected.connect(self._on_series)

    def rows(self) -> tuple[ReportRow, ...]:
        return self._rows if self._key is not None and self._key == series_identity(self._c) else ()

    def _on_series(self, _key: str) -> None:
        self._rows, self._key = (), None
        self.sig_changed.emit()
        scan, series = self._c.scan_result, self._c.series
        if scan is None or series is None or not scan.reports:
            self.worker.cancel()
            return
        paths, uid, key = list(scan.reports), series.series_uid, series_identity(self._c)

        def job(ctx: JobContext) -> tuple[str | None, tuple[ReportRow, ...], tuple[str, ...]]:
            rows: list[ReportRow] = []
            refused: list[str] = []
            for path in paths:
                ctx.check()
                try:
                    report = read_sr(path)
                except ResultsRefused as e:
                    refused.append(str(e))
                    continue
                if uid in report.evidence_series:
                    rows += [ReportRow(g.label, KINDS[g.kind], group_text(g), path.name, g) for g in report.groups]
            return key, tuple(rows), tuple(refused)

        self.worker.submit(job, "read SR")

    def _on_finished(self, rid: int, answer: tuple[str | None, tuple[ReportRow, ...], tuple[str, ...]]) -> None:
        key, rows, refused = answer
        if not self.worker.is_current(rid) or key != series_identity(self._c):
            return
        self._key, self._rows, self.refused = key, rows, refused
        self.sig_changed.emit()

    def shutdown(self) -> None:
        self.worker.stop()
