"""Multiplanar reformat: the axial, coronal and sagittal images of a volume, as numpy views (Qt-free).

The volume is (slice, row, column) in display order. Its three axes point along the patient directions
of :meth:`~viewer.core.geometry.Geometry.direction_matrix` (column, row, slice). Each named plane scrolls
along the volume axis closest to its patient normal: z for axial, y for coronal, x for sagittal. It shows
the other two axes on screen:

- The acquisition plane (the one that scrolls along the slice axis) is shown as stored, as every viewer
  shows the images a scanner wrote.
- A reformatted plane is turned and flipped into radiological orientation, using strides only (never a
  copy of the volume):
  - axial: patient left on the screen's right, posterior at the bottom;
  - coronal: patient left on the right, inferior at the bottom;
  - sagittal: posterior on the right (anterior on the left), inferior at the bottom.

A plane's index counts along its volume axis in stored order (coronal N is row N of an axial image,
sagittal N is column N). :attr:`PlaneLayout.scroll_sign` says which way is "next image" in reading order.

Thick slabs (:func:`slab_image`) project ``count`` neighbouring images of a plane with the maximum (MIP),
the minimum (MinIP) or the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import permutations

import numpy as np

from viewer.core.column_cache import ColumnCache
from viewer.core.geometry import Geometry, display_direction, grid_problems

#: The named planes, in the order the MPR layout shows them.
PLANES = ("axial", "coronal", "sagittal")
#: Thick-slab projections: maximum, minimum and mean intensity.
PROJECTIONS = ("mip", "minip", "mean")
#: Thickest slab the viewer and the command line offer (mm).
MAX_SLAB_MM = 30.0
#: Patient axis (LPS index) each plane scrolls along.
_NORMAL_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}
#: Patient direction that points to the screen's right and down in each plane (radiological convention).
_SCREEN = {
    "axial": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0])),
    "coronal": (np.array([1.0, 0, 0]), np.array([0, 0, -1.0])),
    "sagittal": (np.array([0, 1.0, 0]), np.array([0, 0, -1.0])),
}
#: Letter of each patient direction (+x left, +y posterior, +z head), for orientation markers.
_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))
#: A direction component at least this large (cosine) gets its letter (oblique images show two or three).
LETTER_COSINE = 0.25


@dataclass(frozen=True)
class PlaneLayout:
    """How one plane's images are cut from a volume: which axes, which way round, how big a pixel is.

    Attributes
    ----------
    name:
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    axis:
        The volume axis the plane scrolls along (0 = slices: the acquisition plane).
    v_axis, u_axis:
        The volume axes shown top to bottom and left to right.
    v_flip, u_flip:
        True where that axis is shown against its stored order.
    spacing:
        (vertical, horizontal) size of a screen pixel in mm; the slice axis uses the median spacing.
    step_mm:
        Distance between neighbouring images of this plane (mm).
    scroll_sign:
        +1 when increasing index is the next image in reading order (head to feet, front to back,
        right to left), -1 when it is the previous one.
    directions:
        (3, 3) patient direction of volume axes 0, 1, 2 (rows of the matrix).
    problems:
        Why a reformat of this stack is not true to scale (uneven spacing, gantry tilt); [] when it is.
    """

    name: str
    axis: int
    v_axis: int
    u_axis: int
    v_flip: bool
    u_flip: bool
    spacing: tuple[float, float]
    step_mm: float
    scroll_sign: int
    directions: np.ndarray
    problems: tuple[str, ...] = ()

    @property
    def native(self) -> bool:
        """True for the acquisition plane (its images are the stored slices)."""
        return self.axis == 0

    @property
    def screen_right(self) -> np.ndarray:
        """Patient direction towards the screen's right."""
        return self.directions[self.u_axis] * (-1.0 if self.u_flip else 1.0)

    @property
    def screen_down(self) -> np.ndarray:
        """Patient direction towards the screen's bottom."""
        return self.directions[self.v_axis] * (-1.0 if self.v_flip else 1.0)

    def length(self, shape: tuple[int, ...]) -> int:
        """Number of images of this plane in a volume of ``shape`` (slices, rows, cols)."""
        return int(shape[self.axis])

    def image_shape(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(rows, cols) on screen of this plane's images in a volume of ``shape``."""
        return int(shape[self.v_axis]), int(shape[self.u_axis])

    def to_voxel(self, index: float, v: float, u: float, shape: tuple[int, ...]) -> tuple[float, float, float]:
        """Volume (slice, row, col) of screen pixel (v, u) of image ``index`` (fractions allowed)."""
        voxel = [0.0, 0.0, 0.0]
        voxel[self.axis] = float(index)
        voxel[self.v_axis] = (shape[self.v_axis] - 1 - v) if self.v_flip else float(v)
        voxel[self.u_axis] = (shape[self.u_axis] - 1 - u) if self.u_flip else float(u)
        return voxel[0], voxel[1], voxel[2]

    def from_voxel(self, voxel: Sequence[float], shape: tuple[int, ...]) -> tuple[float, float, float]:
        """(index, v, u) of volume position (slice, row, col): the inverse of :meth:`to_voxel`."""
        v = float(voxel[self.v_axis])
        u = float(voxel[self.u_axis])
        return (float(voxel[self.axis]), (shape[self.v_axis] - 1 - v) if self.v_flip else v,
                (shape[self.u_axis] - 1 - u) if self.u_flip else u)


def volume_directions(geometry: Geometry) -> np.ndarray:
    """(3, 3): the patient direction of increasing slice, row and column index (rows of the matrix)."""
    columns = geometry.direction_matrix()  # columns: increasing column, row, slice index
    return np.stack([columns[:, 2], columns[:, 1], columns[:, 0]])


def _patient_axes(directions: np.ndarray) -> tuple[int, int, int]:
    """The patient axis (0 x, 1 y, 2 z) each volume axis is closest to, one each (best permutation)."""
    best = max(permutations(range(3)), key=lambda p: sum(abs(directions[a, p[a]]) for a in range(3)))
    return best[0], best[1], best[2]


def plane_axes(geometry: Geometry) -> dict[str, int]:
    """The volume axis each plane scrolls along: {"axial": 0, "coronal": 1, "sagittal": 2} for an axial stack."""
    patient = _patient_axes(volume_directions(geometry))
    return {name: patient.index(_NORMAL_AXIS[name]) for name in PLANES}


def plane_layout(geometry: Geometry, name: str, n_slices: int | None = None) -> PlaneLayout:
    """The :class:`PlaneLayout` of plane ``name`` for a stack with this geometry.

    Parameters
    ----------
    geometry:
        The volume's geometry (display order; see :mod:`viewer.core.geometry`).
    name:
        One of :data:`PLANES`.
    n_slices:
        Slices in the volume (default: the geometry's positions).
    """
    if name not in _NORMAL_AXIS:
        raise ValueError(f"unknown plane {name!r}: expected one of {', '.join(PLANES)}")
    directions = volume_directions(geometry)
    axis = plane_axes(geometry)[name]
    n = len(geometry.positions) if n_slices is None else n_slices
    slice_mm = geometry.slice_spacing or 1.0
    size = (slice_mm, float(geometry.pixel_spacing[0]), float(geometry.pixel_spacing[1]))  # per volume axis
    if axis == 0:  # the acquisition plane: as stored
        v_axis, u_axis, v_flip, u_flip = 1, 2, False, False
    else:
        right, down = _SCREEN[name]
        others = [a for a in range(3) if a != axis]
        u_axis = max(others, key=lambda a: abs(directions[a] @ right))
        v_axis = others[0] if others[1] == u_axis else others[1]
        u_flip = bool(directions[u_axis] @ right < 0)
        v_flip = bool(directions[v_axis] @ down < 0)
    problems = tuple(grid_problems(geometry)) if (axis != 0 and n > 1) else ()
    return PlaneLayout(
        name=name, axis=axis, v_axis=v_axis, u_axis=u_axis, v_flip=v_flip, u_flip=u_flip,
        spacing=(size[v_axis], size[u_axis]), step_mm=size[axis],
        scroll_sign=int(display_direction(directions[axis])) if axis != 0 else 1,
        directions=directions, problems=problems,
    )


def native_plane(geometry: Geometry) -> str:
    """The name of the plane the stack was acquired in (its slices are that plane's images)."""
    return next(name for name, axis in plane_axes(geometry).items() if axis == 0)


def oriented(image: np.ndarray, layout: PlaneLayout) -> np.ndarray:
    """An image cut across ``layout.axis`` (the other two volume axes in their stored order), turned and
    flipped as the plane is shown (also for images that are not stored in the volume: heatmaps)."""
    remaining = [a for a in range(3) if a != layout.axis]
    if remaining.index(layout.v_axis) == 1:
        image = image.swapaxes(0, 1)
    if layout.v_flip:
        image = image[::-1]
    if layout.u_flip:
        image = image[:, ::-1]
    return image


def plane_image(stored: np.ndarray, layout: PlaneLayout, index: int, cache: ColumnCache | None = None,
                version: object = None) -> np.ndarray:
    """Image ``index`` of the plane: a strided view of ``stored`` (no copy), (v, u) or (v, u, 3).

    With a :class:`~viewer.core.column_cache.ColumnCache`, an image across the last axis comes from its
    contiguous copy (``version``: the state of the volume's pixels, see there).
    """
    index = int(index)
    if layout.axis == 0:
        image = stored[index]
    elif layout.axis == 1:
        image = stored[:, index]
    elif cache is not None:
        image = cache.columns(stored, index, index + 1, version)[0]
    else:
        image = stored[:, :, index]
    return oriented(image, layout)


def mask_plane(mask: np.ndarray, offset: Sequence[int], shape: Sequence[int], layout: PlaneLayout,
               index: int) -> np.ndarray | None:
    """Image ``index`` of the plane of a boxed mask (``mask`` with its corner at voxel ``offset`` of a
    volume of ``shape``), bool, as the plane shows it; None where the box does not reach the image."""
    axis = layout.axis
    k = int(index) - int(offset[axis])
    if not 0 <= k < mask.shape[axis]:
        return None
    cut = np.take(mask, k, axis=axis)
    rest = [a for a in range(3) if a != axis]
    full = np.zeros((int(shape[rest[0]]), int(shape[rest[1]])), dtype=bool)
    o0, o1 = int(offset[rest[0]]), int(offset[rest[1]])
    full[o0:o0 + cut.shape[0], o1:o1 + cut.shape[1]] = cut
    return oriented(full, layout)


def slab_range(layout: PlaneLayout, index: int, thickness_mm: float, length: int) -> tuple[int, int]:
    """[start, stop) of the images a slab of ``thickness_mm`` centred on image ``index`` projects.

    The slab holds round(thickness / spacing) images (at least one), centred on ``index`` (one more
    after it when the count is even), clipped to the volume.
    """
    count = max(1, int(round(float(thickness_mm) / layout.step_mm))) if thickness_mm > 0 else 1
    start = index - (count - 1) // 2
    stop = start + count
    return max(0, start), min(length, stop)


def slab_image(stored: np.ndarray, layout: PlaneLayout, index: int, thickness_mm: float,
               projection: str = "mip", cache: ColumnCache | None = None, version: object = None) -> np.ndarray:
    """The thick slab centred on image ``index``, projected along the plane's axis (a new array).

    ``"mip"`` and ``"minip"`` keep the stored type (a MIP of stored values is the MIP of modality values,
    the rescale being monotonic with a positive slope); ``"mean"`` is float32 in stored units. ``cache`` and
    ``version``: as for :func:`plane_image`.
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}: expected one of {', '.join(PROJECTIONS)}")
    start, stop = slab_range(layout, int(index), thickness_mm, layout.length(stored.shape))
    axis = layout.axis
    if axis == 2 and cache is not None:  # contiguous columns: reduce over the first axis, as for slices
        block, axis = cache.columns(stored, start, stop, version), 0
    else:
        cut: list[slice] = [slice(None)] * stored.ndim
        cut[axis] = slice(start, stop)
        block = stored[tuple(cut)]
    if projection == "mip":
        image = block.max(axis=axis)
    elif projection == "minip":
        image = block.min(axis=axis)
    else:
        image = block.mean(axis=axis, dtype=np.float32)
    return oriented(image, layout)


def orientation_letters(direction: np.ndarray) -> str:
    """Letters of a patient direction, strongest first ("L", "P", "H", "LH" for an oblique one)."""
    d = np.asarray(direction, dtype=float)
    order = np.argsort(-np.abs(d))
    return "".join(_LETTERS[a][1 if d[a] > 0 else 0] for a in order if abs(d[a]) >= LETTER_COSINE)


def edge_letters(layout: PlaneLayout) -> dict[str, str]:
    """Orientation letters at the middle of each edge of the plane's image: left, right, top, bottom."""
    right, down = layout.screen_right, layout.screen_down
    return {"left": orientation_letters(-right), "right": orientation_letters(right),
            "top": orientation_letters(-down), "bottom": orientation_letters(down)}


def plane_location(geometry: Geometry, layout: PlaneLayout, index: int) -> tuple[str, float]:
    """The patient coordinate the plane's image ``index`` lies at: ("Z", mm) axial, ("Y", mm), ("X", mm).

    For the acquisition plane this is the slice position along the patient axis; for a reformat, the
    coordinate of the image's first voxel along that axis (the plane is perpendicular to it up to the
    acquisition's obliquity).
    """
    patient_axis = _NORMAL_AXIS[layout.name]
    voxel = [0.0, 0.0, 0.0]
    voxel[layout.axis] = float(index)
    point = geometry.voxel_to_patient(*voxel)
    return "XYZ"[patient_axis], float(point[patient_axis])


def screen_to_patient(geometry: Geometry, layout: PlaneLayout, index: float, v: float, u: float,
                      shape: tuple[int, ...]) -> np.ndarray:
    """Patient LPS position (mm) of screen pixel (v, u) of the plane's image ``index``."""
    return geometry.voxel_to_patient(*layout.to_voxel(index, v, u, shape))
