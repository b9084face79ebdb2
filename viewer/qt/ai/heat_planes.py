"""The AI's per-slice heatmaps, reformatted into the other planes (numpy only).

The assistant computes one heatmap per stored slice, on an S × S grid that spans the slice. A coronal
plane of an axial stack crosses every slice along one row: its heat image is that grid row of each slice's
heatmap, one line per slice, in the plane's orientation (:func:`viewer.core.planes.oriented`). No heat
volume is kept: the lines are gathered from the cached heatmaps when the plane is drawn (300 small copies,
about 0.1 ms). A slice without a result, or one below the model's threshold while the overlay shows only
suspicious slices, contributes a cold line, as that slice's own view would show no heat.
"""

from __future__ import annotations

import numpy as np

from viewer.core.planes import PlaneLayout, oriented
from viewer.qt.ai.results import SeriesResults


def heat_plane(results: SeriesResults | None, layout: PlaneLayout, index: int, shape: tuple[int, ...],
               threshold: float, suspicious_only: bool) -> np.ndarray | None:
    """The heat image (uint8, on the plane's screen axes) of image ``index`` of a reformatted plane.

    Parameters
    ----------
    results:
        The model's results on the series (heatmaps by slice index, probabilities).
    layout:
        The plane (its axis must not be the slice axis: that plane shows each slice's own heatmap).
    index:
        The plane's image, counted along its volume axis.
    shape:
        The volume's (slices, rows, cols).
    threshold, suspicious_only:
        The model's threshold and the overlay's "only on slices at or above it".

    Returns
    -------
    numpy.ndarray or None
        None when no slice has a heatmap to show.
    """
    if results is None or not results.heat or layout.axis == 0:
        return None
    grid = next(iter(results.heat.values())).shape  # (S, S)
    along = layout.axis  # 1: a grid row of each slice, 2: a grid column
    line = min(grid[along - 1] - 1, int((index + 0.5) * grid[along - 1] / shape[along]))
    width = grid[1] if along == 1 else grid[0]
    image = np.zeros((shape[0], width), dtype=np.uint8)
    shown = False
    for k, heat in results.heat.items():
        if k >= shape[0] or (suspicious_only and not results.probabilities[k] >= threshold):
            continue
        image[k] = heat[line] if along == 1 else heat[:, line]
        shown = True
    return oriented(image, layout) if shown else None
