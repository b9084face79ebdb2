"""A widget as it is on screen, to a PNG file written atomically (screenshots, view and layout exports)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtWidgets import QWidget

from viewer.base.atomic import atomic_write_bytes
from viewer.base.errors import RadviewError


def save_widget_png(widget: QWidget, path: str | Path) -> Path:
    """Grab ``widget`` and write it as PNG at ``path`` (its folder made if missing); the path written.

    Raises
    ------
    RadviewError
        The image could not be encoded.
    """
    pixmap = widget.grab()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not pixmap.save(buffer, "PNG"):
        raise RadviewError(f"could not encode a {pixmap.width()}×{pixmap.height()} image as PNG")
    buffer.close()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(out, bytes(data.data()))
