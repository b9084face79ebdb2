"""Searchable table of the DICOM elements of the file behind the slice on screen.

The header is read with ``pydicom.dcmread(stop_before_pixels=True)`` (1-3 ms for one file) on the UI
thread, but only when the panel is visible, only when the file changes (the frames of a multi-frame
file share it) and after scrolling pauses for :data:`REFRESH_DELAY_MS`, so scrolling never waits on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from PySide6.QtCore import QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QLineEdit, QTableView, QVBoxLayout, QWidget

from viewer.qt.controller import ViewerController

#: Characters of a value shown in the table (the tooltip holds more).
VALUE_CHARS = 120
#: Elements listed at most (a huge enhanced multi-frame header would otherwise flood the table).
MAX_ROWS = 5000
#: Pause after the last slice change before the header is read.
REFRESH_DELAY_MS = 120
COLUMNS = ("Tag", "Keyword", "VR", "Value")


def _value_text(elem) -> str:
    if elem.VR == "SQ":
        return f"sequence of {len(elem.value)} item(s)"
    if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") and isinstance(elem.value, (bytes, bytearray)):
        return f"<{len(elem.value)} bytes>"
    try:
        if elem.value is None:  # an empty element (e.g. a type 2 tag left blank)
            return ""
        text = repr(elem.value) if isinstance(elem.value, bytes) else str(elem.value)
    except Exception as e:  # noqa: BLE001 - a malformed value still gets a row; the reason is the text
        text = f"<unreadable: {e}>"
    return text.replace("\r", " ").replace("\n", " ")


def dataset_rows(ds: Dataset, depth: int = 0) -> Iterator[tuple[str, str, str, str, str]]:
    """(tag, keyword, VR, truncated value, full value) of every element, sequences indented."""
    indent = "  " * depth
    for elem in ds:
        tag = f"{indent}({elem.tag.group:04X},{elem.tag.element:04X})"
        full = _value_text(elem)
        short = full if len(full) <= VALUE_CHARS else full[: VALUE_CHARS - 1] + "…"
        yield tag, elem.keyword or elem.name, elem.VR, short, full
        if elem.VR == "SQ":
            for n, item in enumerate(elem.value):
                yield f"{indent}  > item {n + 1}", "", "", "", ""
                yield from dataset_rows(item, depth + 2)


def read_tags(path: Path) -> Dataset:
    """The header of ``path`` with file meta, pixel data left unread."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


class TagPanel(QWidget):
    """Filterable table of the tags of the current file."""

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter: tag, keyword or value…")
        self.filter.setClearButtonEnabled(True)
        self.source_label = QLabel(self)
        self.source_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source_label.setWordWrap(True)
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(24)
        self.table.setColumnWidth(1, 130)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.filter)
        layout.addWidget(self.source_label)
        layout.addWidget(self.table)

        self._shown_path: Path | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        controller.sig_slice_changed.connect(self._schedule)
        controller.sig_series_selected.connect(self._schedule)

    @property
    def shown_path(self) -> Path | None:
        """The file whose tags are listed."""
        return self._shown_path

    def visible_rows(self) -> int:
        """Rows that pass the filter."""
        return self.proxy.rowCount()

    def _schedule(self, *_: object) -> None:
        self._timer.start()

    def showEvent(self, ev) -> None:  # noqa: N802 - Qt override
        super().showEvent(ev)
        self._schedule()

    def flush(self) -> None:
        """Do a pending (debounced) refresh now (before a screenshot, in tests)."""
        if self._timer.isActive():
            self._timer.stop()
        self.refresh()

    def refresh(self) -> None:
        """Read the current file's header now (if the panel is visible and the file changed)."""
        if not self.isVisible():
            return
        source = self.controller.current_source()
        path = source[0].path if source is not None else None
        if path == self._shown_path:
            return
        self._shown_path = path
        if path is None:
            self.model.removeRows(0, self.model.rowCount())
            self.source_label.setText("")
            return
        try:
            ds = read_tags(path)
        except Exception as e:  # noqa: BLE001 - the file changed or vanished since the scan: say so in the panel
            self.model.removeRows(0, self.model.rowCount())
            self.source_label.setText(f"{path.name}: cannot read the header ({e})")
            return
        rows = list(dataset_rows(ds.file_meta))
        for row in dataset_rows(ds):
            rows.append(row)
            if len(rows) >= MAX_ROWS:
                break
        # Rows are rewritten in place and only the difference in count is inserted or removed: the next
        # header of a series has nearly the same elements, and inserting rows is what costs the view (with
        # PySide6 6.11 also ~1.4 references to None per inserted row, which the soak test counts).
        self.model.setRowCount(len(rows))
        for r, (tag, keyword, vr, short, full) in enumerate(rows):
            for c, text in enumerate((tag, keyword, vr, short)):
                item = self.model.item(r, c)
                if item is None:
                    item = QStandardItem()
                    self.model.setItem(r, c, item)
                item.setText(text)
                if c == 3:
                    item.setToolTip(full[:4000] if full != short else "")
        more = f" (first {MAX_ROWS} elements)" if len(rows) >= MAX_ROWS else ""
        self.source_label.setText(f"{path.name}{more}")
        self.source_label.setToolTip(str(path))
