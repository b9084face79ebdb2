"""The reader's verdict on each AI finding: accept or reject, kept per study, and what it turns into.

- **Accept**: the finding's long and short axis join the Measurements list (two line measurements of
  source "ai" on its largest axial image, named after the finding), and that image is labelled with the
  positive class, the finding's centre as the point and its extent as the box, for the fine-tune dialog.
  The lines' handles move like any line's: what they then measure becomes the finding's long and short
  axis (its mean diameter and Lung-RADS category follow, the decision keeps them, status ``accepted,
  edited``); moved back, or undone, the mask's own axes return.
- **Reject**: the image is labelled with the first (negative) class at the finding, a hard negative for
  fine-tuning, unless the reader has labelled it positive (another nodule on the same image); an
  accepted finding's measurement goes.

- **Edit**: in the outline-editing mode (:mod:`viewer.qt.ai.contour_edit`) a brush stroke in any view adds
  to the selected finding's mask or, with Shift, erases from it; the contour follows the stroke, and when
  the stroke ends the finding is measured again from the corrected mask (:mod:`viewer.ai.finding_edit`):
  its axes, volume, type and Lung-RADS category in the panel are then the reader's. The corrected mask is
  kept with the decision (status ``edited`` until accepted or rejected) and applied again whenever the
  same finding is found; an accepted finding's measurement and label follow the correction. **Revert**
  gives the AI's own outline back.

The decision itself is kept in the study's decisions file (:mod:`viewer.core.finding_decisions`, written
atomically), named by the series, the model and the centre to the millimetre, so it comes back when the
study is opened again and the same finding is found. Labels and measurements go through their own states,
so ``Ctrl+Z`` undoes them; the decision stays until the reader decides again.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
from PySide6.QtCore import QObject, Signal

from viewer.ai.finding_edit import axis_lines, corrected, disc_voxels, largest_part, paint, with_axes
from viewer.ai.findings import decision_key, voxel_spacing
from viewer.core.finding_decisions import Decision, DecisionFileError, DecisionStore, pack_mask
from viewer.core.measurements import Measurement
from viewer.core.planes import native_plane, plane_layout, plane_location
from viewer.qt.ai.contour_edit import Stroke
from viewer.qt.ai.state import AIState
from viewer.qt.label_state import LabelState
from viewer.qt.measure_state import MeasureState
from viewer.qt.view_state import ErrorSink, ViewState

log = logging.getLogger(__name__)

#: Lines within this of the finding's axes (mm) measure what the finding says: nothing to keep.
SAME_AXIS_MM = 0.05


def line_uids(key: str) -> tuple[str, str]:
    """The measurement uids of an accepted finding's long and short axis lines."""
    return f"finding-{key}", f"finding-{key}-short"


class FindingReview(QObject):
    """Accept and reject (see the module docstring)."""

    sig_changed = Signal()  # a decision changed (the panel redraws its status column)

    def __init__(self, ai: AIState, view: ViewState, measurements: MeasureState, labels: LabelState,
                 report_error: ErrorSink, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ai, self._c, self._m, self._labels, self._report_error = ai, view, measurements, labels, report_error
        self._originals: dict[str, object] = {}  # key -> the finding as the AI outlined it (for Revert)
        self._measured: dict[str, object] = {}  # key -> the finding as its mask measures it (no reader's axes)
        self._stroke: tuple[object, np.ndarray, tuple[int, int, int]] | None = None  # before, mask, offset painted
        ai.adjust_findings = self.with_corrections
        ai.contour_edit.sig_stroke.connect(self._on_stroke)
        measurements.sig_changed.connect(self._on_measurements)

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
        return decision_key(volume, entry.version_key, finding)

    def _decision(self, finding) -> Decision | None:
        store, key = self._store(), self.key(finding)
        return store.get(key) if store is not None and key is not None else None

    def status(self, finding) -> str:
        """``"new"``, ``"accepted"``, ``"rejected"`` or ``"edited"``; ``", edited"`` follows a decision on
        a corrected outline."""
        decision = self._decision(finding)
        if decision is None:
            return "new"
        edited = (decision.mask is not None or decision.axes_mm is not None) and decision.status != "edited"
        return f"{decision.status}, edited" if edited else decision.status

    def _decide(self, finding, status: str | None = None, mask: dict | None | bool = True,
                axes: tuple[float, float] | None | bool = True) -> bool:
        """Keep the decision on ``finding``: ``status`` (None: as it was, ``edited`` when new), ``mask``
        (True: as it was; None: the AI's outline) and ``axes`` (True: as they were; None: the mask's)."""
        store, key, volume, entry = self._store(), self.key(finding), self._c.volume, self._ai.model
        if store is None or key is None or volume is None or entry is None:
            self._report_error("cannot decide on the finding: no study, geometry or model")
            return False
        earlier = store.get(key)
        if status is None:
            status = earlier.status if earlier is not None else "edited"
        if mask is True:
            mask = earlier.mask if earlier is not None else None
        if axes is True:
            axes = earlier.axes_mm if earlier is not None else None
        centre = tuple(float(v) for v in volume.geometry.voxel_to_patient(*finding.centre))
        try:
            if status == "edited" and mask is None and axes is None:
                store.remove(key)  # the correction undone, and nothing decided: no decision
            else:
                store.put(Decision(key, volume.series.series_uid, entry.version_key, centre, status,  # type: ignore[arg-type]
                                   mask=mask, axes_mm=axes))  # type: ignore[arg-type]
        except OSError as e:
            self._report_error(f"decision not saved: {e}")
            return False
        return True

    # -- corrected outlines ---------------------------------------------------------------------------------

    def with_corrections(self, found):
        """``found`` (SeriesFindings, as the AI sent it) with the outlines the reader corrected."""
        volume = self._c.volume
        if found is None or volume is None:
            return found
        out = []
        for f in found.findings:
            key, decision = self.key(f), self._decision(f)
            if key is not None:
                self._originals[key] = f
            mask = decision.edited_mask() if decision is not None else None
            fixed = self._fitted(f, mask, volume) if mask is not None else None
            measured = fixed if fixed is not None else f
            if key is not None:
                self._measured[key] = measured
            axes = decision.axes_mm if decision is not None else None
            out.append(with_axes(measured, *axes) if axes is not None else measured)
        return replace(found, findings=tuple(out))

    def _fitted(self, finding, mask, volume):
        """``finding`` with the kept mask, or None when the mask does not fit the volume."""
        data, offset = mask
        if any(o + n > s for o, n, s in zip(offset, data.shape, volume.stored.shape, strict=True)):
            log.warning("a corrected outline does not fit its series; the AI's is shown")
            return None
        return corrected(finding, data, offset, volume)

    def _selected(self):
        found, chosen = self._ai.findings(), self._ai.selected_finding
        if found is None or chosen is None:
            return None
        return next((f for f in found.findings if f.id == chosen), None)

    def _on_stroke(self, stroke: Stroke) -> None:
        finding, volume = self._selected(), self._c.volume
        if finding is None or volume is None:
            return
        key = self.key(finding)
        if key is None:
            return
        self._originals.setdefault(key, finding)
        if self._stroke is None or self._stroke[0].id != finding.id:  # type: ignore[attr-defined]
            self._stroke = (finding, finding.mask, finding.offset)
        before, mask, offset = self._stroke
        voxels = disc_voxels(stroke.layout, stroke.index, stroke.centre_vu, self._ai.contour_edit.radius_mm,
                             volume.stored.shape)
        painted = paint(mask, offset, voxels, not stroke.erase)
        if painted is not None:
            self._stroke = (before, *painted)
            self._ai.replace_finding(replace(before, mask=painted[0], offset=painted[1]))  # the contour follows
        if not stroke.finished:
            return
        self._stroke = None
        if painted is not None and stroke.erase:
            painted = (largest_part(painted[0]), painted[1])
        fixed = corrected(before, *painted, volume) if painted is not None else None
        if fixed is None:
            self._report_error("an outline cannot be erased whole: reject the finding instead")
            self._ai.replace_finding(before)
            return
        if self._decide(fixed, None, pack_mask(fixed.mask, fixed.offset), None):  # the new mask's axes
            self._measured[key] = fixed
            self._ai.replace_finding(fixed)
            self._follow(fixed, key)
        else:
            self._ai.replace_finding(before)
        self.sig_changed.emit()

    def revert(self, finding) -> bool:
        """Give ``finding`` the AI's own outline back."""
        key = self.key(finding)
        original = self._originals.get(key) if key is not None else None
        if original is None or not self._decide(finding, None, None, None):
            return False
        self._measured[key] = original  # type: ignore[index]
        self._ai.replace_finding(original)
        self._follow(original, key)
        self.sig_changed.emit()
        return True

    def _follow(self, finding, key: str) -> None:
        """An accepted finding's measurement and label follow its outline."""
        decision = self._decision(finding)
        if decision is None or decision.status != "accepted":
            return
        self._remove_lines(key)
        self._accepted(finding, key)

    def _remove_lines(self, key: str) -> None:
        for uid in line_uids(key):
            self._m.remove(uid)

    def _on_measurements(self, items) -> None:
        """The reader moved an accepted finding's axis lines: the finding measures what they measure."""
        found, volume = self._ai.findings(), self._c.volume
        if found is None or volume is None:
            return
        lines = {m.uid: m for m in items if m.source == "ai"}
        changed = False
        for f in found.findings:
            key = self.key(f)
            uids = line_uids(key) if key is not None else ("", "")
            if uids[0] not in lines:
                continue  # not accepted, or its line deleted
            long_ = self._m.reading(lines[uids[0]]).length_mm or 0.0
            short = self._m.reading(lines[uids[1]]).length_mm if uids[1] in lines else None
            short = short or f.measures.short_axis_mm
            pair = (max(long_, short), min(long_, short))

            def same(g, pair=pair) -> bool:
                m = g.measures
                return abs(pair[0] - m.long_axis_mm) < SAME_AXIS_MM and abs(pair[1] - m.short_axis_mm) < SAME_AXIS_MM

            if long_ <= 0.0 or same(f):
                continue
            measured = self._measured.get(key, f)  # type: ignore[arg-type]
            axes = None if same(measured) else (long_, short)
            if self._decide(f, None, True, axes):
                self._ai.replace_finding(with_axes(measured, *axes) if axes is not None else measured)
                changed = True
        if changed:
            self.sig_changed.emit()

    def _image(self, finding) -> tuple[int, tuple[float, float], tuple[float, float, float, float]]:
        """The finding's largest axial image, its centre there (row, col) and its box there (r0, c0, r1, c1)."""
        k = finding.measures.axes.slice_index
        rows, cols = np.nonzero(finding.mask[k])
        oz, oy, ox = finding.offset
        box = (float(oy + rows.min()) - 0.5, float(ox + cols.min()) - 0.5,
               float(oy + rows.max()) + 0.5, float(ox + cols.max()) + 0.5)
        return oz + k, (float(oy + rows.mean()), float(ox + cols.mean())), box

    def _measurements(self, finding, key: str) -> tuple[Measurement, Measurement]:
        """The finding's long and short axis as line measurements on its largest axial image."""
        volume = self._c.volume
        geometry = volume.geometry
        index, _, _ = self._image(finding)
        layout = plane_layout(geometry, native_plane(geometry), volume.n_slices)
        name = f"AI finding {finding.id}"
        out = []
        for uid, ends, text in zip(line_uids(key), axis_lines(finding, voxel_spacing(volume)),
                                   (f"{name}: {finding.kind.replace('_', '-')}, long axis", f"{name}: short axis"),
                                   strict=True):
            points = tuple(tuple(float(v) for v in geometry.voxel_to_patient(index, r, c)) for r, c in ends)
            out.append(Measurement(kind="line", series_uid=volume.series.series_uid, plane=layout.name,
                                   location_mm=plane_location(geometry, layout, index)[1], points=points,  # type: ignore[arg-type]
                                   text=text, source="ai", uid=uid))
        return out[0], out[1]

    def accept(self, finding) -> bool:
        key = self.key(finding)
        if key is None or not self._decide(finding, "accepted"):
            return False
        self._accepted(finding, key)
        self.sig_changed.emit()
        return True

    def _accepted(self, finding, key: str) -> None:
        store = self._m.store
        if store is not None:
            for m in self._measurements(finding, key):
                if store.get(m.uid) is None:
                    self._m.add(m)
        classes = self._labels.classes
        if classes:
            index, point, box = self._image(finding)
            self._labels.mark(classes[-1], point=point, box=box, index=index)

    def reject(self, finding) -> bool:
        key = self.key(finding)
        if key is None or not self._decide(finding, "rejected"):
            return False
        self._remove_lines(key)
        classes = self._labels.classes
        index, point, box = self._image(finding)
        current = self._labels.label_of(index)
        if classes and (current is None or current.label == classes[0]):
            self._labels.mark(classes[0], point=point, box=box, index=index)
        self.sig_changed.emit()
        return True
