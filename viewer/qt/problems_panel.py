"""Everything that could not be shown, with the reason: one list, no pop-up per file.

Groups: files skipped by the scan (path + reason), series warnings (ordering, spacing, splits), slices
that failed to decode while loading (``Volume.failed``), and errors from background work. Files that are
not DICOM at all are only counted, on one line.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHeaderView, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from viewer.qt.controller import Problems, ViewerController

#: Rows listed per group at most (a folder of 100,000 foreign files must not freeze the UI).
MAX_ROWS_PER_GROUP = 2000


class ProblemsPanel(QWidget):
    """Tree of problems grouped by kind, plus a count of ignored non-DICOM files."""

    #: Number of listed problems, after each change (the main window puts it in the dock title).
    sig_count_changed = Signal(int)

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Item", "Reason"])
        self.tree.setUniformRowHeights(True)
        self.tree.setRootIsDecorated(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.header().setStretchLastSection(True)
        self.tree.setColumnWidth(0, 260)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree)
        self._problems = Problems()
        controller.sig_problems_changed.connect(self.show_problems)
        self.show_problems(controller.problems())

    @property
    def problems(self) -> Problems:
        return self._problems

    def group_texts(self) -> dict[str, list[tuple[str, str]]]:
        """{group title: [(item, reason), ...]} as displayed (for tests and scripts)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            title = group.text(0).rsplit(" (", 1)[0]
            out[title] = [(group.child(i).text(0), group.child(i).text(1)) for i in range(group.childCount())]
        return out

    def show_problems(self, problems: Problems) -> None:
        self._problems = problems
        self.tree.setUpdatesEnabled(False)
        try:
            self.tree.clear()
            self._group("Skipped files", [(str(s.path), s.reason) for s in problems.skipped])
            self._group("Series warnings", list(problems.series_warnings))
            self._group("Unreadable slices", [
                (f"{f.series}: {f.image or f'slice {f.index + 1}'} ({f.path.name})", f.reason)
                for f in problems.slice_failures
            ])
            self._group(
                "Errors", [(message.split(": ", 1)[0], message.split(": ", 1)[-1]) for message in problems.errors]
            )
            # the reason matters most: the item column takes at most 45 % (full text in the tooltips)
            self.tree.resizeColumnToContents(0)
            cap = max(160, int(self.tree.viewport().width() * 0.45))
            if self.tree.columnWidth(0) > cap:
                self.tree.setColumnWidth(0, cap)
        finally:
            self.tree.setUpdatesEnabled(True)
        parts = []
        if problems.count:
            parts.append(f"{problems.count} problem(s)")
        else:
            parts.append("No problems.")
        if problems.not_dicom:
            parts.append(f"{problems.not_dicom} non-DICOM file(s) ignored")
        self.summary.setText(" · ".join(parts))
        self.sig_count_changed.emit(problems.count)

    def _group(self, title: str, rows: list[tuple[str, str]]) -> None:
        if not rows:
            return
        group = QTreeWidgetItem(self.tree, [f"{title} ({len(rows)})", ""])
        group.setFirstColumnSpanned(True)
        font = group.font(0)
        font.setBold(True)
        group.setFont(0, font)
        for item_text, reason in rows[:MAX_ROWS_PER_GROUP]:
            child = QTreeWidgetItem(group, [item_text, reason])
            child.setToolTip(0, item_text)
            child.setToolTip(1, reason)
        if len(rows) > MAX_ROWS_PER_GROUP:
            QTreeWidgetItem(group, [f"… and {len(rows) - MAX_ROWS_PER_GROUP} more", ""])
        group.setExpanded(True)
