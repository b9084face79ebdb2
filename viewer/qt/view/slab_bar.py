"""The viewing toolbar: the layout, and the active viewport's thick slab (projection and thickness in mm)."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QComboBox, QLabel, QSlider, QToolBar, QWidget

from viewer.core.planes import MAX_SLAB_MM, PROJECTIONS
from viewer.qt.view.plane_navigation import PROJECTION_NAMES
from viewer.qt.view.slice_view import SliceView
from viewer.qt.view.view_grid import LAYOUTS, ViewGrid

LAYOUT_NAMES = {"1x1": "1 × 1", "1x2": "1 × 2", "2x2": "2 × 2", "mpr": "MPR"}


class SlabBar(QToolBar):
    """Layout picker, slab projection and slab slider (0 = off, up to :data:`MAX_SLAB_MM` mm)."""

    def __init__(self, grid: ViewGrid, parent: QWidget | None = None) -> None:
        super().__init__("Viewing", parent)
        self.setObjectName("viewing_toolbar")
        self.grid = grid
        self.addWidget(QLabel(" Layout "))
        self.layout_box = QComboBox()
        for name in LAYOUTS:
            self.layout_box.addItem(LAYOUT_NAMES.get(name, name), name)
        self.layout_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.layout_box.activated.connect(lambda k: grid.set_layout(self.layout_box.itemData(k)))
        self.addWidget(self.layout_box)
        self.addSeparator()
        self.addWidget(QLabel(" Slab "))
        self.projection_box = QComboBox()
        for name in PROJECTIONS:
            self.projection_box.addItem(PROJECTION_NAMES[name], name)
        self.projection_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.projection_box.activated.connect(self._on_projection)
        self.addWidget(self.projection_box)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, int(MAX_SLAB_MM))
        self.slider.setFixedWidth(160)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(lambda mm: grid.active.set_slab(float(mm)))
        self.addWidget(self.slider)
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(60)
        self.addWidget(self.value_label)
        self._watched: SliceView | None = None
        grid.sig_active_changed.connect(self._on_active)
        grid.sig_layout_changed.connect(self._on_layout)
        self._on_layout(grid.layout_name)
        self._on_active(grid.active)

    def _on_layout(self, name: str) -> None:
        with QSignalBlocker(self.layout_box):
            self.layout_box.setCurrentIndex(list(LAYOUTS).index(name))

    def _on_projection(self, k: int) -> None:
        view = self.grid.active
        thickness, _ = view.slab
        view.set_slab(thickness or 10.0, self.projection_box.itemData(k))

    def _on_active(self, view: SliceView) -> None:
        if self._watched is not None:
            self._watched.sig_slab_changed.disconnect(self._show)
        self._watched = view
        view.sig_slab_changed.connect(self._show)
        self._show(*view.slab)

    def _show(self, thickness: float, projection: str) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setValue(int(round(thickness)))
        with QSignalBlocker(self.projection_box):
            self.projection_box.setCurrentIndex(PROJECTIONS.index(projection))
        self.value_label.setText(f"{thickness:g} mm" if thickness else "off")
