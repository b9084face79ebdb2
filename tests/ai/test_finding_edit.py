"""The reader's outline corrections, Qt-free: the brush's disc in each plane in millimetres, painting and
erasing a boxed mask, and the corrected mask kept in the decisions file and read back."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.runtime.findings.find import Finding, describe
from viewer.ai.finding_edit import axis_lines, disc_voxels, largest_part, paint, with_axes
from viewer.core.finding_decisions import Decision, DecisionStore, pack_mask, unpack_mask
from viewer.core.geometry import Geometry
from viewer.core.planes import PLANES, plane_layout

SHAPE = (24, 120, 110)  # 5 mm slices of 0.6 mm pixels


def geometry(feet_first: bool = False) -> Geometry:
    step = 5.0 if feet_first else -5.0
    positions = np.array([[-30.0, -40.0, 60.0 + k * step] for k in range(SHAPE[0])])
    return Geometry(positions, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (0.6, 0.6))


@pytest.mark.parametrize("feet_first", [False, True])
@pytest.mark.parametrize("plane", PLANES)
def test_the_brush_is_a_disc_of_its_radius_in_millimetres_in_every_plane(plane, feet_first) -> None:
    layout = plane_layout(geometry(feet_first), plane, SHAPE[0])
    rows, cols = layout.image_shape(SHAPE)
    index, centre, radius = layout.length(SHAPE) // 2, (rows / 2 + 0.3, cols / 2 - 0.2), 6.0
    voxels = disc_voxels(layout, index, centre, radius, SHAPE)
    assert len(voxels) and np.all(voxels[:, layout.axis] == index)
    sv, su = layout.spacing
    back = np.array([layout.from_voxel(v, SHAPE) for v in voxels])
    assert np.all(np.hypot((back[:, 1] - centre[0]) * sv, (back[:, 2] - centre[1]) * su) <= radius + 1e-9)
    # as many pixels as the disc's area holds (few on 5 mm slices: the area is in mm, not in pixels)
    assert len(voxels) == pytest.approx(math.pi * radius ** 2 / (sv * su), rel=0.2)
    assert len(np.unique(voxels, axis=0)) == len(voxels)


def test_a_brush_smaller_than_a_pixel_paints_that_pixel_and_nothing_outside_the_volume() -> None:
    layout = plane_layout(geometry(), "axial", SHAPE[0])
    assert disc_voxels(layout, 3, (10.2, 20.4), 0.1, SHAPE).tolist() == [[3, 10, 20]]
    corner = disc_voxels(layout, 0, (0.0, 0.0), 3.0, SHAPE)
    assert corner.min() >= 0 and len(corner) < math.pi * 25 / 0.36 / 2
    assert not len(disc_voxels(layout, SHAPE[0], (10, 10), 3.0, SHAPE))  # no such image


def test_painting_grows_the_box_and_erasing_shrinks_it_to_what_is_left() -> None:
    layout = plane_layout(geometry(), "axial", SHAPE[0])
    seed = np.ones((1, 1, 1), bool)
    disc = disc_voxels(layout, 5, (40.0, 40.0), 3.0, SHAPE)
    grown, at = paint(seed, (5, 20, 20), disc, add=True)
    assert grown.sum() == len(disc) + 1 and at == (5, 20, 20)
    assert grown.shape == (1, int(disc[:, 1].max()) - 20 + 1, int(disc[:, 2].max()) - 20 + 1)
    left, at = paint(grown, at, disc, add=False)
    assert left.shape == (1, 1, 1) and at == (5, 20, 20) and left.all()
    assert paint(left, at, np.array([[5, 20, 20]]), add=False) is None  # erased whole: nothing left


def test_what_an_eraser_cut_off_is_dropped_and_diagonal_neighbours_stay() -> None:
    mask = np.zeros((3, 10, 10), bool)
    mask[1, 2:6, 2:6] = True
    mask[2, 6, 6] = True  # touches the block at a corner: still part of it
    mask[0, 9, 0] = True  # an island
    kept = largest_part(mask)
    assert kept.sum() == 17 and kept[2, 6, 6] and not kept[0, 9, 0]
    assert np.array_equal(largest_part(kept), kept)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (9, 33, 17)])
def test_a_mask_round_trips_through_its_json(shape) -> None:
    mask = np.random.default_rng(sum(shape)).random(shape) > 0.6
    record = json.loads(json.dumps(pack_mask(mask, (4, 5, 6))))
    back, offset = unpack_mask(record)
    assert offset == (4, 5, 6) and np.array_equal(back, mask)


def test_a_damaged_mask_is_refused_with_the_reason() -> None:
    good = pack_mask(np.ones((2, 3, 4), bool), (0, 0, 0))
    for bad in (dict(good, shape=[2, 3, 5]), dict(good, bits="not base64!"), dict(good, offset=[0, -1, 0]),
                {"shape": [2, 3, 4]}, dict(good, shape=[100_000, 100_000, 100])):
        with pytest.raises(ValueError, match="not a finding's mask"):
            unpack_mask(bad)
    with pytest.raises(ValueError):
        Decision("k", "s", "m", (0.0, 0.0, 0.0), "edited", mask=dict(good, bits=""))


def test_a_corrected_mask_is_kept_with_the_decision_and_an_older_file_without_one_still_reads(tmp_path) -> None:
    mask = np.zeros((3, 4, 5), bool)
    mask[1, 1:3, 1:4] = True
    store = DecisionStore("1.2.3", root=tmp_path)
    store.put(Decision("a", "s", "m", (1.0, 2.0, 3.0), "edited", mask=pack_mask(mask, (7, 8, 9))))
    store.put(Decision("b", "s", "m", (4.0, 5.0, 6.0), "accepted"))
    again = DecisionStore("1.2.3", root=tmp_path)
    back, offset = again.get("a").edited_mask()
    assert np.array_equal(back, mask) and offset == (7, 8, 9)
    assert again.get("b").edited_mask() is None and again.get("a").author
    doc = json.loads(store.path.read_text())
    for d in doc["decisions"]:
        d.pop("mask")
    store.path.write_text(json.dumps(doc))
    assert DecisionStore("1.2.3", root=tmp_path).get("a").edited_mask() is None


def _ellipse_finding(spacing=(2.5, 0.7, 0.6), angle_deg=30.0) -> Finding:
    """A solid ellipse of 14 x 8 mm, tilted, on the middle of three slices, its box at voxel (4, 30, 40)."""
    sz, sy, sx = spacing
    v, u = np.mgrid[0:40, 0:40]
    y, x = (v - 19.5) * sy, (u - 19.5) * sx
    t = math.radians(angle_deg)
    a, b = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    mask = np.zeros((3, 40, 40), bool)
    mask[1] = (a / 7.0) ** 2 + (b / 4.0) ** 2 <= 1.0
    mask[0] = mask[2] = (a / 3.0) ** 2 + (b / 2.0) ** 2 <= 1.0
    hu = np.where(mask, 20.0, -850.0).astype(np.float32)
    measures, kind, category = describe(mask, hu, spacing)
    return Finding(id=1, probability=0.9, centre=(5.0, 49.5, 59.5), box=((4, 30, 40), (7, 70, 80)),
                   slices=(4, 5, 6), measures=measures, kind=kind, lung_rads=category, offset=(4, 30, 40),
                   mask=mask, segmentation="region growing")


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0])
def test_the_axis_lines_are_as_long_as_the_axes_and_cross_on_the_largest_image(angle) -> None:
    spacing = (2.5, 0.7, 0.6)
    f = _ellipse_finding(spacing, angle)
    (l0, l1), (s0, s1) = axis_lines(f, spacing)

    def mm(p, q):
        return math.hypot((q[0] - p[0]) * spacing[1], (q[1] - p[1]) * spacing[2])

    assert mm(l0, l1) == pytest.approx(f.measures.long_axis_mm, abs=1e-6)
    assert mm(s0, s1) == pytest.approx(f.measures.short_axis_mm, abs=1e-6)
    assert f.measures.long_axis_mm == pytest.approx(14.0, abs=1.3)
    assert f.measures.short_axis_mm == pytest.approx(8.0, abs=1.3)
    # in the volume's pixels, around the ellipse's centre, and perpendicular to each other
    for p in (l0, l1, s0, s1):
        assert 30 <= p[0] <= 70 and 40 <= p[1] <= 80
    long_dir = np.array([(l1[0] - l0[0]) * spacing[1], (l1[1] - l0[1]) * spacing[2]])
    short_dir = np.array([(s1[0] - s0[0]) * spacing[1], (s1[1] - s0[1]) * spacing[2]])
    cos = abs(long_dir @ short_dir) / (np.linalg.norm(long_dir) * np.linalg.norm(short_dir))
    assert cos < 0.2


def test_the_readers_axes_change_the_mean_diameter_and_the_category_not_the_mask() -> None:
    f = _ellipse_finding()
    assert f.kind == "solid" and f.lung_rads == "4A"  # 6 <= mean < 8 mm would be 3; about 11 mm is 4A
    bigger = with_axes(f, 17.0, 16.0)
    assert (bigger.measures.long_axis_mm, bigger.measures.short_axis_mm) == (17.0, 16.0)
    assert bigger.measures.diameter_mm == 16.5 and bigger.lung_rads == "4B"
    assert bigger.mask is f.mask and bigger.measures.volume_mm3 == f.measures.volume_mm3
    swapped = with_axes(f, 5.0, 6.0)  # a short line dragged longer than the long one: the longer is long
    assert (swapped.measures.long_axis_mm, swapped.measures.short_axis_mm) == (6.0, 5.0) and swapped.lung_rads == "2"


def test_the_readers_axes_are_kept_with_the_decision_and_bad_ones_refused(tmp_path) -> None:
    store = DecisionStore("1.2.3", root=tmp_path)
    store.put(Decision("a", "s", "m", (1.0, 2.0, 3.0), "accepted", axes_mm=(16.4, 12.9)))
    assert DecisionStore("1.2.3", root=tmp_path).get("a").axes_mm == (16.4, 12.9)
    for bad in ((1.0,), (0.0, 2.0), (float("nan"), 1.0), ("x", 1.0)):
        with pytest.raises(ValueError):
            Decision("a", "s", "m", (1.0, 2.0, 3.0), "accepted", axes_mm=bad)
