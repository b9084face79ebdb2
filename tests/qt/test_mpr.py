"""The MPR layout in the window: planes in radiological orientation, the linked crosshair driven with the
mouse, thick slabs and their keys, on a CT written with markers at known positions (0.6 × 0.6 × 5 mm)."""

from __future__ import annotations

import numpy as np
import pytest
from marked_ct import BACKGROUND, COLS, MARKER, MARKERS, PIXEL_MM, SLICE_MM, SLICES
from PySide6.QtCore import QPoint, QPointF, Qt

from viewer.core.planes import plane_image, slab_image
from viewer.qt.view.corner_text import BOTTOM_LEFT


@pytest.fixture
def mpr_window(window, marked_folder):
    window.open_paths([str(marked_folder)])
    assert window.wait_idle(60) and window.controller.loaded
    window.view_grid.set_layout("mpr")
    return window


def views_by_plane(window) -> dict:
    axial, coronal, sagittal, mip = window.view_grid.views
    return {"axial": axial, "coronal": coronal, "sagittal": sagittal, "mip": mip}


def widget_pos(view, v: float, u: float) -> QPoint:
    """Viewport position of the centre of screen pixel (v, u) of the view's image."""
    scene = view.image_item.mapToScene(QPointF(u + 0.5, v + 0.5))
    return view.mapFromScene(scene)


def test_the_mpr_layout_shows_three_planes_in_radiological_orientation(qtbot, mpr_window) -> None:
    views = views_by_plane(mpr_window)
    assert [v.plane for v in mpr_window.view_grid.views] == ["axial", "coronal", "sagittal", "axial"]
    assert views["axial"].orientation_text() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert views["coronal"].orientation_text() == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    assert views["sagittal"].orientation_text() == {"left": "A", "right": "P", "top": "H", "bottom": "F"}
    # the aspect is physical: a coronal image is 24 slices × 5 mm tall and 110 × 0.6 mm wide
    coronal = views["coronal"]
    rect = coronal.image_item.mapRectToParent(coronal.image_item.boundingRect())
    assert rect.height() == pytest.approx(SLICES * SLICE_MM) and rect.width() == pytest.approx(COLS * PIXEL_MM)
    assert views["mip"].slab == (10.0, "mip")
    assert "MIP slab 10 mm" in views["mip"].corner_text(BOTTOM_LEFT)


def test_a_click_on_a_marker_in_the_coronal_view_moves_the_axial_view_to_its_slice(qtbot, mpr_window) -> None:
    w = mpr_window
    c = w.controller
    views = views_by_plane(w)
    coronal = views["coronal"]
    k, r, col = MARKERS[0]
    c.crosshair.set_index(1, r)  # the coronal plane through the marker's row
    image = coronal.displayed_image()
    (v, u), = np.argwhere(image == image.max())  # the marker, found in the pixels on screen
    assert c.slice_index != k
    qtbot.mouseClick(coronal.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos(coronal, v, u))
    assert c.slice_index == k and c.crosshair.voxel == (k, r, col)
    axial = views["axial"]
    shown = axial.displayed_image()
    assert tuple(np.argwhere(shown == shown.max())[0]) == (r, col)
    assert w.view_grid.active is coronal  # the clicked viewport is the active one
    # the reference lines of the other planes cross at the marker in the axial view
    lines = axial.reference_lines()
    assert lines["coronal"].y1() == pytest.approx(r + 0.5) and lines["sagittal"].x1() == pytest.approx(col + 0.5)
    assert "Z: -25.0 mm" in axial.corner_text(BOTTOM_LEFT)  # 60 - 17 × 5


def test_the_readout_in_the_sagittal_view_names_the_voxel_and_its_hounsfield_units(qtbot, mpr_window) -> None:
    w = mpr_window
    c = w.controller
    k, r, col = MARKERS[0]
    c.crosshair.set_voxel((k, r, col))
    sagittal = views_by_plane(w)["sagittal"]
    layout = sagittal.layout
    _, v, u = layout.from_voxel((k, r, col), c.volume.stored.shape)
    readouts = []
    sagittal.sig_cursor_moved.connect(readouts.append)
    target = (k, r, col)

    def hovered() -> bool:
        return bool(readouts) and readouts[-1] is not None and (
            readouts[-1].slice_index, readouts[-1].row, readouts[-1].col) == target

    # pyqtgraph drops hover moves closer than a frame apart, and the pointer may already be there: step on
    for step in range(10):
        qtbot.mouseMove(sagittal.viewport(), widget_pos(sagittal, v + 3 + step, u + 3))
        qtbot.wait(40)
        qtbot.mouseMove(sagittal.viewport(), widget_pos(sagittal, v, u))
        qtbot.wait(40)
        if hovered():
            break
    assert hovered(), readouts[-3:]
    readout = readouts[-1]
    assert (readout.slice_index, readout.row, readout.col) == (k, r, col)
    assert readout.value == pytest.approx(MARKER)
    assert readout.lps == pytest.approx((-30.0 + col * PIXEL_MM, -40.0 + r * PIXEL_MM, 60.0 - k * SLICE_MM))


def test_slab_keys_and_the_slab_equal_the_maximum_over_its_slices(qtbot, mpr_window) -> None:
    w = mpr_window
    c = w.controller
    coronal = views_by_plane(w)["coronal"]
    w.view_grid.set_active(coronal)
    qtbot.keyClick(w, Qt.Key.Key_BracketRight)
    qtbot.keyClick(w, Qt.Key.Key_BracketRight)
    assert coronal.slab == (5.0, "mip")  # off -> 2 -> 5 mm
    assert w.slab_bar.slider.value() == 5
    c.crosshair.set_index(1, MARKERS[0][1] + 2)  # 1.2 mm behind the marker, inside the 5 mm slab
    expected = slab_image(c.volume.stored, coronal.layout, coronal.index(), 5.0, "mip")
    assert expected.max() > BACKGROUND + 100  # the slab reaches the marker
    shown = coronal.displayed_image()
    assert np.array_equal(np.argwhere(shown == shown.max()), np.argwhere(expected == expected.max()))
    qtbot.keyClick(w, Qt.Key.Key_T)
    assert coronal.slab == (5.0, "minip")
    plain = plane_image(c.volume.stored, coronal.layout, coronal.index())
    assert coronal.displayed_image().shape == plain.shape


def test_arrows_in_a_reformatted_view_scroll_its_own_plane(qtbot, mpr_window) -> None:
    w = mpr_window
    c = w.controller
    views = views_by_plane(w)
    sagittal = views["sagittal"]
    w.view_grid.set_active(sagittal)
    before = c.crosshair.voxel
    qtbot.keyClick(w, Qt.Key.Key_Down)  # next image from the patient's right to left: column + 1
    assert c.crosshair.voxel == (before[0], before[1], before[2] + 1)
    assert sagittal.corner_text(BOTTOM_LEFT).startswith(f"Sagittal {before[2] + 2}/{COLS}")
    w.view_grid.set_active(views["axial"])
    qtbot.keyClick(w, Qt.Key.Key_Down)
    assert c.slice_index == before[0] + 1


def test_back_to_one_view_hides_the_crosshair(qtbot, mpr_window) -> None:
    w = mpr_window
    w.view_grid.set_layout("1x1")
    assert len(w.view_grid.views) == 1 and w.slice_view.reference_lines() == {}
    assert w.slice_view.orientation_text()["left"] == "R"
