"""Soak: thousands of real slice changes and paints in the real SliceView, no leak and no crash.

PySide6 6.12.0 on Python 3.11 leaked one reference to ``None`` per Python paint override (pyqtgraph's
``ImageItem.paint`` is one) and aborted with ``Fatal Python error: none_dealloc`` after ~3,000 repaints.
We pin PySide6 < 6.12 on 3.11; this test proves the pin (or a fixed release) holds.
"""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QApplication

from viewer.qt.slice_view import SliceView

STEPS = 5000


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: its refcount is fixed")
def test_5000_slice_changes_do_not_leak_none(qtbot, sync_controller, ct_folder):
    view = SliceView(sync_controller)
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    qtbot.waitExposed(view)
    c = sync_controller
    c.open_paths([ct_folder])
    assert c.loaded
    item = view.image_item
    painted = 0
    app = QApplication.instance()
    n = c.n_slices
    # warm up caches (LUT, QImage paths, font glyphs) before the baseline
    for i in range(50):
        c.set_slice(i % n)
        view.viewport().repaint()
    app.processEvents()
    before = sys.getrefcount(None)
    for step in range(STEPS):
        c.set_slice((step * 5) % n if c.slice_index != (step * 5) % n else (step * 5 + 1) % n)
        view.viewport().repaint()  # a synchronous paint: ImageItem.paint runs every step
        painted += not item._renderRequired  # setImage sets it, only ImageItem.paint clears it
        if step % 10 == 0:
            app.processEvents()
        if step % 500 == 0:
            assert not view.grab().isNull()
    app.processEvents()
    drift = sys.getrefcount(None) - before
    print(f"\nsoak: {STEPS} slice changes, refcount(None) drift {drift}")
    assert painted == STEPS
    assert abs(drift) < 100
