"""The Measure toolbar: one checkable button per measuring tool, and Off (Escape)."""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QToolBar, QWidget

from viewer.qt.measure_state import TOOLS, MeasureState

#: The button text of each tool.
TOOL_NAMES = {"off": "Off", "line": "Line", "angle": "Angle", "ellipse": "Ellipse", "rectangle": "Rect",
              "freehand": "Freehand", "point": "Probe", "arrow": "Arrow", "text": "Text"}


class MeasureBar(QToolBar):
    """Picks ``state.tool``; follows it when the tool changes elsewhere (Escape)."""

    def __init__(self, state: MeasureState, parent: QWidget | None = None) -> None:
        super().__init__("Measure", parent)
        self.setObjectName("measure_toolbar")
        self.state = state
        group = QActionGroup(self)
        group.setExclusive(True)
        self.actions_by_tool: dict[str, QAction] = {}
        for tool in TOOLS:
            action = QAction(TOOL_NAMES[tool], self)
            action.setCheckable(True)
            action.setToolTip("mouse pans / moves the crosshair; click a measurement to select it" if tool == "off"
                              else f"draw a {tool}")
            action.triggered.connect(lambda _=False, t=tool: state.set_tool(t))
            group.addAction(action)
            self.addAction(action)
            self.actions_by_tool[tool] = action
        state.sig_tool_changed.connect(self._show)
        self._show(state.tool)

    def _show(self, tool: str) -> None:
        self.actions_by_tool[tool].setChecked(True)
