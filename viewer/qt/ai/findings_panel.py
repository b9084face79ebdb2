"""The Findings panel: the nodules the AI found in the series on screen, most probable first.

Each row: the finding's number, where it is (the patient's side and the images it spans, with its centre
in LPS mm in the tooltip), long × short axis and mean diameter, volume, type, the Lung-RADS v2022
category it suggests, and the probability. A click selects it (its contour is drawn thicker in every
view) and moves every view to its centre, as a click on it in the MPR layout would. What the AI says is
a demonstration, said above the table.

Below the table: Accept and Reject, and **Edit outline**, a toggle: while it is on, a left drag in any view
paints the selected finding's outline with a disc brush of the radius beside it (Shift+drag erases), and
its sizes are measured again when the stroke ends (:class:`~viewer.qt.ai.finding_review.FindingReview`);
**Revert** gives it the AI's outline back. **Lung mask** draws the outline of the lungs the findings are
looked for in (:class:`~viewer.qt.ai.lung_state.LungMaskState`), in every view.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.ai.findings import finding_record
from viewer.qt.ai.contour_edit import RADIUS_RANGE_MM
from viewer.qt.ai.finding_review import FindingReview
from viewer.qt.ai.report_findings import ReportFindings
from viewer.qt.ai.state import AIState
from viewer.qt.crosshair import CrosshairState
from viewer.qt.report_state import ReportState
from viewer.qt.view_state import ViewState

COLUMNS = ("#", "Where", "⌀ mm", "Axes mm", "mm³", "Type", "Lung-RADS", "p", "Status")
TYPE_NAMES = {"solid": "solid", "part_solid": "part-solid", "ground_glass": "ground-glass", "calcified": "calcified"}
NOTE = ("Demonstration model, not for diagnosis: sizes come from its own segmentation and Lung-RADS is a "
        "suggestion from size and type alone.")


def image_span(images: list[str]) -> str:
    """"Im 33–36" for the images a finding spans (the scanner's numbers, lowest first), else "Im 33"."""
    numbers = [int(t[3:]) for t in images if t.startswith("Im ") and t[3:].isdigit()]
    if len(numbers) != len(images):
        return images[0] if len(images) == 1 else f"{images[0]}–{images[-1]}"
    low, high = min(numbers), max(numbers)
    return f"Im {low}" if low == high else f"Im {low}–{high}"


def row_texts(record: dict) -> tuple[str, ...]:
    """The table's cells of one finding (its ``analyze`` JSON record): number, side and images, mean
    diameter, long × short axis, volume, type, Lung-RADS, probability."""
    span = image_span(record["images"])
    where = f"{record['side']} · {span}" if record["side"] else span
    return (str(record["id"]), where, f"{record['diameter_mm']:.1f}",
            f"{record['long_axis_mm']:.1f} × {record['short_axis_mm']:.1f}", f"{record['volume_mm3']:.0f}",
            TYPE_NAMES[record["type"]], record["lung_rads"], f"{record['probability']:.2f}")


class FindingsPanel(QWidget):
    """The findings of the series on screen (see the module docstring)."""

    def __init__(self, ai: AIState, view: ViewState, crosshair: CrosshairState, review: FindingReview,
                 reports: ReportState | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ai, self.view, self.crosshair, self.review = ai, view, crosshair, review
        self.note = QLabel(NOTE, self)
        self.note.setWordWrap(True)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.accept_button = QPushButton("Accept", self)
        self.reject_button = QPushButton("Reject", self)
        self.accept_button.setToolTip("keep it: its long axis joins the Measurements, its image is labelled positive")
        self.reject_button.setToolTip("not a nodule: its image is labelled negative there (a hard negative)")
        edit = ai.contour_edit
        self.edit_button = QPushButton("Edit outline", self)
        self.edit_button.setCheckable(True)
        self.edit_button.setToolTip("drag in any view to add to the selected finding's outline; Shift+drag erases")
        self.brush = QDoubleSpinBox(self)
        self.brush.setRange(*RADIUS_RANGE_MM)
        self.brush.setSingleStep(0.5)
        self.brush.setDecimals(1)
        self.brush.setSuffix(" mm")
        self.brush.setValue(edit.radius_mm)
        self.brush.setToolTip("the brush's radius")
        self.revert_button = QPushButton("Revert", self)
        self.revert_button.setToolTip("give the selected finding the AI's own outline back")
        buttons = QHBoxLayout()
        for widget in (self.accept_button, self.reject_button, self.edit_button, self.brush, self.revert_button):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        self.lungs_box = QCheckBox("Lung mask", self)
        self.lungs_box.setToolTip("outline the lungs the findings are looked for in (threshold and morphology)")
        self.lungs_status = QLabel("", self)
        lungs = QHBoxLayout()
        lungs.addWidget(self.lungs_box)
        lungs.addWidget(self.lungs_status, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addLayout(lungs)
        #: The findings of structured reports on the series (hidden while there are none).
        self.report_findings = ReportFindings(reports, view, crosshair, self) if reports is not None else None
        if self.report_findings is not None:
            layout.addWidget(self.report_findings)
        self.lungs_box.toggled.connect(ai.lungs.set_visible)
        ai.lungs.sig_status.connect(self.lungs_status.setText)
        self.accept_button.clicked.connect(lambda: self._decide(self.review.accept))
        self.reject_button.clicked.connect(lambda: self._decide(self.review.reject))
        self.revert_button.clicked.connect(lambda: self._decide(self.review.revert))
        self.edit_button.toggled.connect(edit.set_active)
        edit.sig_active_changed.connect(self.edit_button.setChecked)
        self.brush.valueChanged.connect(edit.set_radius)
        review.sig_changed.connect(lambda: self._fill(self.ai.findings()))
        self._findings: list = []
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        ai.sig_findings_changed.connect(self._fill)
        ai.sig_status_changed.connect(lambda _text: self._update_status())
        self._fill(ai.findings())

    def rows(self) -> list[tuple[str, ...]]:
        """The table's text, row by row (tests)."""
        return [tuple(self.table.item(r, c).text() for c in range(len(COLUMNS))) for r in range(self.table.rowCount())]

    def _update_status(self) -> None:
        ai = self.ai
        if ai.findings() is not None:
            n = len(self._findings)
            text = f"{n} finding{'s' if n != 1 else ''}" if n else "no nodules found"
        elif ai.applies():
            text = f"no findings: {ai.applies()}"
        elif self.view.series is None:
            text = "no series open"
        else:
            text = "the findings come when the whole series is analysed…"
        self.status.setText(text)

    def _fill(self, found) -> None:
        volume = self.view.volume
        self._findings = list(found.findings) if found is not None and volume is not None else []
        records = [finding_record(volume, f, found.midline_col) for f in self._findings]
        with QSignalBlocker(self.table):
            self.table.setRowCount(len(records))
            for r, record in enumerate(records):
                texts = (*row_texts(record), self.review.status(self._findings[r]))
                for c, text in enumerate(texts):
                    item = QTableWidgetItem(text)
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                    if c == 1:
                        x, y, z = record["center_mm"]
                        item.setToolTip(f"centre (LPS) {x:.1f}, {y:.1f}, {z:.1f} mm; {record['segmentation']}")
                    self.table.setItem(r, c, item)
            self.table.resizeColumnsToContents()
            selected = self.ai.selected_finding
            for r, f in enumerate(self._findings):
                if f.id == selected:
                    self.table.selectRow(r)
        self._update_status()
        self._enable()

    def selected(self):
        """The selected finding, or None."""
        chosen = self.ai.selected_finding
        return next((f for f in self._findings if f.id == chosen), None)

    def _enable(self) -> None:
        on = self.selected() is not None
        for button in (self.accept_button, self.reject_button, self.edit_button, self.revert_button):
            button.setEnabled(on)
        if not on:
            self.ai.contour_edit.set_active(False)  # nothing to paint

    def _decide(self, action) -> None:
        finding = self.selected()
        if finding is not None:
            action(finding)

    def _on_row_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if not rows:
            self.ai.select_finding(None)
        else:
            self.show_finding(self._findings[min(rows)].id)
        self._enable()

    def show_finding(self, finding_id: int) -> None:
        """Select finding ``finding_id`` and centre every view on it."""
        finding = next((f for f in self._findings if f.id == finding_id), None)
        if finding is None:
            return
        self.ai.select_finding(finding_id)
        self.crosshair.set_voxel(tuple(int(round(v)) for v in finding.centre))
