"""The reader's labels as part of the view state: the open study's label store, the slice on screen's label,
and the marking mode of the slice view.

:class:`LabelState` belongs to the :class:`~viewer.qt.controller.ViewerController` (``controller.labels``),
like :class:`~viewer.qt.ai.state.AIState`: the labels panel, the slice view and the keys call its methods,
and redraw from its signals. Labels are stored by :class:`viewer.core.labels.LabelStore` (one JSON file per
study, written atomically before a method returns), keyed by SeriesInstanceUID + SOPInstanceUID + frame,
so a label made here is what ``radview finetune --from-labels`` and the fine-tune dialog read.

A change that cannot be made (unknown class, a disk that refuses the write, a corrupt labels file) goes to
the controller's one error handler (status bar and Problems panel) with a one-line reason; the store is
then unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from viewer.core.labels import CsvImport, Label, LabelFileError, LabelStore
from viewer.qt.undo import UndoStack

if TYPE_CHECKING:
    from viewer.qt.view_state import ErrorSink, ViewState

#: Marking modes of the slice view: off (left-drag pans), point (a click marks a point), box (a drag marks a box).
MODES = ("off", "point", "box")


@dataclass(frozen=True)
class LabelRow:
    """One label of the open study; ``index`` is its slice in the series on screen (None: another series)."""

    label: Label
    index: int | None


@dataclass(frozen=True)
class LabelsSnapshot:
    """What the labels panel lists: the study's classes, its labels (oldest first) and counts per class."""

    study_uid: str = ""
    classes: tuple[str, ...] = ()
    rows: tuple[LabelRow, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    reason: str = ""  # why nothing can be labelled (no series, no StudyInstanceUID...)


class LabelState(QObject):
    """Labels of the open study (see the module docstring).

    Parameters
    ----------
    view:
        The view state it follows (series and slice signals; see :mod:`viewer.qt.view_state`).
    report_error:
        Where failures go (the controller's one error handler).
    root:
        Data folder of the label store (default: ``$RADVIEW_DATA_DIR`` or the platform's).
    """

    sig_labels_changed = Signal(object)  # LabelsSnapshot
    sig_current_changed = Signal(object)  # Label | None of the slice on screen
    sig_mode_changed = Signal(str)  # one of MODES
    sig_navigate = Signal(int)  # show this slice (a double-click in the Labels panel); the controller moves

    def __init__(self, view: ViewState, report_error: ErrorSink, root: str | os.PathLike[str] | None = None, *,
                 parent: QObject | None = None, undo: UndoStack | None = None) -> None:
        super().__init__(parent)
        self._undo = undo
        self._c = view
        self._report_error = report_error
        self._root = root
        self._store: LabelStore | None = None
        self._reason = "no series open"
        self._index_of: dict[tuple[str, str, int], int] = {}
        self._mode = "off"
        view.sig_series_selected.connect(self._on_series_selected)
        view.sig_slice_changed.connect(self._on_slice_changed)

    # -- read-only state ---------------------------------------------------------------------------------

    @property
    def store(self) -> LabelStore | None:
        """The open study's store (None without a series, or when the study cannot be labelled)."""
        return self._store

    @property
    def classes(self) -> tuple[str, ...]:
        return self._store.classes if self._store is not None else ()

    @property
    def mode(self) -> str:
        return self._mode

    def current_key(self) -> tuple[str, str, int] | None:
        """(series_uid, sop_uid, frame) of the slice on screen."""
        return self.key_of(self._c.slice_index)

    def current(self) -> Label | None:
        """The label of the slice on screen, if it has one."""
        key = self.current_key()
        if key is None or self._store is None:
            return None
        return self._store.get(*key)

    def snapshot(self) -> LabelsSnapshot:
        store = self._store
        if store is None:
            return LabelsSnapshot(reason=self._reason)
        rows = tuple(LabelRow(lab, self._index_of.get(lab.key)) for lab in store.all())
        return LabelsSnapshot(store.study_uid, store.classes, rows, store.counts())

    # -- changing labels ---------------------------------------------------------------------------------

    def key_of(self, index: int) -> tuple[str, str, int] | None:
        """(series_uid, sop_uid, frame) of slice ``index`` of the series on screen."""
        series = self._c.series
        if series is None or not 0 <= index < series.n_slices:
            return None
        header, frame = series.frame_source(index)
        return (header.series_uid, header.sop_uid, frame)

    def label_of(self, index: int) -> Label | None:
        key = self.key_of(index)
        return self._store.get(*key) if key is not None and self._store is not None else None

    def mark(self, label: str, *, point: tuple[float, float] | None = None,
             box: tuple[float, float, float, float] | None = None, index: int | None = None) -> Label | None:
        """Label the slice on screen (or slice ``index``) with class ``label`` (and optionally a point or
        box, image pixels)."""
        key = self.current_key() if index is None else self.key_of(index)
        if key is None or self._store is None:
            self._report_error(f"cannot label: {self._reason}")
            return None
        series_uid, sop_uid, frame = key
        store = self._store
        before = store.get(*key)
        try:
            made = store.set(series_uid, sop_uid, label, frame=frame, point=point, box=box)
        except (ValueError, OSError) as e:
            self._report_error(f"label not saved: {e}")
            return None
        self._emit()
        if self._undo is not None:
            self._undo.push(f"label {label}", lambda: self._put(store, key, before),
                            lambda: self._put(store, key, made))
        return made

    def _put(self, store: LabelStore, key: tuple[str, str, int], label: Label | None) -> None:
        """Undo and redo: make the image's label ``label`` again (None: no label)."""
        try:
            if label is None:
                store.remove(*key)
            else:
                store.set(key[0], key[1], label.label, frame=key[2], point=label.point, box=label.box,
                          author=label.author)
        except (ValueError, OSError) as e:
            self._report_error(f"label not restored: {e}")
        self._emit()

    def mark_class(self, k: int) -> Label | None:
        """Label the slice on screen with the ``k``-th class (0-based; ``-1`` the last, the positive one)."""
        classes = self.classes
        if not classes:
            self._report_error(f"cannot label: {self._reason}")
            return None
        if not -len(classes) <= k < len(classes):
            self._report_error(f"no class number {k + 1}: the classes are {', '.join(classes)}")
            return None
        return self.mark(classes[k])

    def mark_finding(self, *, point: tuple[float, float] | None = None,
                     box: tuple[float, float, float, float] | None = None) -> Label | None:
        """A point or box on the slice on screen: keeps the slice's class, or gives it the positive (last) one."""
        current = self.current()
        classes = self.classes
        if not classes:
            self._report_error(f"cannot label: {self._reason}")
            return None
        return self.mark(current.label if current is not None else classes[-1], point=point, box=box)

    def remove(self, label: Label) -> bool:
        if self._store is None:
            return False
        store = self._store
        try:
            removed = store.remove(*label.key)
        except OSError as e:
            self._report_error(f"label not removed: {e}")
            return False
        self._emit()
        if removed and self._undo is not None:
            self._undo.push("remove label", lambda: self._put(store, label.key, label),
                            lambda: self._put(store, label.key, None))
        return removed

    def remove_current(self) -> bool:
        current = self.current()
        return self.remove(current) if current is not None else False

    def set_classes(self, classes: list[str] | tuple[str, ...]) -> bool:
        """Replace the class list (the last one is the positive class for a two-class model)."""
        if self._store is None:
            self._report_error(f"cannot change classes: {self._reason}")
            return False
        try:
            self._store.set_classes(classes)
        except (ValueError, OSError) as e:
            self._report_error(f"classes not changed: {e}")
            return False
        self._emit()
        return True

    def export_csv(self, path: str | os.PathLike[str]) -> Path | None:
        if self._store is None:
            self._report_error(f"nothing to export: {self._reason}")
            return None
        try:
            return self._store.export_csv(path)
        except OSError as e:
            self._report_error(f"labels not exported: {e}")
            return None

    def import_csv(self, path: str | os.PathLike[str]) -> CsvImport | None:
        """Merge a labels CSV into the open study; refused rows are reported (line and reason)."""
        if self._store is None:
            self._report_error(f"cannot import: {self._reason}")
            return None
        try:
            done = self._store.import_csv(path)
        except (ValueError, OSError, UnicodeDecodeError) as e:
            self._report_error(f"labels not imported: {e}")
            return None
        for line, reason in done.rejected[:20]:
            self._report_error(f"{Path(path).name} line {line}: {reason}")
        self._emit()
        return done

    def jump_to(self, label: Label) -> bool:
        """Show the slice of ``label`` (False when it is not in the series on screen)."""
        index = self._index_of.get(label.key)
        if index is None:
            return False
        self.sig_navigate.emit(index)
        return True

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"marking mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode != self._mode:
            self._mode = mode
            self.sig_mode_changed.emit(mode)

    def cycle_mode(self) -> str:
        """off -> point -> box -> off (the M key)."""
        self.set_mode(MODES[(MODES.index(self._mode) + 1) % len(MODES)])
        return self._mode

    # -- controller -> labels -------------------------------------------------------------------------------

    def _on_series_selected(self, key: str) -> None:
        series = self._c.series
        self._store, self._index_of = None, {}
        if series is None:
            self._reason = "no series open"
        elif not series.study_uid:
            self._reason = "the series has no StudyInstanceUID to keep labels under"
        else:
            for index, (h, f) in enumerate(series.sources):
                self._index_of[(h.series_uid, h.sop_uid, f)] = index
            try:
                self._store = LabelStore.open(series.study_uid, root=self._root)
            except LabelFileError as e:
                self._report_error(f"labels: {e.reason}; starting with no labels (the bad file is kept at "
                                     f"{e.corrupt_copy})")
                self._store = LabelStore.open(series.study_uid, root=self._root, recover=True)
            self._reason = ""
        self._emit()

    def _on_slice_changed(self, index: int) -> None:
        self.sig_current_changed.emit(self.current())

    def _emit(self) -> None:
        self.sig_labels_changed.emit(self.snapshot())
        self.sig_current_changed.emit(self.current())

    def refresh(self) -> None:
        """Re-emit every snapshot (a widget connected late draws the present state)."""
        self._emit()
        self.sig_mode_changed.emit(self._mode)


__all__ = ["MODES", "LabelRow", "LabelState", "LabelsSnapshot"]
