"""The linked crosshair of the MPR views: one point of the volume that every plane passes through.

The point is a voxel (slice, row, column) of the series on screen. Its slice is the controller's slice
(the acquisition plane scrolls it); its row and column are kept here, so the coronal and sagittal views of
an axial stack scroll them. Like the AI and label states it sees the controller only through
:class:`~viewer.qt.view_state.ViewState` and moves the slice by emitting ``sig_navigate``.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from viewer.qt.view_state import ViewState


class CrosshairState(QObject):
    """Row and column of the crosshair (the slice is the view state's); reset to the centre per series."""

    #: (slice, row, col) after the row or column moved
    sig_changed = Signal(object)
    #: slice index the crosshair asks the controller to show
    sig_navigate = Signal(int)

    def __init__(self, view: ViewState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._view = view
        self._row = 0
        self._col = 0
        view.sig_series_selected.connect(self._on_series_selected)

    @property
    def voxel(self) -> tuple[int, int, int]:
        """The crosshair's (slice, row, col) in the volume on screen."""
        return self._view.slice_index, self._row, self._col

    def index(self, axis: int) -> int:
        """The crosshair's index along volume ``axis`` (0 slices, 1 rows, 2 columns)."""
        return self.voxel[axis]

    def _shape(self) -> tuple[int, int, int]:
        series = self._view.series
        return (self._view.n_slices, series.rows, series.cols) if series is not None else (0, 0, 0)

    def _on_series_selected(self, _key: str) -> None:
        _, rows, cols = self._shape()
        self._row, self._col = rows // 2, cols // 2
        self.sig_changed.emit(self.voxel)

    def set_voxel(self, voxel) -> None:
        """Move the crosshair to (slice, row, col) (clipped into the volume): a click in any plane."""
        shape = self._shape()
        if not all(shape):
            return
        k, r, c = (min(max(int(round(float(x))), 0), n - 1) for x, n in zip(voxel, shape, strict=True))
        if (r, c) != (self._row, self._col):
            self._row, self._col = r, c
            self.sig_changed.emit((self._view.slice_index, r, c))
        if k != self._view.slice_index:
            self.sig_navigate.emit(k)

    def set_index(self, axis: int, index: int) -> None:
        """Move the crosshair along one volume axis (the plane of that axis scrolls)."""
        voxel = list(self.voxel)
        voxel[axis] = index
        self.set_voxel(voxel)

    def step(self, axis: int, n: int) -> None:
        """Move ``n`` images along volume ``axis``."""
        self.set_index(axis, self.index(axis) + n)
