"""``radview screenshot`` renders coronal, sagittal and slab views: with --view-only the picture is just the
image, so a marker lands where the geometry says and a slab equals the projection computed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from marked_ct import COLS, MARKERS, PIXEL_MM, ROWS, SLICE_MM, SLICES
from PIL import Image

from viewer.cli import main

SIZE = 256


def shot(tmp_path: Path, folder: Path, *args: str) -> np.ndarray:
    out = tmp_path / "shot.png"
    assert main(["screenshot", str(folder), "--out", str(out), "--size", f"{SIZE}x{SIZE}", "--view-only",
                 "--preset", "bone", *args]) == 0
    return np.asarray(Image.open(out).convert("L"))


def bright(image: np.ndarray) -> np.ndarray:
    """(row, col) of the pixels of the brightest blobs."""
    return np.argwhere(image > 128)


def expected_xy(v: float, u: float, height_mm: float, width_mm: float, spacing: tuple[float, float]):
    """Where pixel (v, u) of an image of height_mm × width_mm lands when fitted into SIZE², centred."""
    scale = SIZE / max(height_mm, width_mm)
    x0, y0 = (SIZE - width_mm * scale) / 2, (SIZE - height_mm * scale) / 2
    return y0 + (v + 0.5) * spacing[0] * scale, x0 + (u + 0.5) * spacing[1] * scale


@pytest.mark.parametrize("plane, index, v, u, height, width, spacing", [
    # coronal N is row N of the axial image: the marker's slice is the vertical, its column the horizontal
    ("coronal", MARKERS[0][1], MARKERS[0][0], MARKERS[0][2], SLICES * SLICE_MM, COLS * PIXEL_MM, (SLICE_MM, PIXEL_MM)),
    # sagittal N is column N: slice vertical, row horizontal (anterior on the left)
    ("sagittal", MARKERS[0][2], MARKERS[0][0], MARKERS[0][1], SLICES * SLICE_MM, ROWS * PIXEL_MM, (SLICE_MM, PIXEL_MM)),
])
def test_a_reformatted_view_puts_the_marker_where_the_geometry_says(qtbot, tmp_path, marked_folder, plane, index,
                                                                    v, u, height, width, spacing) -> None:
    image = shot(tmp_path, marked_folder, "--plane", plane, "--slice", str(index))
    assert image.shape == (SIZE, SIZE)
    found = bright(image)
    assert len(found), "the marker is not in the picture"
    y, x = found.mean(axis=0)
    ey, ex = expected_xy(v, u, height, width, spacing)
    assert abs(y - ey) <= 2.0 and abs(x - ex) <= 2.0, ((y, x), (ey, ex))
    off = shot(tmp_path, marked_folder, "--plane", plane, "--slice", str(index + 3))
    assert not len(bright(off))  # three images further the plane misses the marker


def test_a_mip_slab_shows_markers_the_thin_plane_misses(qtbot, tmp_path, marked_folder) -> None:
    k, r, c = MARKERS[0]
    thin = shot(tmp_path, marked_folder, "--plane", "coronal", "--slice", str(r + 4))
    assert not len(bright(thin))  # 2.4 mm behind the marker
    slab = shot(tmp_path, marked_folder, "--plane", "coronal", "--slice", str(r + 4), "--slab", "6")
    assert len(bright(slab))  # a 6 mm slab (10 rows, r-1 .. r+8) reaches back to it


def test_a_slab_thicker_than_30_mm_is_a_usage_error(capsys, tmp_path, marked_folder) -> None:
    assert main(["screenshot", str(marked_folder), "--out", str(tmp_path / "x.png"), "--slab", "45"]) == 2
    assert "0 to 30 mm" in capsys.readouterr().err
