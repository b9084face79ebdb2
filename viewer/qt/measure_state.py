"""The reader's measurements as part of the view state: the open study's store, the tool, the selection.

:class:`MeasureState` belongs to the controller (``controller.measurements``) like the label state: the
views, the toolbar and the Measurements panel call its methods and redraw from its signals. Every change
is written to the study's :class:`~viewer.core.measurement_store.MeasurementStore` before the method
returns, and pushed on the controller's undo stack. A change that cannot be written goes to the error
handler and leaves the store as it was.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from viewer.core.measurement_store import MeasurementFileError, MeasurementStore
from viewer.core.measurements import KINDS, Measurement, Reading, measure, to_plane
from viewer.core.planes import plane_layout
from viewer.qt.undo import UndoStack

if TYPE_CHECKING:
    from viewer.qt.view_state import ErrorSink, ViewState

#: The tools: "off" (the mouse pans or moves the crosshair), or the kind the next drag or click draws
#: (a key image is marked with a key, not drawn).
TOOLS = ("off", *(k for k in KINDS if k != "key"))


class MeasureState(QObject):
    """Measurements of the series on screen (see the module docstring)."""

    sig_changed = Signal(object)  # tuple[Measurement, ...] of the series on screen
    sig_tool_changed = Signal(str)  # one of TOOLS
    sig_selected_changed = Signal(object)  # uid or None
    sig_jump = Signal(object)  # (slice, row, col) voxel to show (a double-click in the panel)

    def __init__(self, view: ViewState, report_error: ErrorSink, undo: UndoStack,
                 root: str | os.PathLike[str] | None = None, *, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._c = view
        self._report_error = report_error
        self._undo = undo
        self._root = root
        self._store: MeasurementStore | None = None
        self._tool = "off"
        self._selected: str | None = None
        #: readings of the volume ``_readings_of``, by (uid, points, plane): an ROI's statistics cost a mask,
        #: so each is computed once for every view and the panel
        self._readings: dict[tuple, Reading] = {}
        self._readings_of: object = None
        view.sig_series_selected.connect(self._on_series_selected)
        view.sig_series_loaded.connect(self._on_series_loaded)

    # -- reading ---------------------------------------------------------------------------------------------

    @property
    def store(self) -> MeasurementStore | None:
        return self._store

    @property
    def tool(self) -> str:
        return self._tool

    @property
    def selected(self) -> str | None:
        return self._selected

    def items(self) -> tuple[Measurement, ...]:
        """Measurements of the series on screen, in drawing order."""
        series = self._c.series
        if self._store is None or series is None:
            return ()
        return self._store.for_series(series.series_uid)

    def reading(self, m: Measurement) -> Reading:
        """What ``m`` measures on the volume on screen (empty while nothing is loaded)."""
        volume = self._c.volume
        if volume is None or not volume.geometry.known:
            return Reading()
        if self._readings_of is not volume:
            self._readings, self._readings_of = {}, volume
        key = (m.uid, m.points, m.plane)
        reading = self._readings.get(key)
        if reading is None:
            layout = plane_layout(volume.geometry, m.plane, volume.n_slices)
            reading = self._readings[key] = measure(m, volume.stored, volume.slope, volume.intercept,
                                                    volume.geometry, layout, volume.units)
        return reading

    def label(self, m: Measurement) -> str:
        """What ``m`` says on the image and in the panel: its words (a text label, a key image), else its reading."""
        return m.text if m.kind in ("text", "key") else self.reading(m).text()

    def image_of(self, m: Measurement) -> tuple[int, int, int] | None:
        """The voxel (slice, row, col) at the first point of ``m`` in the volume on screen."""
        volume = self._c.volume
        if volume is None:
            return None
        voxel = volume.geometry.patient_to_voxel(np.asarray(m.points[0], dtype=float))
        return tuple(int(round(float(x))) for x in voxel)  # type: ignore[return-value]

    def plane_index(self, m: Measurement) -> float | None:
        """The image of ``m``'s plane it lies on (fractional), in the volume on screen."""
        volume = self._c.volume
        if volume is None:
            return None
        layout = plane_layout(volume.geometry, m.plane, volume.n_slices)
        return to_plane(volume.geometry, layout, volume.stored.shape, m.points)[0]

    # -- the tool and the selection -----------------------------------------------------------------------------

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"the measuring tool must be one of {', '.join(TOOLS)}, not {tool!r}")
        if tool != self._tool:
            self._tool = tool
            self.sig_tool_changed.emit(tool)

    def select(self, uid: str | None) -> None:
        if uid != self._selected:
            self._selected = uid
            self.sig_selected_changed.emit(uid)

    # -- changing ----------------------------------------------------------------------------------------------

    def _write(self, action) -> bool:
        if self._store is None:
            self._report_error("cannot measure: no series with a StudyInstanceUID is open")
            return False
        try:
            action()
        except OSError as e:
            self._report_error(f"measurement not saved: {e}")
            return False
        self._emit()
        return True

    def add(self, m: Measurement) -> Measurement | None:
        """Keep a new measurement (undoable); the stored one, stamped with author and time."""
        made: list[Measurement] = []
        if not self._write(lambda: made.append(self._store.put(m))):
            return None
        stored = made[0]
        self._undo.push(f"add {m.kind}", lambda: self._write(lambda: self._store.remove(stored.uid)),
                        lambda: self._write(lambda: self._store.put(stored)))
        self.select(stored.uid)
        return stored

    def update(self, m: Measurement) -> bool:
        """Replace the measurement with ``m``'s uid (a handle moved, the text edited); undoable."""
        old = self._store.get(m.uid) if self._store is not None else None
        if old is None:
            return False
        new = replace(m, author=old.author, time=old.time)
        if not self._write(lambda: self._store.put(new)):
            return False
        self._undo.push(f"change {m.kind}", lambda: self._write(lambda: self._store.put(old)),
                        lambda: self._write(lambda: self._store.put(new)))
        return True

    def remove(self, uid: str) -> bool:
        """Remove one (Delete); undo puts it back where it was in the list."""
        old = self._store.get(uid) if self._store is not None else None
        if old is None:
            return False
        position = self._store.position(uid)
        if not self._write(lambda: self._store.remove(uid)):
            return False
        if self._selected == uid:
            self.select(None)
        self._undo.push(f"remove {old.kind}", lambda: self._write(lambda: self._store.insert(old, position)),
                        lambda: self._write(lambda: self._store.remove(uid)))
        return True

    def remove_selected(self) -> bool:
        return self.remove(self._selected) if self._selected is not None else False

    def jump_to(self, m: Measurement) -> bool:
        """Show the image ``m`` was drawn on, the crosshair at its first point."""
        voxel = self.image_of(m)
        if voxel is None:
            return False
        self.sig_jump.emit(voxel)
        return True

    def export_csv(self, path: str | os.PathLike[str], image_name) -> Path | None:
        """Write the series' measurements as CSV; ``image_name(m)`` names the image ("Im 26")."""
        if self._store is None:
            self._report_error("nothing to export: no measurements are open")
            return None
        from viewer.base.atomic import atomic_write_text

        rows = [(m, image_name(m), self.reading(m).text()) for m in self.items()]
        try:
            return atomic_write_text(Path(path), self._store.to_csv(rows))
        except OSError as e:
            self._report_error(f"measurements not exported: {e}")
            return None

    # -- controller -> measurements ------------------------------------------------------------------------

    def _on_series_selected(self, _key: str) -> None:
        series = self._c.series
        self._selected = None
        study = series.study_uid if series is not None else ""
        if self._store is None or self._store.study_uid != study:
            if self._store is not None:
                self._undo.clear()  # its commands change the previous study's files
            self._store = None
            if study:
                try:
                    self._store = MeasurementStore.open(study, root=self._root)
                except MeasurementFileError as e:
                    self._report_error(f"measurements: {e.reason}; starting with none (the bad file is kept at "
                                       f"{e.corrupt_copy})")
                    self._store = MeasurementStore.open(study, root=self._root, recover=True)
        self._emit()

    def _on_series_loaded(self, _key: str) -> None:
        self._readings = {}  # readings taken while slices were still arriving: take them again
        self._emit()

    def _emit(self) -> None:
        self.sig_changed.emit(self.items())
