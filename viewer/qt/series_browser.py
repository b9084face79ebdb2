"""The list of series found by the last scan: thumbnail, modality, description, slice count.

Thumbnails are decoded on the controller's thumbnail lane and arrive by ``sig_thumbnail_ready``; until
then a grey placeholder shows. Choosing a row calls ``controller.select_series``; the controller's
``sig_series_selected`` moves the selection back inside a ``QSignalBlocker``, so nothing echoes.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from viewer.core.scan import ScanResult
from viewer.core.series import REVERSED_SUFFIX
from viewer.core.thumbnails import THUMBNAIL_SIZE
from viewer.qt.controller import ViewerController

KEY_ROLE = Qt.ItemDataRole.UserRole


def array_to_pixmap(image: np.ndarray, square: int | None = None) -> QPixmap:
    """uint8 grey (rows, cols) or RGB (rows, cols, 3) -> QPixmap (UI thread only); copies the pixels.

    With ``square``, the image is centred on a black square of that side, so that every row of the
    list has the same icon width and the text columns line up.
    """
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    if image.ndim == 2:
        qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_Grayscale8)
    else:
        qimage = QImage(image.data, w, h, image.strides[0], QImage.Format.Format_RGB888)
    pixmap = QPixmap.fromImage(qimage.copy())
    if square is None:
        return pixmap
    canvas = QPixmap(square, square)
    canvas.fill(QColor(0, 0, 0))
    painter = QPainter(canvas)
    painter.drawPixmap((square - w) // 2, (square - h) // 2, pixmap)
    painter.end()
    return canvas


def _placeholder(size: int, color: QColor, text: str = "") -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(color)
    if text:
        painter = QPainter(pixmap)
        painter.setPen(QColor(200, 200, 200))
        painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, text)
        painter.end()
    return QIcon(pixmap)


class SeriesBrowser(QWidget):
    """Series list; one row per displayable series of the current scan."""

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setUniformItemSizes(True)
        self.list.setSpacing(2)
        self.list.setWordWrap(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        self._rows: dict[str, QListWidgetItem] = {}
        self._loading_icon = _placeholder(THUMBNAIL_SIZE, QColor(40, 40, 40))
        self._failed_icon = _placeholder(THUMBNAIL_SIZE, QColor(40, 40, 40), "no\npreview")

        self.list.currentItemChanged.connect(self._on_current_changed)
        controller.sig_scan_finished.connect(self._on_scan_finished)
        controller.sig_thumbnail_ready.connect(self._on_thumbnail)
        controller.sig_thumbnail_failed.connect(self._on_thumbnail_failed)
        controller.sig_series_selected.connect(self._on_series_selected)
        if controller.scan_result is not None:
            self._on_scan_finished(controller.scan_result)

    def keys(self) -> list[str]:
        """Series keys in list order."""
        return [self.list.item(i).data(KEY_ROLE) for i in range(self.list.count())]

    def has_thumbnail(self, key: str) -> bool:
        item = self._rows.get(key)
        return item is not None and bool(item.data(Qt.ItemDataRole.UserRole + 1))

    def _on_scan_finished(self, result: ScanResult) -> None:
        with QSignalBlocker(self.list):
            self.list.clear()
            self._rows.clear()
            for s in result.series:
                ps = s.first.pixel_spacing
                spacing = s.geometry.slice_spacing if s.geometry.known else None
                size = f"{s.cols}×{s.rows}" + (f" · {spacing:.3g} mm" if spacing else "")
                count = f"{s.n_slices} image" + ("s" if s.n_slices != 1 else "")
                lines = [f"{s.modality} · {count}", size, s.description or "(no description)"]
                item = QListWidgetItem(self._loading_icon, "\n".join(lines))
                item.setData(KEY_ROLE, s.key)
                tip = [s.key]
                if ps:
                    tip.append(f"pixel spacing {ps[0]:.3g} × {ps[1]:.3g} mm")
                tip.extend(s.warnings)
                item.setToolTip("\n".join(tip))
                self.list.addItem(item)
                self._rows[s.key] = item

    def _on_thumbnail(self, key: str, image: np.ndarray) -> None:
        item = self._rows.get(key)
        if item is not None:
            item.setIcon(QIcon(array_to_pixmap(image, THUMBNAIL_SIZE)))
            item.setData(Qt.ItemDataRole.UserRole + 1, True)

    def _on_thumbnail_failed(self, key: str, reason: str) -> None:
        item = self._rows.get(key)
        if item is not None:
            item.setIcon(self._failed_icon)
            item.setToolTip(f"{item.toolTip()}\nno preview: {reason}")

    def _on_series_selected(self, key: str) -> None:
        with QSignalBlocker(self.list):
            item = self._rows.get(key.removesuffix(REVERSED_SUFFIX))  # shown reversed: still this series
            self.list.setCurrentItem(item) if item is not None else self.list.clearSelection()

    def _on_current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if current is not None:
            self.controller.select_series(current.data(KEY_ROLE))
