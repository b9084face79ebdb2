"""The reader's verdict on each AI finding: accept or reject, kept per study, and what it turns into.

- **Accept**: the finding's long axis joins the Measurements list (a line measurement of source "ai" on
  its largest axial image, named after the finding: its handles can then be moved like any line), and
  that image is labelled with the positive class, the finding's centre as the point and its extent as
  the box, for the fine-tune dialog.
- **Reject**: the image is labelled with the first (negative) class at the finding, a hard negative for
  fine-tuning, unless the reader has labelled it positive (another nodule on the same image); an
  accepted finding's measurement goes.

The decision itself is kept in the study's decisions file (:mod:`viewer.core.finding_decisions`, written
atomically), named by the series, the model and the centre to the millimetre, so it comes back when the
study is opened again and the same finding is found. Labels and measurements go through their own states,
so ``Ctrl+Z`` undoes them; the decision stays until the reader decides again.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from viewer.core.finding_decisions import Decision, DecisionFileError, DecisionStore, finding_key
from viewer.core.measurements import Measurement
from viewer.core.planes import native_plane, plane_layout, plane_location
from viewer.qt.ai.state import AIState
from viewer.qt.label_state import LabelState
from viewer.qt.measure_state import MeasureState
from viewer.qt.view_state import ErrorSink, ViewState


class FindingReview(QObject):
    """Accept and reject (see the module docstring)."""

    sig_changed = Signal()  # a decision changed (the panel redraws its status column)

    def __init__(self, ai: AIState, view: ViewState, measurements: MeasureState, labels: LabelState,
                 report_error: ErrorSink, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ai, self._c, self._m, self._labels, self._report_error = ai, view, measurements, labels, report_error

    def _store(self) -> DecisionStore | None:
        series = self._c.series
        if series is None or not series.study_uid:
            return None
        try:
            return DecisionStore.open(series.study_uid)
        except DecisionFileError as e:
            self._report_error(f"finding decisions: {e.reason}; starting with none (the bad file is kept at "
                               f"{e.corrupt_copy})")
            return DecisionStore.open(series.study_uid, recover=True)

    def key(self, finding) -> str | None:
        """The finding's name across sessions (None without geometry or model)."""
        volume, entry = self._c.volume, self._ai.model
        if volume is None or entry is None or not volume.geometry.known:
            return None
        centre = volume.geometry.voxel_to_patient(*finding.centre)
        return finding_key(volume.series.series_uid, entry.version_key, centre)

    def status(self, finding) -> str:
        """``"new"``, ``"accepted"`` or ``"rejected"``."""
        store, key = self._store(), self.key(finding)
        decision = store.get(key) if store is not None and key is not None else None
        return decision.status if decision is not None else "new"

    def _decide(self, finding, status: str) -> bool:
        store, key, volume, entry = self._store(), self.key(finding), self._c.volume, self._ai.model
        if store is None or key is None or volume is None or entry is None:
            self._report_error("cannot decide on the finding: no study, geometry or model")
            return False
        centre = tuple(float(v) for v in volume.geometry.voxel_to_patient(*finding.centre))
        try:
            store.put(Decision(key, volume.series.series_uid, entry.version_key, centre, status))  # type: ignore[arg-type]
        except OSError as e:
            self._report_error(f"decision not saved: {e}")
            return False
        return True

    def _image(self, finding) -> tuple[int, tuple[float, float], tuple[float, float, float, float]]:
        """The finding's largest axial image, its centre there (row, col) and its box there (r0, c0, r1, c1)."""
        k = finding.measures.axes.slice_index
        rows, cols = np.nonzero(finding.mask[k])
        oz, oy, ox = finding.offset
        box = (float(oy + rows.min()) - 0.5, float(ox + cols.min()) - 0.5,
               float(oy + rows.max()) + 0.5, float(ox + cols.max()) + 0.5)
        return oz + k, (float(oy + rows.mean()), float(ox + cols.mean())), box

    def _measurement(self, finding, key: str) -> Measurement:
        volume = self._c.volume
        geometry = volume.geometry
        index, _, _ = self._image(finding)
        (r0, c0), (r1, c1) = finding.measures.axes.long_ends
        oy, ox = finding.offset[1], finding.offset[2]
        ends = tuple(tuple(float(v) for v in geometry.voxel_to_patient(index, r + oy, c + ox))
                     for r, c in ((r0, c0), (r1, c1)))
        layout = plane_layout(geometry, native_plane(geometry), volume.n_slices)
        text = (f"AI finding {finding.id}: {finding.kind.replace('_', '-')} "
                f"{finding.measures.diameter_mm:.1f} mm, Lung-RADS {finding.lung_rads}")
        return Measurement(kind="line", series_uid=volume.series.series_uid, plane=layout.name,
                           location_mm=plane_location(geometry, layout, index)[1], points=ends,  # type: ignore[arg-type]
                           text=text, source="ai", uid=f"finding-{key}")

    def accept(self, finding) -> bool:
        key = self.key(finding)
        if key is None or not self._decide(finding, "accepted"):
            return False
        store = self._m.store
        if store is not None and store.get(f"finding-{key}") is None:
            self._m.add(self._measurement(finding, key))
        classes = self._labels.classes
        if classes:
            index, point, box = self._image(finding)
            self._labels.mark(classes[-1], point=point, box=box, index=index)
        self.sig_changed.emit()
        return True

    def reject(self, finding) -> bool:
        key = self.key(finding)
        if key is None or not self._decide(finding, "rejected"):
            return False
        self._m.remove(f"finding-{key}")
        classes = self._labels.classes
        index, point, box = self._image(finding)
        current = self._labels.label_of(index)
        if classes and (current is None or current.label == classes[0]):
            self._labels.mark(classes[0], point=point, box=box, index=index)
        self.sig_changed.emit()
        return True
