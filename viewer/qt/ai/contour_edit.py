"""The outline-editing mode: while it is on, a left drag in any view paints the selected finding's outline
with a disc brush (Shift+drag erases); the views send their strokes here and the finding review
(:class:`viewer.qt.ai.finding_review.FindingReview`) applies them."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from viewer.core.planes import PlaneLayout

#: The brush's radius (mm) to begin with, and its range in the Findings panel.
DEFAULT_RADIUS_MM = 3.0
RADIUS_RANGE_MM = (0.5, 20.0)


@dataclass(frozen=True)
class Stroke:
    """One step of a brush drag: image ``index`` of ``layout``'s plane, at screen pixel ``centre_vu``."""

    layout: PlaneLayout
    index: int
    centre_vu: tuple[float, float]
    erase: bool
    finished: bool  # the last step of the drag (a click is one finished step)


class ContourEdit(QObject):
    """The mode, the brush's radius, and the strokes (see the module docstring)."""

    sig_active_changed = Signal(bool)
    sig_stroke = Signal(object)  # Stroke

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.active = False
        self.radius_mm = DEFAULT_RADIUS_MM

    def set_active(self, on: bool) -> None:
        if bool(on) != self.active:
            self.active = bool(on)
            self.sig_active_changed.emit(self.active)

    def set_radius(self, mm: float) -> None:
        lo, hi = RADIUS_RANGE_MM
        self.radius_mm = min(max(float(mm), lo), hi)

    def stroke(self, layout: PlaneLayout, index: int, centre_vu: tuple[float, float], erase: bool,
               finished: bool) -> None:
        """A view's brush step (ignored unless the mode is on)."""
        if self.active:
            self.sig_stroke.emit(Stroke(layout, int(index), (float(centre_vu[0]), float(centre_vu[1])), bool(erase),
                                        bool(finished)))
