"""The slice view's text: the DICOM corners, the status-bar read-out under the cursor, and the text block
that draws them (``QGraphicsSimpleTextItem``: C++ items, no Python paint, placed in the viewport's
pixels so the text never scales with the image)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF
from PySide6.QtWidgets import QGraphicsSimpleTextItem

from viewer.core.series import SeriesInfo
from viewer.core.windowing import Window

TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT = "top_left", "top_right", "bottom_left", "bottom_right"
CORNERS = (TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT)


@dataclass(frozen=True)
class CursorReadout:
    """What lies under the mouse: pixel, modality value and patient position."""

    slice_index: int
    row: int
    col: int
    value: float | tuple[int, ...] | None
    units: str
    lps: tuple[float, float, float] | None
    image: str = ""  # the image's name for the reader: "Im 26" (see SeriesInfo.image_label)

    def text(self) -> str:
        """One status-bar line, e.g. ``Im 26   x 120  y 200   -54.0 HU   LPS (-12.3, 40.1, -100.0) mm``."""
        parts = [self.image] if self.image else []
        parts.append(f"x {self.col}  y {self.row}")
        if isinstance(self.value, tuple):
            parts.append("RGB " + ", ".join(str(v) for v in self.value))
        elif self.value is not None:
            value = f"{self.value:.0f}" if float(self.value).is_integer() else f"{self.value:.2f}"
            parts.append(f"{value} {self.units}".strip())
        else:
            parts.append("loading…")
        if self.lps is not None:
            parts.append("LPS ({:.1f}, {:.1f}, {:.1f}) mm".format(*self.lps))
        return "   ".join(parts)


def dicom_date(value: str) -> str:
    """``YYYYMMDD`` -> ``YYYY-MM-DD`` (anything else unchanged)."""
    value = value.strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def person_name(value: str) -> str:
    """DICOM PN ``Family^Given^Middle`` -> ``Family, Given Middle``."""
    parts = [p for p in value.split("^") if p.strip()]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return value.replace("^", " ").strip()


class TextBlock:
    """Lines of text with a 1-pixel dark shadow, each line aligned left, right or centred on an anchor.

    One ``QGraphicsSimpleTextItem`` pair per line (DICOM corner text is right-aligned line by line on
    the right side); only lines whose text changed are touched, so scrolling updates one or two items.
    Lines longer than the block's maximum width are elided, so opposite corners never overlap.
    """

    def __init__(self, scene, font: QFont, color: QColor, align: str = "left", z: float = 10.0) -> None:
        self._scene, self._font, self._color, self._align, self._z = scene, font, color, align, z
        self._metrics = QFontMetricsF(font)
        self._line_height = self._metrics.lineSpacing()
        self._lines: list[tuple[QGraphicsSimpleTextItem, QGraphicsSimpleTextItem]] = []
        self._shown: list[str] = []  # what each line item displays (after eliding)
        self._value = ""
        self._max_width = 1e9
        self._visible = True

    def _item(self, brush: QColor, z: float) -> QGraphicsSimpleTextItem:
        item = QGraphicsSimpleTextItem()
        item.setFont(self._font)
        item.setBrush(brush)
        item.setZValue(z)
        item.setVisible(self._visible)
        self._scene.addItem(item)
        return item

    def set_color(self, color: QColor) -> None:
        """Change the text colour (the shadow stays dark)."""
        if color == self._color:
            return
        self._color = color
        for text, _ in self._lines:
            text.setBrush(color)

    def set_text(self, value: str) -> bool:
        """Set the text ("\n" separates lines); True if it changed (the caller re-anchors)."""
        if value == self._value:
            return False
        self._value = value
        self._update_lines()
        return True

    def set_max_width(self, width: float) -> bool:
        """Elide lines wider than ``width`` pixels; True if that changed what is shown."""
        width = max(width, 20.0)
        if abs(width - self._max_width) < 0.5:
            return False
        self._max_width = width
        return self._update_lines()

    def _update_lines(self) -> bool:
        texts = self._value.split("\n") if self._value else []
        while len(self._lines) < len(texts):
            self._lines.append((self._item(self._color, self._z), self._item(QColor(0, 0, 0, 230), self._z - 0.1)))
            self._shown.append("")
        changed = False
        for k, (text, shadow) in enumerate(self._lines):
            line = texts[k] if k < len(texts) else ""
            if line and self._metrics.horizontalAdvance(line) > self._max_width:
                line = self._metrics.elidedText(line, Qt.TextElideMode.ElideRight, self._max_width)
            if self._shown[k] != line:
                self._shown[k] = line
                text.setText(line)
                shadow.setText(line)
                changed = True
        return changed

    @property
    def value(self) -> str:
        return self._value

    def set_visible(self, visible: bool) -> None:
        self._visible = visible
        for text, shadow in self._lines:
            text.setVisible(visible)
            shadow.setVisible(visible)

    def is_visible(self) -> bool:
        return self._visible

    def size(self) -> tuple[float, float]:
        n = len(self._value.split("\n")) if self._value else 0
        width = max((self._lines[k][0].boundingRect().width() for k in range(n)), default=0.0)
        return width, n * self._line_height

    def place(self, x: float, y: float) -> None:
        """Anchor at ``x`` (left edge, right edge or centre, by alignment) with the first line at ``y``."""
        for k, (text, shadow) in enumerate(self._lines):
            width = text.boundingRect().width()
            left = x if self._align == "left" else (x - width if self._align == "right" else x - width / 2)
            top = y + k * self._line_height
            text.setPos(left, top)
            shadow.setPos(left + 1, top + 1)


def patient_lines(patient: Mapping[str, str]) -> str:
    """The top-left corner: name; ID, birth date and sex; study date and description (empty parts left out)."""
    lines = []
    name = person_name(patient.get("PatientName", ""))
    if name:
        lines.append(name)
    ident = "  ".join(v for v in (
        f"ID {patient['PatientID']}" if patient.get("PatientID") else "",
        f"DOB {dicom_date(patient['PatientBirthDate'])}" if patient.get("PatientBirthDate") else "",
        patient.get("PatientSex", ""),
    ) if v)
    if ident:
        lines.append(ident)
    study = "  ".join(v for v in (dicom_date(patient.get("StudyDate", "")), patient.get("StudyDescription", "")) if v)
    if study:
        lines.append(study)
    return "\n".join(lines)


def image_line(series: SeriesInfo, index: int) -> str:
    """The bottom-left corner's first line: the scanner's image number and the stack position,
    ``"Im 26  23/48"``; the stack position alone where the files' numbers cannot be trusted."""
    position = f"{index + 1}/{series.n_slices}"
    return f"{series.image_label(index)}  {position}" if series.image_numbers is not None else position


def window_lines(window: Window | None, inverted: bool, zoom_percent: float) -> str:
    """The bottom-right corner: the window (none for colour images), inversion, zoom."""
    lines = []
    if window is not None:
        text = f"W: {window.width:.0f} L: {window.center:.0f}"
        if window.name and window.name not in ("auto", "file"):
            text += f" ({window.name})"
        lines.append(text)
    if inverted:
        lines.append("inverted")
    lines.append(f"Zoom: {zoom_percent:.0f}%")
    return "\n".join(lines)
