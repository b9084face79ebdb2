"""The one real chest radiograph there is (pydicom-data's RG1), and the domain gap measured on it.

RG1 (``RG1_UNCI.dcm``: a PA chest CR, 1955 x 1841, MONOCHROME1, 15 bits) is not a clean chest: it shows
several round opacities in both lungs of its own, not annotated anywhere. So it cannot be a negative, and
one image gives no AUC. What is measured on it instead (:func:`real_cr_report`):

- its probability as it is, and where the map peaks;
- **2-D insertions of our own**: nodules made by the project's simulator in a CT (lung1, its lesion
  erased), projected alone (their stamps, :func:`models.demo.cxr_data.make_stamps`: the nodule's own line
  integral, ribs and vessels not included) and added into RG1's pixels at random points of its lung fields,
  one at a time; each insertion's probability, whether the map peaks on it (within the nodule's radius
  plus 10 mm), and the map's value where it went (the largest within one cell), with it and without it:
  RG1's own opacities hold the image's maximum, so the local response is what says whether the model
  sees an inserted nodule. The same measure on radiographs projected from lung1 (nodules inserted in 3-D) stands beside
  it: the gap between the two is the domain gap.

How a projected nodule enters RG1's pixels: a CR stores the logarithm of the exposure (MONOCHROME1: low
values white, so a nodule, which takes exposure away, lowers them), so the nodule's line integral ``d`` is
subtracted as ``k * d``. ``k`` (stored units per unit of line integral) is RG1's own: the difference of
its median stored value between the lung fields and the mediastinum, over the same difference of line
integrals in a DRR of lung1, whose lung fields its CT gives (:func:`contrast_scale`). RG1's header has
no usable pixel size (PixelSpacing is 0\\0); its thorax spans about as many millimetres as lung2's does
on a DRR, which gives ``RG1_PIXEL_MM`` (0.19 mm), an estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from models.demo.cxr_data import PIXEL_MM, base_projections, make_stamps, patient_context
from models.demo.drr import project_pa
from models.demo.lung_context import LungContext
from models.runtime.preprocess import preprocess, radiograph_plane
from viewer.base.preprocess_config import PreprocessConfig, Presentation

__all__ = ["RG1_PIXEL_MM", "contrast_scale", "drr_lung_fields", "lung_fields", "real_cr_report", "rg1"]

#: RG1's pixel size, mm: an estimate (see the module docstring).
RG1_PIXEL_MM = 0.19
#: RG1's presentation as radview reads it: MONOCHROME1, and its header window (15000/30000 over 15 bits)
#: spans the whole range, so it has none that means anything (viewer.core.volume.Volume.file_window).
RG1_PRESENTATION = Presentation(invert=True, window=None)


def rg1() -> np.ndarray:
    """RG1's stored pixels, float32 (the rescale is the identity)."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCI.dcm")
    if path is None:
        raise FileNotFoundError("pydicom-data's RG1_UNCI.dcm is not installed (pip install pydicom-data)")
    return dcmread(path).pixel_array.astype(np.float32)


def lung_fields(bright_bone: np.ndarray, erode_fraction: float = 0.02) -> np.ndarray:
    """The lung fields of a chest radiograph (values 0..1, bone bright): the two largest dark regions that do
    not touch the border, after heavy smoothing, holes filled, eroded by ``erode_fraction`` of the width."""
    scale = 460 / max(bright_bone.shape)
    small = ndimage.zoom(bright_bone, scale, order=1)
    smooth = ndimage.gaussian_filter(small, 8)
    dark = smooth < 0.6
    labels, n = ndimage.label(dark)
    sizes = ndimage.sum(dark, labels, range(1, n + 1))
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    keep = [i + 1 for i in np.argsort(-sizes) if i + 1 not in border][:2]
    mask = ndimage.binary_fill_holes(np.isin(labels, keep))
    mask = ndimage.binary_erosion(mask, iterations=max(1, int(erode_fraction * small.shape[1])))
    zoom = (bright_bone.shape[0] / mask.shape[0], bright_bone.shape[1] / mask.shape[1])
    return ndimage.zoom(mask.astype(np.float32), zoom, order=0) > 0.5


def _mediastinum(shape: tuple[int, int]) -> np.ndarray:
    """The central strip of a PA chest (columns 46-54 %, rows 30-60 %): spine and mediastinum."""
    mask = np.zeros(shape, bool)
    rows, cols = shape
    mask[int(0.3 * rows):int(0.6 * rows), int(0.46 * cols):int(0.54 * cols)] = True
    return mask


def contrast_scale(stored: np.ndarray, presentation: Presentation, line: np.ndarray, line_lung: np.ndarray) -> float:
    """Stored units per unit of line integral: the lung-to-mediastinum contrast of ``stored`` over that of
    ``line`` (a DRR, whose lung fields ``line_lung`` are known from its CT)."""
    image = radiograph_plane(stored[None], PreprocessConfig(kind="radiograph"), presentation)[0]
    d_stored = abs(float(np.median(stored[lung_fields(image)]) - np.median(stored[_mediastinum(stored.shape)])))
    d_line = float(np.median(line[_mediastinum(line.shape)]) - np.median(line[line_lung]))
    return d_stored / max(d_line, 1e-6)


def drr_lung_fields(ctx: LungContext, min_mm: float = 40.0) -> np.ndarray:
    """Where a PA DRR of ``ctx``'s CT looks through at least ``min_mm`` of lung."""
    p = project_pa(ctx.volume, ctx.spacing, pixel_mm=PIXEL_MM, occupancy=ctx.lung.astype(np.float32))
    assert p.depth_mm is not None
    return p.depth_mm >= min_mm


def _maps(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, location maps (N, h, w)) of prepared radiographs."""
    from models.demo.evaluate import score

    return score(model, x)


def _peak_rc(maps: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """(N, 2) map peaks in the image's pixels."""
    h, w = maps.shape[1:]
    r, c = np.divmod(maps.reshape(len(maps), -1).argmax(1), w)
    return np.stack([(r + 0.5) * image_shape[0] / h, (c + 0.5) * image_shape[1] / w], axis=1)


def _at(maps: np.ndarray, rc: np.ndarray, image_shape: tuple[int, int], reach: int = 1) -> np.ndarray:
    """The largest map value within ``reach`` cells of each point ``rc`` (N, 2) of the image."""
    h, w = maps.shape[1:]
    out = np.empty(len(rc), np.float32)
    for i, (r, c) in enumerate(rc):
        mr, mc = int(r * h / image_shape[0]), int(c * w / image_shape[1])
        out[i] = maps[i, max(0, mr - reach):mr + reach + 1, max(0, mc - reach):mc + reach + 1].max()
    return out


def real_cr_report(model: Any, cfg: PreprocessConfig, threshold: float, *, seed: int, insertions: int = 40,
                   ctx: LungContext | None = None,
                   log: Callable[[str], None] = lambda _m: None) -> dict:
    """RG1 as it is and with ``insertions`` 2-D insertions (see the module docstring); the nodules come from
    ``ctx``, lung1's CT with its lesion erased (:func:`models.demo.cxr_data.patient_context`; made here when
    not given)."""
    from models.demo.training_data import load_demo_cases

    rng = np.random.default_rng(seed)
    stored = rg1()
    ctx = ctx or patient_context(load_demo_cases(names=("lung1",))["lung1"])
    bases = base_projections(ctx)
    k = contrast_scale(stored, RG1_PRESENTATION, bases[0.0], drr_lung_fields(ctx))
    p0, maps0 = _maps(model, preprocess(stored, cfg, RG1_PRESENTATION))
    peak0 = _peak_rc(maps0, stored.shape)
    fields = lung_fields(radiograph_plane(stored[None], cfg, RG1_PRESENTATION)[0])
    candidates = np.argwhere(fields[::8, ::8]) * 8
    xs, truths = [], []
    for stamp in make_stamps(ctx, bases, insertions, rng):
        diameter = stamp.diameter_mm
        zoomed = ndimage.zoom(stamp.line, PIXEL_MM / RG1_PIXEL_MM, order=1)
        r, c = candidates[rng.integers(len(candidates))]
        r0, c0 = int(r - zoomed.shape[0] // 2), int(c - zoomed.shape[1] // 2)
        image = stored.copy()
        rr = slice(max(0, r0), min(image.shape[0], r0 + zoomed.shape[0]))
        cc = slice(max(0, c0), min(image.shape[1], c0 + zoomed.shape[1]))
        image[rr, cc] -= k * zoomed[rr.start - r0:rr.stop - r0, cc.start - c0:cc.stop - c0]
        xs.append(preprocess(np.clip(image, 0, None), cfg, RG1_PRESENTATION)[0])
        truths.append((float(r), float(c), diameter))
    p, maps = _maps(model, np.stack(xs))
    peaks = _peak_rc(maps, stored.shape)
    truth = np.asarray(truths)
    # the map where each nodule went, with it and without it (RG1's own opacities hold the image's maximum)
    local_after = _at(maps, truth[:, :2], stored.shape)
    local_before = _at(np.repeat(maps0, len(truth), axis=0), truth[:, :2], stored.shape)
    reach_px = (truth[:, 2] / 2 + 10.0) / RG1_PIXEL_MM
    on_it = np.hypot(peaks[:, 0] - truth[:, 0], peaks[:, 1] - truth[:, 1]) <= reach_px
    log(f"RG1: p {float(p0[0]):.3f} as it is; {insertions} insertions: median p {float(np.median(p)):.3f}, "
        f"map peak on the nodule in {on_it.mean():.2f}")
    return {
        "image": "pydicom-data RG1_UNCI.dcm (PA chest CR, 1955x1841, MONOCHROME1); it shows round opacities of "
                 "its own, not annotated: not a negative",
        "probability_as_is": round(float(p0[0]), 4),
        "above_threshold_as_is": bool(p0[0] >= threshold),
        "map_peak_as_is_rc": [round(float(v), 1) for v in peak0[0]],
        "insertions": {
            "n": insertions,
            "method": "nodules >= 8 mm (solid or part-solid) simulated in lung1's CT, projected alone (their "
                      "stamps, models.demo.cxr_data) and subtracted from RG1's log-exposure pixels at random "
                      "points of its lung fields, one at a time; "
                      f"contrast scale {k:.1f} stored units per unit of line integral (RG1's "
                      f"lung-to-mediastinum contrast over a lung1 DRR's), pixel {RG1_PIXEL_MM} mm (estimated)",
            "median_probability": round(float(np.median(p)), 4),
            "above_threshold": round(float((p >= threshold).mean()), 4),
            "map_peak_on_the_nodule": round(float(on_it.mean()), 4),
            "map_at_the_nodule_median_before_after": [round(float(np.median(local_before)), 4),
                                                      round(float(np.median(local_after)), 4)],
            "map_at_the_nodule_above_threshold": round(float((local_after >= threshold).mean()), 4),
            "map_at_the_nodule_above_threshold_before": round(float((local_before >= threshold).mean()), 4),
            "by_diameter": {name: {"n": int(rows.sum()),
                                   "above_threshold": round(float((p[rows] >= threshold).mean()), 4),
                                   "map_peak_on_the_nodule": round(float(on_it[rows].mean()), 4),
                                   "map_at_the_nodule_above_threshold":
                                       round(float((local_after[rows] >= threshold).mean()), 4)}
                            for name, rows in (("8-15 mm", truth[:, 2] < 15), (">= 15 mm", truth[:, 2] >= 15))
                            if rows.any()},
        },
    }
