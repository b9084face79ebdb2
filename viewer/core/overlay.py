"""Heatmap colour maps and blending, shared by the viewer's overlay and ``analyze --heatmaps``.

A heatmap value h in [0, 1] gets the colour ``LUT[round(h * 255)]`` and an opacity that is zero below
the display threshold and rises to ``opacity`` at h = 1, so cold regions leave the image untouched.
"""

from __future__ import annotations

import numpy as np

#: Anchor colours (position, R, G, B) of each colour map, interpolated to 256 entries.
_ANCHORS: dict[str, list[tuple[float, int, int, int]]] = {
    "inferno": [(0.0, 0, 0, 4), (0.25, 87, 16, 110), (0.5, 188, 55, 84), (0.75, 249, 142, 9), (1.0, 252, 255, 164)],
    "jet": [(0.0, 0, 0, 131), (0.125, 0, 60, 170), (0.375, 5, 255, 255), (0.625, 255, 255, 0), (0.875, 250, 0, 0),
            (1.0, 128, 0, 0)],
    "hot": [(0.0, 10, 0, 0), (0.375, 255, 0, 0), (0.75, 255, 255, 0), (1.0, 255, 255, 255)],
}
COLORMAPS = tuple(_ANCHORS)


def colormap_lut(name: str) -> np.ndarray:
    """(256, 3) uint8 colour table of a named map."""
    try:
        anchors = np.array(_ANCHORS[name], dtype=np.float64)
    except KeyError:
        raise KeyError(f"unknown colour map {name!r}; choose from {', '.join(COLORMAPS)}") from None
    x = np.linspace(0, 1, 256)
    return np.stack([np.interp(x, anchors[:, 0], anchors[:, k]) for k in (1, 2, 3)], axis=1).round().astype(np.uint8)


def heat_rgba(
    heatmap: np.ndarray, colormap: str = "inferno", opacity: float = 0.5, threshold: float = 0.2
) -> np.ndarray:
    """(H, W, 4) uint8 RGBA of a heatmap: transparent below ``threshold``, ``opacity`` at the peak."""
    h = np.clip(np.asarray(heatmap, dtype=np.float32), 0, 1)
    rgba = np.empty((*h.shape, 4), np.uint8)
    rgba[..., :3] = colormap_lut(colormap)[np.round(h * 255).astype(np.intp)]
    ramp = np.clip((h - threshold) / max(1e-6, 1 - threshold), 0, 1)
    rgba[..., 3] = np.round(255 * opacity * np.where(h >= threshold, 0.35 + 0.65 * ramp, 0)).astype(np.uint8)
    return rgba


def resize_nearest(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes (heatmap grid -> image grid)."""
    rows = np.minimum((np.arange(shape[0]) + 0.5) * image.shape[0] / shape[0], image.shape[0] - 1).astype(np.intp)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * image.shape[1] / shape[1], image.shape[1] - 1).astype(np.intp)
    return image[rows][:, cols]


def blend(grey: np.ndarray, heatmap: np.ndarray, colormap: str = "inferno", opacity: float = 0.5,
          threshold: float = 0.2) -> np.ndarray:
    """(H, W, 3) uint8: an 8-bit grey image with a heatmap (any grid over the same field) laid on it."""
    rgba = heat_rgba(resize_nearest(heatmap, grey.shape[:2]), colormap, opacity, threshold)
    alpha = rgba[..., 3:4].astype(np.float32) / 255
    base = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    return np.round(base * (1 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)
