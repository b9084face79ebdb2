"""The series found by the last scan, as a tree: one branch per study (its date and description; the
patient's name and ID only while the patient lines are shown, P), and under it each series with its
thumbnail, series number, modality, description and image count, in series-number order. Two studies
opened together stay apart.

Thumbnails are decoded on the controller's thumbnail lane and arrive by ``sig_thumbnail_ready``; until
then a grey placeholder shows. Choosing a row (a click, or the arrow keys) calls
``controller.select_series``; the controller's ``sig_series_selected`` moves the selection back inside a
``QSignalBlocker``, so nothing echoes. A row dragged onto a viewport shows its series there
(:meth:`~viewer.qt.view.view_grid.ViewGrid.show_series`); a press that starts a drag selects nothing.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QMimeData, QSignalBlocker, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QApplication, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from viewer.core.scan import ScanResult
from viewer.core.series import REVERSED_SUFFIX, SeriesInfo
from viewer.core.thumbnails import THUMBNAIL_SIZE
from viewer.qt.controller import ViewerController
from viewer.qt.view.corner_text import dicom_date, person_name
from viewer.qt.view.view_grid import SERIES_MIME

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


def study_title(series: SeriesInfo, identifiers: bool) -> str:
    """A study branch's text: date and description, with the patient's name and ID when ``identifiers``."""
    patient = series.first.patient
    parts = [dicom_date(patient.get("StudyDate", "")), patient.get("StudyDescription", "")]
    if identifiers:
        parts = [person_name(patient.get("PatientName", "")), patient.get("PatientID", ""), *parts]
    text = " · ".join(p for p in parts if p)
    return text or "(study without date or description)"


def series_text(s: SeriesInfo) -> str:
    spacing = s.geometry.slice_spacing if s.geometry.known else None
    size = f"{s.cols}×{s.rows}" + (f" · {spacing:.3g} mm" if spacing else "")
    count = f"{s.n_slices} image" + ("s" if s.n_slices != 1 else "")
    number = f"Se {s.series_number} · " if s.series_number is not None else ""
    return "\n".join([f"{number}{s.modality} · {count}", size, s.description or "(no description)"])


class SeriesTree(QTreeWidget):
    """The tree, whose series rows drag their key (:data:`~viewer.qt.view.view_grid.SERIES_MIME`)."""

    #: a drag ended (dropped anywhere, or given up): the press that began it moved the highlight
    sig_drag_done = Signal()

    def startDrag(self, actions) -> None:  # noqa: N802 - Qt override
        super().startDrag(actions)
        self.sig_drag_done.emit()

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt override
        return [SERIES_MIME]

    def mimeData(self, items) -> QMimeData:  # noqa: N802 - Qt override
        data = QMimeData()
        key = items[0].data(0, KEY_ROLE) if items else None
        if key:
            data.setData(SERIES_MIME, str(key).encode("utf-8"))
        return data

    def supportedDropActions(self) -> Qt.DropAction:  # noqa: N802 - Qt override
        return Qt.DropAction.CopyAction


class SeriesBrowser(QWidget):
    """The studies of the current scan and their series (see the module docstring)."""

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.tree = SeriesTree(self)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setIndentation(10)
        self.tree.setWordWrap(True)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._rows: dict[str, QTreeWidgetItem] = {}
        self._studies: list[tuple[QTreeWidgetItem, SeriesInfo]] = []
        self._loading_icon = _placeholder(THUMBNAIL_SIZE, QColor(40, 40, 40))
        self._failed_icon = _placeholder(THUMBNAIL_SIZE, QColor(40, 40, 40), "no\npreview")

        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.tree.itemClicked.connect(lambda item, _column: self._choose(item))
        # the highlight shows the first viewport's series again (the dragged one went elsewhere)
        self.tree.sig_drag_done.connect(lambda: self._on_series_selected(controller.series_key or ""))
        controller.sig_scan_finished.connect(self._on_scan_finished)
        controller.sig_thumbnail_ready.connect(self._on_thumbnail)
        controller.sig_thumbnail_failed.connect(self._on_thumbnail_failed)
        controller.sig_series_selected.connect(self._on_series_selected)
        controller.sig_patient_info_changed.connect(self._title_studies)
        if controller.scan_result is not None:
            self._on_scan_finished(controller.scan_result)

    def keys(self) -> list[str]:
        """Series keys in tree order."""
        return [k for k in (self._key(item) for item in self.series_items()) if k]

    def series_items(self) -> list[QTreeWidgetItem]:
        """The series rows, study by study."""
        return [top.child(j) for i in range(self.tree.topLevelItemCount())
                for top in [self.tree.topLevelItem(i)] for j in range(top.childCount())]

    def study_titles(self) -> list[str]:
        return [self.tree.topLevelItem(i).text(0) for i in range(self.tree.topLevelItemCount())]

    def item(self, key: str) -> QTreeWidgetItem | None:
        return self._rows.get(key)

    @staticmethod
    def _key(item: QTreeWidgetItem | None) -> str | None:
        return item.data(0, KEY_ROLE) if item is not None else None

    def has_thumbnail(self, key: str) -> bool:
        item = self._rows.get(key)
        return item is not None and bool(item.data(0, Qt.ItemDataRole.UserRole + 1))

    def _on_scan_finished(self, result: ScanResult) -> None:
        with QSignalBlocker(self.tree):
            self.tree.clear()
            self._rows.clear()
            self._studies = []
            studies: dict[str, QTreeWidgetItem] = {}
            order = sorted(result.series, key=lambda s: (s.study_uid, s.series_number is None, s.series_number or 0))
            for s in order:
                study = studies.get(s.study_uid)
                if study is None:
                    study = studies[s.study_uid] = QTreeWidgetItem(self.tree)
                    study.setFlags(study.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                    self._studies.append((study, s))
                item = QTreeWidgetItem(study, [series_text(s)])
                item.setIcon(0, self._loading_icon)
                item.setData(0, KEY_ROLE, s.key)
                ps = s.first.pixel_spacing
                tip = [s.key]
                if ps:
                    tip.append(f"pixel spacing {ps[0]:.3g} × {ps[1]:.3g} mm")
                tip.extend(s.warnings)
                item.setToolTip(0, "\n".join(tip))
                self._rows[s.key] = item
            self._title_studies(self.controller.show_patient_info)
            self.tree.expandAll()

    def _title_studies(self, identifiers: bool) -> None:
        for study, first in self._studies:
            study.setText(0, study_title(first, identifiers))

    def _on_thumbnail(self, key: str, image: np.ndarray) -> None:
        item = self._rows.get(key)
        if item is not None:
            item.setIcon(0, QIcon(array_to_pixmap(image, THUMBNAIL_SIZE)))
            item.setData(0, Qt.ItemDataRole.UserRole + 1, True)

    def _on_thumbnail_failed(self, key: str, reason: str) -> None:
        item = self._rows.get(key)
        if item is not None:
            item.setIcon(0, self._failed_icon)
            item.setToolTip(0, f"{item.toolTip(0)}\nno preview: {reason}")

    def _on_series_selected(self, key: str) -> None:
        with QSignalBlocker(self.tree):
            item = self._rows.get(key.removesuffix(REVERSED_SUFFIX))  # shown reversed: still this series
            if item is not None:
                self.tree.setCurrentItem(item)
            else:
                self.tree.clearSelection()

    def _on_current_changed(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        if QApplication.mouseButtons() != Qt.MouseButton.NoButton:
            return  # a press: it may start a drag; the click (release on the row) chooses
        self._choose(current)

    def _choose(self, item: QTreeWidgetItem | None) -> None:
        key = self._key(item)
        if key:
            self.controller.select_series(key)
