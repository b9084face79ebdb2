"""Draw radview's application icon: ``resources/icons/radview.svg`` and the PNG/ICO/ICNS made from it.

Run from the repository root (``make icons``)::

    python packaging/make_icons.py

The glyph is an axial CT slice seen by the AI second reader: a dark rounded tile, the body outline
with two dark lungs, and one warm heat spot on the right lung. The SVG is the source; the PNGs are
rendered from it by Qt's SVG renderer at 16-512 px, and Pillow packs them into the Windows ``.ico``
and the macOS ``.icns`` the PyInstaller spec uses.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"

SVG = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512" viewBox="0 0 512 512">
  <title>radview</title>
  <defs>
    <radialGradient id="heat" cx="0.5" cy="0.5" r="0.5">
      <stop offset="0" stop-color="#fff3b0"/>
      <stop offset="0.35" stop-color="#ffb000"/>
      <stop offset="0.75" stop-color="#e8430c" stop-opacity="0.85"/>
      <stop offset="1" stop-color="#e8430c" stop-opacity="0"/>
    </radialGradient>
  </defs>
  <rect x="16" y="16" width="480" height="480" rx="96" fill="#14213d"/>
  <ellipse cx="256" cy="268" rx="196" ry="150" fill="#c9d1dc"/>
  <path d="M236 150 C180 140 110 175 100 250 C92 320 140 372 200 366 C232 362 240 330 240 300 Z"
        fill="#1b2333"/>
  <path d="M276 150 C332 140 402 175 412 250 C420 320 372 372 312 366 C280 362 272 330 272 300 Z"
        fill="#1b2333"/>
  <circle cx="256" cy="372" r="26" fill="#f4f6f8"/>
  <circle cx="344" cy="236" r="74" fill="url(#heat)"/>
</svg>
"""


def render_png(svg: bytes, size: int) -> bytes:
    """The SVG drawn at ``size`` × ``size`` px, PNG-encoded, by QtSvg (antialiased, transparent)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(QByteArray(svg))
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(buffer.data())


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PIL import Image

    ICONS.mkdir(parents=True, exist_ok=True)
    svg = SVG.encode()
    (ICONS / "radview.svg").write_bytes(svg)
    images = {}
    for size in SIZES:
        data = render_png(svg, size)
        (ICONS / f"radview-{size}.png").write_bytes(data)
        images[size] = Image.open(io.BytesIO(data)).convert("RGBA")
    images[256].save(ICONS / "radview.ico", sizes=[(s, s) for s in SIZES if s <= 256],
                     append_images=[images[s] for s in SIZES if s < 256])
    images[512].save(ICONS / "radview.icns", append_images=[images[s] for s in (16, 32, 64, 128, 256)])
    print(f"wrote {ICONS}: radview.svg, {len(SIZES)} PNGs ({SIZES[0]}-{SIZES[-1]} px), radview.ico, radview.icns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
