"""File › PACS…: the nodes, a search form, the results, Retrieve and Open, the transfer queue, Send, and
the storage SCP's Received list, all on :class:`~viewer.qt.pacs.jobs.PacsJobs`' workers.

A retrieved study opens in the window as it arrives: its folder is opened as soon as the first instance
is on disk (the reader sees an image while the rest comes in), and opened again when the retrieve ends,
with every slice. A study whose retrieve did not finish is opened with its partial state said in the
status line, never as a whole one. The dialog keeps the nodes in the PACS settings
(:mod:`viewer.core.pacs.nodes`), which the command line shares.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.core.pacs.errors import PacsError
from viewer.core.pacs.nodes import Node, load_settings, parse_node, save_settings
from viewer.core.pacs.query import Query
from viewer.core.pacs.study_cache import StudyFolder
from viewer.qt.pacs.jobs import PacsJobs, Transfer, pacs_cache

RESULT_COLUMNS = ("Patient", "Patient ID", "Study date", "Modality", "Description", "Count")
TRANSFER_COLUMNS = ("What", "Node", "Progress", "Status")


def _modalities(text: str) -> str:
    """``CT\\SEG\\SR`` (a multi-valued ModalitiesInStudy) as ``CT, SEG, SR``."""
    return text.replace("\\", ", ")


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 and text.isdigit() else text


def _table(columns: tuple[str, ...], stretch: int) -> QTableWidget:
    """A read-only table selected by rows, column ``stretch`` taking the width left."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


class PacsDialog(QDialog):
    """See the module docstring. ``open_folder`` shows a folder in the window; ``status`` writes the
    window's status line; ``series_files`` gives the files of the series on screen; ``findings`` gives
    ``(what, prepare)`` for the findings' SEG and SR, or the reason there are none, and ``capture`` the
    same for the Secondary Capture of the slice on screen with its heatmap."""

    def __init__(self, open_folder: Callable[[Path], None], status: Callable[[str], None],
                 series_files: Callable[[], list[Path]],
                 findings: Callable[[], tuple[str, Callable[[], list[Path]]] | str],
                 capture: Callable[[], tuple[str, Callable[[], list[Path]]] | str],
                 parent: QWidget | None = None, *, sync: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS")
        self.resize(980, 700)
        self._open_folder, self._status = open_folder, status
        self._series_files, self._findings, self._capture = series_files, findings, capture
        self.jobs = PacsJobs(self, sync=sync)
        self._rows: list[dict] = []
        layout = QVBoxLayout(self)
        layout.addLayout(self._node_row())
        layout.addWidget(self._search_box())
        layout.addWidget(self._results_box(), 3)
        layout.addWidget(self._transfers_box(), 2)
        layout.addWidget(self._received_box(), 1)
        self.jobs.sig_echo.connect(self.node_status.setText)
        self.jobs.sig_rows.connect(self._show_rows)
        self.jobs.sig_search_failed.connect(self._search_failed)
        self.jobs.sig_transfer_changed.connect(self._show_transfer)
        self.jobs.sig_first_instance.connect(self._first_instance)
        self.jobs.sig_received.connect(self._received)
        self.jobs.sig_listening.connect(self.listen_status.setText)
        self._fill_nodes()

    # -- nodes ------------------------------------------------------------------------------------------

    def _node_row(self) -> QVBoxLayout:
        column = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(QLabel("Node"))
        self.node_combo = QComboBox()
        self.node_combo.setMinimumWidth(300)
        row.addWidget(self.node_combo)
        self.echo_button = QPushButton("Echo")
        self.echo_button.clicked.connect(self.echo)
        row.addWidget(self.echo_button)
        row.addSpacing(24)
        self.new_name = QLineEdit(placeholderText="name")
        self.new_name.setMinimumWidth(100)
        self.new_address = QLineEdit(placeholderText="AET@HOST:PORT or http://host/dicom-web")
        self.new_address.setMinimumWidth(300)
        self.add_button = QPushButton("Add node")
        self.add_button.clicked.connect(self.add_node)
        for w in (self.new_name, self.new_address, self.add_button):
            row.addWidget(w)
        row.addStretch(1)
        column.addLayout(row)
        self.node_status = QLabel("")
        self.node_status.setWordWrap(True)
        column.addWidget(self.node_status)
        return column

    def _fill_nodes(self, select: str = "") -> None:
        self.node_combo.clear()
        try:
            nodes = load_settings().nodes
        except PacsError as e:
            self.node_status.setText(str(e))
            nodes = ()
        for n in nodes:
            self.node_combo.addItem(f"{n.name}  ({n})", n)
        if select:
            self.node_combo.setCurrentIndex(max(0, self.node_combo.findText(select, Qt.MatchFlag.MatchStartsWith)))
        if not nodes:
            self.node_status.setText("No node yet: add one (a name and AET@HOST:PORT or a DICOMweb URL)")

    def node(self) -> Node | None:
        node = self.node_combo.currentData()
        if node is None:
            self.node_status.setText("Choose a node first (or add one)")
        return node

    def add_node(self) -> None:
        name, address = self.new_name.text().strip(), self.new_address.text().strip()
        try:
            node = parse_node(address, name)
            save_settings(load_settings().with_node(node))
        except (PacsError, OSError) as e:
            self.node_status.setText(str(e))
            return
        self.new_name.clear()
        self.new_address.clear()
        self._fill_nodes(select=node.name)
        self.node_status.setText(f"Kept {node.name} ({node})")

    def echo(self) -> None:
        node = self.node()
        if node is not None:
            self.node_status.setText(f"Asking {node}…")
            self.jobs.echo(node)

    # -- search ------------------------------------------------------------------------------------------

    def _search_box(self) -> QGroupBox:
        box = QGroupBox("Search")
        grid = QGridLayout(box)
        self.fields: dict[str, QLineEdit] = {}
        for i, (key, label, hint) in enumerate((
                ("patient_id", "Patient ID", "* and ? match anything"), ("patient_name", "Patient name", "DOE^J*"),
                ("study_date", "Study date", "YYYYMMDD or YYYYMMDD-YYYYMMDD"), ("modality", "Modality", "CT"),
                ("accession", "Accession", ""))):
            edit = QLineEdit(placeholderText=hint)
            edit.returnPressed.connect(self.search)
            self.fields[key] = edit
            grid.addWidget(QLabel(label), i // 3, 2 * (i % 3))
            grid.addWidget(edit, i // 3, 2 * (i % 3) + 1)
        self.level_combo = QComboBox()
        self.level_combo.addItems(["study", "series"])
        grid.addWidget(QLabel("Level"), 1, 4)
        grid.addWidget(self.level_combo, 1, 5)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        grid.addWidget(self.search_button, 0, 6)
        self.search_status = QLabel("")
        grid.addWidget(self.search_status, 1, 6)
        return box

    def search(self) -> None:
        node = self.node()
        if node is None:
            return
        try:
            query = Query(self.level_combo.currentText(), **{k: e.text().strip() for k, e in self.fields.items()})
        except PacsError as e:
            self.search_status.setText(str(e))
            return
        self.search_status.setText("Searching…")
        self.jobs.search(node, query)

    def _search_failed(self, message: str) -> None:
        self.search_status.setText(message)
        self._show_rows([])

    def _results_box(self) -> QGroupBox:
        box = QGroupBox("Results")
        v = QVBoxLayout(box)
        self.results = _table(RESULT_COLUMNS, stretch=4)
        self.results.doubleClicked.connect(lambda _index: self.retrieve())
        v.addWidget(self.results)
        row = QHBoxLayout()
        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self.open_selected)
        self.send_series_button = QPushButton("Send the open series")
        self.send_series_button.clicked.connect(self.send_series)
        self.send_findings_button = QPushButton("Send findings (SR + SEG)")
        self.send_findings_button.clicked.connect(self.send_findings)
        self.send_capture_button = QPushButton("Send heatmap capture (SC)")
        self.send_capture_button.setToolTip("The image on screen with the assistant's heatmap, as a Secondary "
                                            "Capture marked derived and not for diagnosis")
        self.send_capture_button.clicked.connect(self.send_capture)
        self.move_box = QCheckBox("by C-MOVE (to radview's listener)")
        for b in (self.retrieve_button, self.move_box, self.open_button):
            row.addWidget(b)
        row.addStretch(1)
        for b in (self.send_series_button, self.send_findings_button, self.send_capture_button):
            row.addWidget(b)
        v.addLayout(row)
        return box

    def _show_rows(self, rows: list[dict]) -> None:
        self._rows = rows
        self.results.setSortingEnabled(False)
        self.results.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = (r["patient_name"], r["patient_id"], _date(r["study_date"]), _modalities(r["modality"]),
                      r["description"], r["n_instances"])
            for j, value in enumerate(values):
                item = QTableWidgetItem()
                if j == 5 and value is not None:
                    item.setData(Qt.ItemDataRole.DisplayRole, int(value))  # sorts as a number
                else:
                    item.setText("" if value is None else str(value))
                item.setData(Qt.ItemDataRole.UserRole, i)
                self.results.setItem(i, j, item)
        self.results.setSortingEnabled(True)
        self.results.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.results.resizeColumnsToContents()
        self.results.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        if rows:
            self.search_status.setText(f"{len(rows)} found")
            self.results.selectRow(0)

    def selected_row(self) -> dict | None:
        items = self.results.selectedItems()
        if not items:
            return None
        return self._rows[int(items[0].data(Qt.ItemDataRole.UserRole))]

    def retrieve(self) -> None:
        node, row = self.node(), self.selected_row()
        if node is None or row is None:
            self.search_status.setText("Search, then choose a study to retrieve")
            return
        what = " ".join(p for p in (_date(row["study_date"]), _modalities(row["modality"]), row["description"]) if p)
        what = what or "study"
        self.jobs.retrieve(node, row["study_uid"], what, row.get("series_uid", ""), move=self.move_box.isChecked())

    def open_selected(self) -> None:
        row = self.selected_row()
        if row is None:
            return
        folder = StudyFolder(pacs_cache(), row["study_uid"])
        if not folder.have():
            self.search_status.setText("Not retrieved yet: Retrieve it first")
            return
        self._open(folder.path)

    def _open(self, folder: Path) -> None:
        self._open_folder(folder)
        study = StudyFolder(folder.parent, folder.name)  # the folder is named by its (safe) StudyInstanceUID
        if study.is_complete() is False:
            self._status(f"Partial study: {len(study.have())} instance(s) so far; its retrieve has not finished "
                         "(Retrieve again resumes it)")

    # -- transfers --------------------------------------------------------------------------------------

    def _transfers_box(self) -> QGroupBox:
        box = QGroupBox("Transfers")
        v = QVBoxLayout(box)
        self.transfer_table = _table(TRANSFER_COLUMNS, stretch=3)
        self.transfer_table.horizontalHeader().resizeSection(0, 320)
        self.transfer_table.horizontalHeader().resizeSection(1, 190)
        v.addWidget(self.transfer_table)
        row = QHBoxLayout()
        row.addStretch(1)
        self.cancel_button = QPushButton("Cancel transfer")
        self.cancel_button.clicked.connect(self.cancel_transfer)
        row.addWidget(self.cancel_button)
        v.addLayout(row)
        self._transfer_rows: dict[int, int] = {}
        return box

    def _show_transfer(self, t: Transfer) -> None:
        table = self.transfer_table
        if t.id not in self._transfer_rows:
            self._transfer_rows[t.id] = table.rowCount()
            table.insertRow(table.rowCount())
            table.setItem(self._transfer_rows[t.id], 0, QTableWidgetItem(f"{t.kind}: {t.what}"))
            table.setItem(self._transfer_rows[t.id], 1, QTableWidgetItem(t.node))
            table.setCellWidget(self._transfer_rows[t.id], 2, QProgressBar())
            table.setItem(self._transfer_rows[t.id], 3, QTableWidgetItem())
            table.scrollToBottom()  # the newest transfer in sight
        i = self._transfer_rows[t.id]
        table.item(i, 0).setData(Qt.ItemDataRole.UserRole, t.id)
        bar = table.cellWidget(i, 2)
        if isinstance(bar, QProgressBar):
            bar.setRange(0, max(t.total, 1))
            bar.setValue(t.done if t.total else (1 if t.state == "done" else 0))
            bar.setFormat(f"{t.done}/{t.total}" if t.total else "%p%")
        table.item(i, 3).setText(t.message or t.state)
        if t.kind == "retrieve" and t.state == "done" and t.folder is not None:
            self._open(t.folder)  # every slice now
            self._status(f"Retrieved: {t.what} ({t.message})")
        elif t.state in ("failed", "cancelled"):
            self._status(f"{t.kind.capitalize()} {t.state}: {t.message}")

    def _first_instance(self, t: Transfer) -> None:
        if t.folder is not None:
            self._open_folder(t.folder)
            self._status(f"Retrieving {t.what}: the first image is shown, the rest is on its way")

    def cancel_transfer(self) -> None:
        for item in self.transfer_table.selectedItems():
            tid = self.transfer_table.item(item.row(), 0).data(Qt.ItemDataRole.UserRole)
            if tid is not None:
                self.jobs.cancel(int(tid))

    def send_series(self) -> None:
        node, files = self.node(), self._series_files()
        if node is None:
            return
        if not files:
            self.node_status.setText("No series is open")
            return
        self.jobs.send(node, files, f"{len(files)} file(s) of the open series")

    def send_findings(self) -> None:
        self._send_prepared(self._findings)

    def send_capture(self) -> None:
        self._send_prepared(self._capture)

    def _send_prepared(self, snapshot: Callable[[], tuple[str, Callable[[], list[Path]]] | str]) -> None:
        """Send what ``snapshot`` prepares (written on the transfer worker), or say why there is nothing."""
        node = self.node()
        if node is None:
            return
        answer = snapshot()
        if isinstance(answer, str):
            self.node_status.setText(answer)
            return
        what, prepare = answer
        self.node_status.setText(f"Sending the {what} (see Transfers)")
        self.jobs.send(node, [], what, prepare=prepare)

    # -- receiving --------------------------------------------------------------------------------------

    def _received_box(self) -> QGroupBox:
        box = QGroupBox("Received")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.listen_box = QCheckBox("Listen for studies pushed to radview (storage SCP)")
        self.listen_box.toggled.connect(self.jobs.listen)
        row.addWidget(self.listen_box)
        self.listen_status = QLabel("Not listening")
        row.addWidget(self.listen_status, 1)
        self.open_received_button = QPushButton("Open received")
        self.open_received_button.clicked.connect(self.open_received)
        row.addWidget(self.open_received_button)
        v.addLayout(row)
        self.received_list = QListWidget()
        v.addWidget(self.received_list)
        self._received_counts: dict[str, int] = {}
        return box

    def _received(self, item) -> None:
        study = item.study_uid
        self._received_counts[study] = self._received_counts.get(study, 0) + 1
        text = f"study {study}: {self._received_counts[study]} instance(s), from {item.calling_aet or '?'}"
        for i in range(self.received_list.count()):
            entry = self.received_list.item(i)
            if entry.data(Qt.ItemDataRole.UserRole) == study:
                entry.setText(text)
                return
        entry = QListWidgetItem(text)
        entry.setData(Qt.ItemDataRole.UserRole, study)
        self.received_list.addItem(entry)

    def open_received(self) -> None:
        entry = self.received_list.currentItem()
        if entry is not None:
            self._open(StudyFolder(pacs_cache(), entry.data(Qt.ItemDataRole.UserRole)).path)

    def shutdown(self) -> None:
        """Stop the SCP and the workers (the window is closing)."""
        self.jobs.stop()
