"""In the window: image numbers where the reader looks, ↓ goes caudal, and the reverse toggle is remembered."""

from __future__ import annotations

from PySide6.QtCore import Qt

from viewer.qt.main_window import REVERSED_KEY, MainWindow
from viewer.qt.view.corner_text import BOTTOM_LEFT


def test_down_goes_to_the_next_image_towards_the_feet(qtbot, loaded_window) -> None:
    w = loaded_window
    c = w.controller
    c.set_slice(4)
    z = c.volume.geometry.slice_location(4)
    qtbot.keyClick(w.slice_view, Qt.Key.Key_Down)
    assert c.slice_index == 5 and c.volume.geometry.slice_location(5) < z  # caudal
    assert w.slice_view.corner_text(BOTTOM_LEFT).splitlines()[0] == "Im 6  6/12"


def test_the_reverse_toggle_keeps_the_slice_and_is_remembered_for_the_description(qtbot, loaded_window, settings,
                                                                                 ct_folder) -> None:
    w = loaded_window
    c = w.controller
    c.set_slice(2)
    z = c.volume.geometry.slice_location(2)
    c.reverse_display_order()
    assert w.wait_idle(60)
    assert c.slice_index == 9 and c.volume.geometry.slice_location(9) == z  # the same anatomy on screen
    assert w.slice_view.corner_text(BOTTOM_LEFT).splitlines()[0] == "Im 3  10/12"  # its number stays
    assert c.series.image_label(0) == "Im 12"  # now from the feet up
    assert c.series.description in settings.value(REVERSED_KEY)
    assert w.series_browser.tree.currentItem() is not None  # still the series selected in the browser

    again = MainWindow(settings=settings, ai=False)  # a later session, the same settings
    qtbot.addWidget(again)
    again.open_paths([str(ct_folder)])
    assert again.wait_idle(60)
    locations = [again.controller.volume.geometry.slice_location(i) for i in range(12)]
    assert locations == sorted(locations)  # shown feet first, as the reader chose for this description
    again.controller.reverse_display_order()  # and back
    assert again.wait_idle(60)
    assert not again.controller.reversed_descriptions
    again.controller.shutdown()
