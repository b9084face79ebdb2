"""Probability along the slices: one point per analysed slice, the model's threshold, the slice on screen.

x is the image number the corner text shows ("Im 35/48" is x = 35); a click anywhere in the plot goes to
the nearest slice. Slices not analysed yet are gaps. The plot is a view of
:class:`~viewer.qt.ai.state.AIState` and moves the view only through ``sig_navigate``, which the window connects to the
controller.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QWidget

from viewer.qt.ai.state import AIState
from viewer.qt.ai.status import ProbabilityCurve
from viewer.qt.view_state import ViewState

#: Draw a symbol per slice up to this many slices (beyond, the line alone reads better and draws faster).
MAX_SYMBOLS = 120
CURVE_COLOR = QColor(120, 180, 255)
ABOVE_COLOR = QColor(255, 170, 40)
THRESHOLD_COLOR = QColor(255, 90, 90)
CURSOR_COLOR = QColor(255, 255, 140)


class ProbabilityPlot(pg.PlotWidget):
    """The probability-along-slices plot of the series on screen; a click emits ``sig_navigate``."""

    sig_navigate = Signal(int)  # the slice clicked; the window connects it to the controller's set_slice

    def __init__(self, view: ViewState, ai: AIState, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=QColor(25, 25, 28))
        self._view = view
        self._ai = ai
        self.setMinimumHeight(110)
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        item.showGrid(x=False, y=True, alpha=0.15)
        item.setLabel("left", "p")
        item.setLabel("bottom", "image")
        item.getViewBox().setDefaultPadding(0.0)
        item.setYRange(0.0, 1.0, padding=0.04)
        self._curve = item.plot([], [], pen=pg.mkPen(CURVE_COLOR, width=1.5), connect="finite")
        self._above = pg.ScatterPlotItem(size=7, pen=pg.mkPen(None), brush=pg.mkBrush(ABOVE_COLOR))
        item.addItem(self._above)
        pen = QPen(THRESHOLD_COLOR)
        pen.setStyle(Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        pen.setWidthF(1.2)
        self._threshold = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self._threshold.setVisible(False)
        item.addItem(self._threshold)
        self._threshold_label = pg.TextItem(color=THRESHOLD_COLOR, anchor=(0.0, 1.0))
        self._threshold_label.setVisible(False)
        item.addItem(self._threshold_label)
        self._cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(CURSOR_COLOR, width=1.5))
        item.addItem(self._cursor)
        self._message = pg.TextItem(color=(200, 200, 200), anchor=(0.5, 0.5))
        item.addItem(self._message)
        self._n = 0
        self._curve_data: ProbabilityCurve | None = None
        self.scene().sigMouseClicked.connect(self._on_click)
        ai.sig_curve_changed.connect(self._on_curve)
        view.sig_slice_changed.connect(self._on_slice)
        self._on_curve(ai.curve())
        self._on_slice(view.slice_index)

    # -- for tests and scripts -----------------------------------------------------------------------------

    def curve_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, p) of the analysed slices drawn, x as image numbers (index + 1)."""
        x, y = self._curve.getData()
        if x is None:
            return np.zeros(0), np.zeros(0)
        keep = ~np.isnan(y)
        return np.asarray(x)[keep], np.asarray(y)[keep]

    def threshold_value(self) -> float | None:
        return float(self._threshold.value()) if self._threshold.isVisible() else None

    def cursor_value(self) -> float:
        return float(self._cursor.value())

    def scene_pos_of(self, index: int, p: float = 0.5) -> QPointF:
        """Scene position of slice ``index`` at probability ``p`` (to click it in tests)."""
        return self.getPlotItem().getViewBox().mapViewToScene(QPointF(index + 1, p))

    # -- AI -> plot --------------------------------------------------------------------------------------------

    def _on_curve(self, curve: ProbabilityCurve) -> None:
        previous = self._curve_data
        if previous is not None and _same_curve(previous, curve):
            # nothing to redraw; and PySide6 6.11 leaks references to None in pyqtgraph's item updates
            # (~8 per redraw, TextItem.setPos alone 7), which the soak test counts
            return
        self._curve_data = curve
        p = curve.probabilities
        n = len(p)
        x = np.arange(1, n + 1, dtype=np.float64)
        if n != self._n or previous is None or previous.series_key != curve.series_key:
            self._n = n
            # the axis spans the series' own images: 1-3 for a 3-image series, not 1-10
            self.getPlotItem().setXRange(0.5, max(n, 1) + 0.5, padding=0.0)
            self._label_axis(n)
        symbols = n <= MAX_SYMBOLS
        if np.isnan(p).all():  # nothing analysed yet (pyqtgraph's bounds warn on all-NaN data)
            self._curve.setData([], [])
        else:
            self._curve.setData(x, p.astype(np.float64), connect="finite",
                                symbol="o" if symbols else None, symbolSize=4, symbolPen=None,
                                symbolBrush=pg.mkBrush(CURVE_COLOR))
        threshold = curve.threshold
        if threshold is not None and not curve.reason:
            above = ~np.isnan(p) & (p >= threshold)
            self._above.setData(x[above], p[above].astype(np.float64))
            self._threshold.setValue(threshold)
            self._threshold_label.setText(f"threshold {threshold:.3g}")
            if previous is None or previous.threshold != threshold:
                self._threshold_label.setPos(0.6, threshold)
        else:
            self._above.setData([], [])
        has_threshold = threshold is not None and not curve.reason
        self._threshold.setVisible(has_threshold)
        self._threshold_label.setVisible(has_threshold)
        self._message.setText(curve.reason and f"the model does not apply: {curve.reason}")
        self._fit_message()
        if previous is None or len(previous.probabilities) != n:
            self._message.setPos((n + 1) / 2, 0.5)

    def _fit_message(self) -> None:
        """Wrap the message to the plot's width, so a long reason is never cut off."""
        self._message.setTextWidth(max(120.0, 0.8 * self.width()))

    def resizeEvent(self, ev) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(ev)
        if getattr(self, "_message", None) is not None:
            self._fit_message()

    def _label_axis(self, n: int) -> None:
        """Ticks at stack positions, labelled with the scanner's image numbers (a report's "image 26")."""
        series = self._view.series
        axis = self.getPlotItem().getAxis("bottom")
        if series is None or series.image_numbers is None or n == 0 or len(series.image_numbers) != n:
            axis.setTicks(None)
            axis.setLabel("stack position" if series is not None and n else "image")
            return
        step = max(1, round(n / 8))
        ticks = [(k + 1, str(series.image_numbers[k])) for k in range(0, n, step)]
        axis.setTicks([ticks])
        axis.setLabel(f"image ({series.numbered_by})")

    def _on_slice(self, index: int) -> None:
        self._cursor.setValue(index + 1)

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self._n == 0:
            return
        vb = self.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        x = vb.mapSceneToView(ev.scenePos()).x()
        if math.isfinite(x):
            ev.accept()
            self.sig_navigate.emit(int(round(x)) - 1)

    def close(self) -> bool:
        self._ai.sig_curve_changed.disconnect(self._on_curve)
        self._view.sig_slice_changed.disconnect(self._on_slice)
        return super().close()


def _same_curve(a: ProbabilityCurve, b: ProbabilityCurve) -> bool:
    """True when ``b`` draws exactly what ``a`` drew (NaN where not analysed compares equal)."""
    return (a.series_key == b.series_key and a.threshold == b.threshold and a.reason == b.reason
            and np.array_equal(a.probabilities, b.probabilities, equal_nan=True))
