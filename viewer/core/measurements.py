"""The reader's measurements and annotations, in patient millimetres, and what they measure (Qt-free).

A :class:`Measurement` is a line, an angle, an ellipse, rectangle or freehand ROI, a point probe, an arrow
or a text label drawn on one image of one plane, or the mark of a key image (kind "key"). Its points are
kept in patient LPS millimetres, not in pixels: a line measures the same whether it was drawn in the
axial, coronal or sagittal plane, on anisotropic voxels, with the series shown reversed or not, and it
finds its image again from the geometry when the study is opened again. ``plane`` and ``location_mm``
(the plane's position) name the image it was drawn on. ``source`` is "reader" for what the reader drew;
the AI's findings (issue H) will join the same list with their own source.

What it measures (:func:`measure`) is computed from the volume each time, never stored: lengths and
angles from the LPS points, ROI statistics (mean, SD, min, max in modality units, area in mm², pixel
count) from the plane image under the ROI, a point probe's value from its voxel.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.core.geometry import Geometry
from viewer.core.planes import PLANES, PlaneLayout, plane_image, screen_to_patient

#: Every kind, in the order the tool bar offers them; "key" marks a key image (its point: the image's corner).
KINDS = ("line", "angle", "ellipse", "rectangle", "freehand", "point", "arrow", "text", "key")
#: Kinds that enclose pixels (statistics), and how many points each kind needs (None: two or more).
ROI_KINDS = ("ellipse", "rectangle", "freehand")
POINTS = {"line": 2, "angle": 3, "ellipse": 2, "rectangle": 2, "freehand": None, "point": 1, "arrow": 2,
          "text": 1, "key": 1}
SOURCES = ("reader", "ai")


@dataclass(frozen=True)
class Measurement:
    """One measurement or annotation (see the module docstring).

    ``points`` are LPS millimetres: the line's ends, the angle's arm-vertex-arm, an ellipse's or
    rectangle's opposite corners, a freehand outline's vertices, the probe's point, the arrow's tail and
    head, the text's anchor.
    """

    kind: str
    series_uid: str
    plane: str
    location_mm: float
    points: tuple[tuple[float, float, float], ...]
    text: str = ""
    source: str = "reader"
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    author: str = ""
    time: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown measurement kind {self.kind!r}")
        if self.plane not in PLANES:
            raise ValueError(f"unknown plane {self.plane!r}")
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}")
        need = POINTS[self.kind]
        n = len(self.points)
        if (need is not None and n != need) or (need is None and n < 3):
            raise ValueError(f"a {self.kind} needs {need or 'at least 3'} point(s), not {n}")
        for p in self.points:
            if len(p) != 3 or not all(math.isfinite(float(x)) for x in p):
                raise ValueError(f"a point must be three finite millimetre coordinates, not {p!r}")
        if not math.isfinite(float(self.location_mm)):
            raise ValueError("location_mm must be finite")

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "kind": self.kind, "series_uid": self.series_uid, "plane": self.plane,
                "location_mm": round(float(self.location_mm), 4),
                "points": [[round(float(x), 4) for x in p] for p in self.points], "text": self.text,
                "source": self.source, "author": self.author, "time": self.time}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Measurement:
        if not isinstance(d, dict):
            raise TypeError("a measurement must be an object")
        points = d.get("points")
        if not isinstance(points, list):
            raise ValueError("'points' must be a list")
        return cls(kind=str(d.get("kind")), series_uid=str(d.get("series_uid") or ""), plane=str(d.get("plane")),
                   location_mm=float(d.get("location_mm", 0.0)),
                   points=tuple(_point(p) for p in points), text=str(d.get("text") or ""),
                   source=str(d.get("source") or "reader"), uid=str(d.get("uid") or uuid.uuid4().hex),
                   author=str(d.get("author") or ""), time=str(d.get("time") or ""))


def _point(p: Any) -> tuple[float, float, float]:
    if not isinstance(p, (list, tuple)) or len(p) != 3:
        raise ValueError(f"a point must be three millimetre coordinates, not {p!r}")
    return _triple(p)


@dataclass(frozen=True)
class Reading:
    """What a measurement measures; the fields its kind has, the others None."""

    length_mm: float | None = None
    angle_deg: float | None = None
    mean: float | None = None
    sd: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    area_mm2: float | None = None
    pixels: int | None = None
    value: float | None = None
    units: str = ""

    def text(self) -> str:
        """One line: ``49.8 mm``, ``87.2°``, ``mean -3.1 HU  SD 12.0  min -40  max 35  154.2 mm²  428 px``."""
        if self.length_mm is not None:
            return f"{self.length_mm:.1f} mm"
        if self.angle_deg is not None:
            return f"{self.angle_deg:.1f}°"
        units = f" {self.units}" if self.units else ""
        if self.mean is not None:
            return (f"mean {self.mean:.1f}{units}  SD {self.sd:.1f}  min {self.minimum:.0f}  max {self.maximum:.0f}  "
                    f"{self.area_mm2:.1f} mm²  {self.pixels} px")
        if self.pixels == 0:
            return "no pixel inside"
        if self.value is not None:
            return f"{self.value:.0f}{units}"
        return ""


def to_plane(geometry: Geometry, layout: PlaneLayout, shape: tuple[int, ...],
             points: Sequence[Sequence[float]]) -> tuple[float, list[tuple[float, float]]]:
    """(image index, [(v, u), ...]) of LPS points in the plane's screen pixels (pixel centres at integers)."""
    voxels = [geometry.patient_to_voxel(np.asarray(p, dtype=float)) for p in points]
    planar = [layout.from_voxel([float(x) for x in v], shape) for v in voxels]
    index = float(np.mean([p[0] for p in planar]))
    return index, [(p[1], p[2]) for p in planar]


def from_plane(geometry: Geometry, layout: PlaneLayout, shape: tuple[int, ...], index: float,
               points: Sequence[tuple[float, float]]) -> tuple[tuple[float, float, float], ...]:
    """LPS millimetres of screen pixels (v, u) of the plane's image ``index``: the inverse of :func:`to_plane`."""
    return tuple(_triple(screen_to_patient(geometry, layout, index, v, u, shape)) for v, u in points)


def _triple(p: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    return float(p[0]), float(p[1]), float(p[2])


def roi_mask(kind: str, points: Sequence[tuple[float, float]], image_shape: tuple[int, int]) -> np.ndarray:
    """Pixels (their centres) inside an ROI given in screen pixels: ellipse or rectangle by two opposite
    corners, freehand by its outline (even-odd rule). Computed on the ROI's bounding box only."""
    mask = np.zeros(image_shape, dtype=bool)
    pv = [p[0] for p in points]
    pu = [p[1] for p in points]
    r0, r1 = max(0, math.ceil(min(pv))), min(image_shape[0] - 1, math.floor(max(pv)))
    c0, c1 = max(0, math.ceil(min(pu))), min(image_shape[1] - 1, math.floor(max(pu)))
    if r1 < r0 or c1 < c0:
        return mask
    v = np.arange(r0, r1 + 1, dtype=float)[:, None]
    u = np.arange(c0, c1 + 1, dtype=float)[None, :]
    if kind == "rectangle":
        inside = np.ones((len(v), u.shape[1]), dtype=bool)
    elif kind == "ellipse":
        (v0, u0), (v1, u1) = points
        cv, cu = (v0 + v1) / 2, (u0 + u1) / 2
        rv, ru = max(abs(v1 - v0) / 2, 1e-9), max(abs(u1 - u0) / 2, 1e-9)
        inside = ((v - cv) / rv) ** 2 + ((u - cu) / ru) ** 2 <= 1.0
    elif kind == "freehand":
        inside = np.zeros((len(v), u.shape[1]), dtype=bool)
        outline = list(points)
        for (va, ua), (vb, ub) in zip(outline, outline[1:] + outline[:1], strict=True):
            if va == vb:
                continue
            spans = (v >= min(va, vb)) & (v < max(va, vb))  # the edge crosses this pixel row
            inside ^= spans & (u < ua + (v - va) * (ub - ua) / (vb - va))
    else:
        raise ValueError(f"{kind} is not an ROI")
    mask[r0:r1 + 1, c0:c1 + 1] = inside
    return mask


def measure(m: Measurement, stored: np.ndarray, slope: float, intercept: float, geometry: Geometry,
            layout: PlaneLayout, units: str = "") -> Reading:
    """What ``m`` measures on this volume (``layout``: the plane it was drawn in)."""
    pts = np.asarray(m.points, dtype=float)
    if m.kind in ("line", "arrow"):
        return Reading(length_mm=float(np.linalg.norm(pts[1] - pts[0])))
    if m.kind == "angle":
        a, b = pts[0] - pts[1], pts[2] - pts[1]
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        cos = float(a @ b) / norm if norm else 1.0
        return Reading(angle_deg=math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    if m.kind in ("text", "key"):
        return Reading()
    shape = stored.shape
    index, planar = to_plane(geometry, layout, shape, m.points)
    k = int(round(index))
    if not 0 <= k < layout.length(shape):
        return Reading(pixels=0)
    image = plane_image(stored, layout, k)
    if image.ndim == 3:  # colour: statistics of the luminance would be invented; report none
        return Reading()
    if m.kind == "point":
        v, u = (int(round(x)) for x in planar[0])
        if not (0 <= v < image.shape[0] and 0 <= u < image.shape[1]):
            return Reading(pixels=0)
        return Reading(value=float(image[v, u]) * slope + intercept, units=units)
    mask = roi_mask(m.kind, planar, image.shape)
    count = int(mask.sum())
    if count == 0:
        return Reading(pixels=0)
    values = image[mask].astype(np.float64) * slope + intercept
    return Reading(mean=float(values.mean()), sd=float(values.std(ddof=1)) if count > 1 else 0.0,
                   minimum=float(values.min()), maximum=float(values.max()),
                   area_mm2=count * layout.spacing[0] * layout.spacing[1], pixels=count, units=units)
