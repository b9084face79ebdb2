"""Voxel <-> patient coordinates (LPS, millimetres) of a slice stack.

DICOM PS3.3 C.7.6.2.1.1: the patient position P of the pixel in row ``r`` and column ``c`` of a slice is

    P = ImagePositionPatient + c * PixelSpacing[1] * X + r * PixelSpacing[0] * Y

where X (the first triplet of ImageOrientationPatient) points along a row, that is towards increasing
column index, and Y (the second triplet) along a column. PixelSpacing is (row spacing, column spacing):
the distance between rows first. Patient axes are LPS: +x to the patient's left, +y posterior,
+z superior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Two slice positions closer than this (mm) along the normal count as the same position.
POSITION_TOLERANCE_MM = 0.01
#: A slice whose distance from its neighbour differs from the median gap by more than this share is a gap.
GAP_TOLERANCE = 0.05
#: Slice positions further than this from the straight, evenly stepped line of the stack (mm) are refused.
LINE_TOLERANCE_MM = 0.05
#: A stack whose slices step more than this many degrees away from the slice normal is sheared.
SHEAR_TOLERANCE_DEG = 0.5


@dataclass(frozen=True)
class Geometry:
    """Geometry of an ordered stack of parallel slices.

    Attributes
    ----------
    positions:
        (N, 3) ImagePositionPatient of each slice in display order (LPS mm).
    row_dir, col_dir:
        Unit vectors X and Y of ImageOrientationPatient.
    pixel_spacing:
        (row spacing, column spacing) in mm, as in the PixelSpacing tag.
    known:
        False when the files carry no position/orientation (single X-ray, cine): coordinates are then
        in pixel units on an identity frame and must not be reported as patient millimetres.
    """

    positions: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    pixel_spacing: tuple[float, float]
    known: bool = True

    @property
    def normal(self) -> np.ndarray:
        """Slice normal X × Y (the direction in which the stack is sorted)."""
        return np.cross(self.row_dir, self.col_dir)

    @property
    def slice_spacing(self) -> float | None:
        """Median distance between neighbouring slices along the normal (mm); None for one slice."""
        if len(self.positions) < 2:
            return None
        along = self.positions @ self.normal
        return float(np.median(np.abs(np.diff(along))))

    def slice_location(self, index: int) -> float:
        """Signed position of slice ``index`` along the normal (mm), as shown in the corner text."""
        return float(self.positions[index] @ self.normal)

    def voxel_to_patient(self, index: float, row: float, col: float) -> np.ndarray:
        """Patient LPS position (mm) of (slice, row, column); fractional indices interpolate."""
        k0 = int(np.clip(np.floor(index), 0, len(self.positions) - 1))
        k1 = min(k0 + 1, len(self.positions) - 1)
        t = float(index) - k0
        origin = (1 - t) * self.positions[k0] + t * self.positions[k1]
        return origin + col * self.pixel_spacing[1] * self.row_dir + row * self.pixel_spacing[0] * self.col_dir

    def patient_to_voxel(self, point: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`voxel_to_patient`: (slice, row, column) of an LPS point (mm)."""
        point = np.asarray(point, dtype=float)
        normal = self.normal
        along = self.positions @ normal
        if len(along) < 2:
            index = 0.0
        elif along[-1] >= along[0]:
            index = float(np.interp(point @ normal, along, np.arange(len(along))))
        else:  # displayed against the normal (an axial stack from the head down): interp needs it ascending
            index = float(len(along) - 1 - np.interp(point @ normal, along[::-1], np.arange(len(along))))
        k = int(round(index))
        delta = point - self.positions[k]
        return np.array(
            [index, delta @ self.col_dir / self.pixel_spacing[0], delta @ self.row_dir / self.pixel_spacing[1]]
        )

    def direction_matrix(self) -> np.ndarray:
        """3×3 matrix whose columns are the directions of increasing column, row and slice index."""
        if len(self.positions) > 1:
            step = self.positions[-1] - self.positions[0]
            slice_dir = step / np.linalg.norm(step)
        else:
            slice_dir = self.normal
        return np.column_stack([self.row_dir, self.col_dir, slice_dir])


def identity_geometry(n_slices: int, pixel_spacing: tuple[float, float] | None = None) -> Geometry:
    """Geometry for images without patient position (projection X-ray, ultrasound cine)."""
    spacing = pixel_spacing or (1.0, 1.0)
    positions = np.zeros((n_slices, 3))
    positions[:, 2] = np.arange(n_slices)
    return Geometry(
        positions=positions,
        row_dir=np.array([1.0, 0.0, 0.0]),
        col_dir=np.array([0.0, 1.0, 0.0]),
        pixel_spacing=spacing,
        known=False,
    )


def display_direction(normal: np.ndarray) -> float:
    """+1 or -1: how a stack with this slice normal is shown, first slice to last, as radiologists read it.

    The patient axis the normal is closest to decides: axial stacks from superior to inferior (LPS -z),
    coronal from anterior to posterior (+y), sagittal from the patient's right to left (+x). The result is
    the sign of the normal along that reading direction, so sorting by ``sign * (position @ normal)``
    ascending gives the display order whichever way the scanner wrote the normal.
    """
    axis = int(np.argmax(np.abs(normal)))
    reading = (1.0, 1.0, -1.0)[axis]  # x: right -> left is +x; y: anterior -> posterior is +y; z: head first is -z
    return 1.0 if float(normal[axis]) * reading >= 0 else -1.0


def grid_problems(geometry: Geometry) -> list[str]:
    """Why the stack is not one evenly spaced, unsheared grid, or [] when it is.

    A missing slice (a gap), a slice off the straight line of the others, or a stack that steps away from
    its normal (gantry tilt) cannot be described by one origin, spacing and direction per axis: an export
    would shift every slice after a gap, and a reformat would draw the stack with the wrong shape.
    """
    positions = geometry.positions
    if not geometry.known or len(positions) < 2:
        return []
    steps = np.diff(positions, axis=0)
    gaps = np.linalg.norm(steps, axis=1)
    median = float(np.median(gaps))
    odd = np.flatnonzero(np.abs(gaps - median) > GAP_TOLERANCE * median)
    if len(odd):
        k = int(odd[0])
        return [f"the slices are not evenly spaced: {gaps[k]:.2f} mm between stack positions {k + 1} and "
                f"{k + 2} where the median is {median:.2f} mm (a missing slice?); the file holds one spacing"]
    problems = []
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    off_line = np.linalg.norm(positions - (positions[0] + np.outer(np.arange(len(positions)), step)), axis=1)
    if float(off_line.max()) > LINE_TOLERANCE_MM:
        k = int(np.argmax(off_line))
        problems.append(f"stack position {k + 1} lies {off_line[k]:.2f} mm off the line of the other slices")
    cos = abs(float(step @ geometry.normal)) / (float(np.linalg.norm(step)) or 1.0)
    angle = float(np.degrees(np.arccos(min(1.0, cos))))
    if angle > SHEAR_TOLERANCE_DEG:
        problems.append(f"the slices step {angle:.1f}° away from their normal (gantry tilt): the file's grid "
                        f"would be sheared; resample the series first")
    return problems
