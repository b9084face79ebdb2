"""The demo model's data: two real chest CTs, synthetic nodules, crops for training, whole slices for scoring.

Sources: the pyradiomics 3.0.1 test cases that ``radview demo`` caches (``lung1``: 512 × 512 × 48,
``lung2``: 512 × 512 × 61, 5 mm slices, HU, one real lesion each). ``models`` may not import
``viewer``, so the archive is found here from the same cache convention (``$RADVIEW_CACHE_DIR`` or
the platform's user cache, ``…/demo/downloads/pyradiomics-3.0.1.tar.gz``) or given explicitly.

Split (by patient, as the design notes require):

* **training**: ``lung2`` slices whose 2.5-D context (z−1, z, z+1) does not touch its real lesion
  (label slices ± 1 excluded), clean and with synthetic nodules inserted by :mod:`models.demo.simulate`;
* **calibration / test**: ``lung1``, a patient never seen in training: its slices are split into
  interleaved blocks of 4 (blocks 0, 2, 4, … calibrate the threshold, blocks 1, 3, 5, … measure), with
  synthetic nodules drawn with LIDC's own texture mix and fresh seeds;
* **real lesions**: the lung1 nodule and the lung2 mass, never trained on, scored whole and after
  erasure (:func:`models.demo.simulate.erase_lesion`).

Inputs are made with :func:`models.runtime.preprocess.preprocess` (the one function inference uses too):
whole slices are preprocessed at the card's size and training crops are cut from the preprocessed
slices, so a crop is exactly a piece of what the model sees at inference.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.demo.lung_context import LungContext, load_nrrd, prepare
from models.demo.nodules import NoduleSampler, Simulation
from models.demo.simulate import insert_nodules
from models.runtime.preprocess import preprocess
from viewer.base.preprocess_config import PreprocessConfig

__all__ = [
    "ARCHIVE_NAME",
    "CASE_NAMES",
    "Case",
    "CropBank",
    "DemoDataError",
    "EvalSet",
    "build_crop_bank",
    "build_eval_set",
    "context_stack",
    "default_archive",
    "load_demo_cases",
    "map_targets",
    "preprocess_slices",
    "split_blocks",
    "training_slices",
]

ARCHIVE_NAME = "pyradiomics-3.0.1.tar.gz"
CASE_NAMES = ("lung1", "lung2")
_MEMBER = "pyradiomics-3.0.1/data/{case}_{kind}.nrrd"


class DemoDataError(FileNotFoundError):
    """The demo CTs cannot be found; the message tells the user what to run."""


@dataclass(frozen=True)
class Case:
    """One real CT.

    Attributes
    ----------
    name:
        ``lung1`` or ``lung2``.
    volume:
        ``(Z, H, W)`` float32 HU.
    spacing:
        ``(z, y, x)`` mm.
    lesion:
        ``(Z, H, W)`` bool, the real lesion's label map.
    """

    name: str
    volume: np.ndarray
    spacing: tuple[float, float, float]
    lesion: np.ndarray

    @property
    def lesion_slices(self) -> list[int]:
        return [int(k) for k in np.flatnonzero(self.lesion.reshape(len(self.lesion), -1).any(1))]

    @property
    def n_slices(self) -> int:
        return int(self.volume.shape[0])


def default_archive() -> Path:
    """Where ``radview demo`` keeps the pyradiomics archive (``$RADVIEW_CACHE_DIR`` honoured)."""
    override = os.environ.get("RADVIEW_CACHE_DIR")
    if override:
        root = Path(override)
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("radview"))
    return root / "demo" / "downloads" / ARCHIVE_NAME


def load_demo_cases(
    archive: str | os.PathLike[str] | None = None,
    nrrds: dict[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]] | None = None,
    names: Sequence[str] = CASE_NAMES,
) -> dict[str, Case]:
    """Read the demo CTs and their lesion labels.

    Parameters
    ----------
    archive:
        The pyradiomics source archive (default: :func:`default_archive`).
    nrrds:
        ``{case: (image.nrrd, label.nrrd)}`` instead of the archive.
    names:
        Which cases.

    Raises
    ------
    DemoDataError
        Nothing found: the message says to run ``radview demo`` (which fetches and caches the archive).
    """
    out: dict[str, Case] = {}
    if nrrds:
        for name in names:
            img, lab = nrrds[name]
            out[name] = _case(name, Path(img), Path(lab))
        return out
    path = Path(archive) if archive is not None else default_archive()
    if not path.is_file():
        raise DemoDataError(
            f"demo CT archive not found at {path}. Run `radview demo` first (it downloads and caches "
            f"{ARCHIVE_NAME}), or pass --archive PATH or --nrrd CASE IMAGE LABEL."
        )
    with tempfile.TemporaryDirectory(prefix="radview-demo-") as tmp, tarfile.open(path, "r:gz") as tar:
        wanted = {_MEMBER.format(case=n, kind=k) for n in names for k in ("image", "label")}
        members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
        if len(members) != len(wanted):
            raise DemoDataError(f"{path} lacks {sorted(wanted - {m.name for m in members})}")
        for m in members:
            src = tar.extractfile(m)
            assert src is not None
            (Path(tmp) / Path(m.name).name).write_bytes(src.read())
        for name in names:
            out[name] = _case(name, Path(tmp) / f"{name}_image.nrrd", Path(tmp) / f"{name}_label.nrrd")
    return out


def _case(name: str, image: Path, label: Path) -> Case:
    vol, spacing = load_nrrd(image)
    lab, _ = load_nrrd(label)
    if lab.shape != vol.shape:
        raise DemoDataError(f"{label} has shape {lab.shape}, image {vol.shape}")
    return Case(name=name, volume=vol, spacing=spacing, lesion=lab > 0)


# --- slices -> model input ------------------------------------------------------------------------


def context_stack(volume: np.ndarray, indices: Iterable[int], context: int = 1) -> np.ndarray:
    """``(N, 2·context+1, H, W)`` slices z−c … z+c for each index, edge slices repeated."""
    idx = np.asarray(list(indices), int)
    z = volume.shape[0]
    offs = np.arange(-context, context + 1)
    sel = np.clip(idx[:, None] + offs[None, :], 0, z - 1)
    return volume[sel]


def preprocess_slices(
    volume: np.ndarray, indices: Iterable[int], cfg: PreprocessConfig, *, batch: int = 16
) -> np.ndarray:
    """Model input for slices of a volume: :func:`models.runtime.preprocess.preprocess` of their contexts."""
    idx = list(indices)
    if not idx:
        return np.zeros((0, 0, cfg.size, cfg.size), np.float32)
    parts = [preprocess(context_stack(volume, idx[i : i + batch], cfg.context), cfg) for i in range(0, len(idx), batch)]
    return np.concatenate(parts)


def map_targets(occupancy: np.ndarray, indices: Iterable[int], cfg: PreprocessConfig, stride: int) -> np.ndarray:
    """Location-map targets ``(N, 1, size/stride, size/stride)`` in [0, 1] for slices of an occupancy volume.

    A map cell's target is the largest nodule occupancy among the input pixels it covers, mapped to
    ``clip((occ − 0.15) / 0.35, 0, 1)``: 1 where the nodule fills at least half a voxel, 0 below 15 %
    (a faint partial-volume fringe is neither taught as nodule nor as background).
    """
    import torch
    import torch.nn.functional as F

    idx = list(indices)
    m = cfg.size // stride
    occ = torch.from_numpy(np.ascontiguousarray(occupancy[idx], np.float32))[:, None]
    pooled = F.adaptive_max_pool2d(occ, (m, m)).numpy()
    return np.clip((pooled - 0.15) / 0.35, 0.0, 1.0).astype(np.float32)


def training_slices(case: Case, context: int = 1) -> list[int]:
    """Slices of a case whose input (with its context) does not touch the real lesion."""
    les = set(case.lesion_slices)
    bad = {k + d for k in les for d in range(-context - 1, context + 2)}
    return [k for k in range(case.n_slices) if k not in bad]


def split_blocks(n: int, block: int = 4) -> tuple[list[int], list[int]]:
    """Interleaved blocks of ``block`` slices: (even blocks = calibration, odd blocks = test)."""
    cal = [k for k in range(n) if (k // block) % 2 == 0]
    test = [k for k in range(n) if (k // block) % 2 == 1]
    return cal, test


# --- training crops -------------------------------------------------------------------------------


@dataclass
class CropBank:
    """Precomputed training material (the simulator is never run inside the training loop).

    Attributes
    ----------
    pos_x, pos_t:
        Positive crops ``(P, C, crop, crop)`` float16 around an inserted nodule and their map targets
        ``(P, 1, crop/stride, crop/stride)``.
    pos_info:
        Per positive crop: ``(diameter_mm, texture, kind, calcification)`` of its nodule.
    neg_x:
        Whole clean slices ``(M, C, size, size)`` float16 (negative crops are cut at training time).
    neg_lung:
        ``(M, size/stride, size/stride)`` bool: cells over lung, where most negative crops are centred.
    crop, stride:
        Crop side and map stride (crops start on multiples of ``stride`` so map cells stay aligned).
    """

    pos_x: np.ndarray
    pos_t: np.ndarray
    pos_info: list[tuple[float, str, str, str]]
    neg_x: np.ndarray
    neg_lung: np.ndarray
    crop: int
    stride: int
    n_nodules: int = 0
    n_variants: int = 0
    hard: list[tuple[int, int, int]] = field(default_factory=list)  # (slice, cell row, cell col)

    def negative_crop(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A clean crop (float32) and its all-zero target; a third are mined hard negatives once known."""
        m_cells = self.crop // self.stride
        n_cells = self.neg_x.shape[-1] // self.stride
        if self.hard and rng.random() < 0.4:
            k, r, c = self.hard[int(rng.integers(len(self.hard)))]
            r = int(np.clip(r - m_cells // 2 + rng.integers(-3, 4), 0, n_cells - m_cells))
            c = int(np.clip(c - m_cells // 2 + rng.integers(-3, 4), 0, n_cells - m_cells))
        else:
            k = int(rng.integers(len(self.neg_x)))
            lung = np.argwhere(self.neg_lung[k])
            if len(lung) and rng.random() < 0.75:
                r0, c0 = lung[int(rng.integers(len(lung)))]
            else:
                r0, c0 = rng.integers(0, n_cells, 2)
            r = int(np.clip(r0 - m_cells // 2 + rng.integers(-4, 5), 0, n_cells - m_cells))
            c = int(np.clip(c0 - m_cells // 2 + rng.integers(-4, 5), 0, n_cells - m_cells))
        s = self.stride
        x = self.neg_x[k, :, r * s : r * s + self.crop, c * s : c * s + self.crop].astype(np.float32)
        return x, np.zeros((1, m_cells, m_cells), np.float32)


def _crop_origin(centre: float, size: int, crop: int, stride: int, rng: np.random.Generator) -> int:
    """A crop start (multiple of ``stride``) such that ``centre`` lies inside the crop, away from its edge."""
    lo = max(0.0, centre - crop + 20)
    hi = min(float(size - crop), centre - 20)
    if hi < lo:
        start = np.clip(centre - crop / 2, 0, size - crop)
    else:
        start = rng.uniform(lo, hi)
    return int(np.clip(round(start / stride) * stride, 0, size - crop))


def build_crop_bank(
    case: Case,
    cfg: PreprocessConfig,
    *,
    stride: int,
    crop: int = 128,
    n_variants: int = 60,
    nodules_per_variant: int = 10,
    sampler: NoduleSampler | None = None,
    seed: int = 0,
    ctx: LungContext | None = None,
    slices: Sequence[int] | None = None,
    log: Callable[[str], None] | None = None,
) -> CropBank:
    """Insert nodules into ``n_variants`` copies of a case and cut positive crops; keep clean slices.

    Only ``slices`` (default: :func:`training_slices`) are used: nodule centres lie on them and
    positive crops come from them (where the nodule fills ≥ 50 % of some voxel of that slice).
    """
    rng = np.random.default_rng(seed)
    slices = list(training_slices(case, cfg.context) if slices is None else slices)
    sampler = sampler or NoduleSampler()
    if ctx is None:
        ctx = prepare(case.volume, case.spacing, case.lesion, allowed_slices=slices)
    scale = case.volume.shape[1] / cfg.size
    allowed = set(slices)
    xs, ts, info = [], [], []
    n_nod = 0
    for v in range(n_variants):
        sim = insert_nodules(ctx, sampler.sample_many(rng, nodules_per_variant), rng)
        picks: list[tuple[int, tuple[float, float], tuple]] = []
        for nod in sim.nodules:
            n_nod += 1
            for k in nod.visible_slices(0.5):
                if k in allowed:
                    s = nod.spec
                    picks.append((k, nod.slice_centre[k], (s.diameter_mm, s.texture, s.kind, s.calcification)))
        if not picks:
            continue
        ks = sorted({p[0] for p in picks})
        pos = {k: i for i, k in enumerate(ks)}
        x = preprocess_slices(sim.volume, ks, cfg)
        t = map_targets(sim.occupancy, ks, cfg, stride)
        for k, (cy, cx), meta in picks:
            y0 = _crop_origin(cy / scale, cfg.size, crop, stride, rng)
            x0 = _crop_origin(cx / scale, cfg.size, crop, stride, rng)
            i = pos[k]
            xs.append(x[i, :, y0 : y0 + crop, x0 : x0 + crop].astype(np.float16))
            ts.append(t[i, :, y0 // stride : (y0 + crop) // stride, x0 // stride : (x0 + crop) // stride])
            info.append(meta)
        if log and (v + 1) % max(1, n_variants // 5) == 0:
            log(f"  crop bank: {v + 1}/{n_variants} variants, {len(xs)} positive crops")
    neg = preprocess_slices(case.volume, slices, cfg).astype(np.float16)
    lung = map_targets(ctx.lung.astype(np.float32), slices, cfg, stride)[:, 0] > 0.5
    return CropBank(
        pos_x=np.stack(xs) if xs else np.zeros((0, neg.shape[1], crop, crop), np.float16),
        pos_t=np.stack(ts) if ts else np.zeros((0, 1, crop // stride, crop // stride), np.float32),
        pos_info=info,
        neg_x=neg,
        neg_lung=lung,
        crop=crop,
        stride=stride,
        n_nodules=n_nod,
        n_variants=n_variants,
    )


# --- evaluation sets ------------------------------------------------------------------------------


@dataclass
class EvalSet:
    """Whole slices to score, with labels.

    ``x`` holds the clean slices first (``clean_index`` gives their slice numbers), then the slices
    with a visible synthetic nodule; ``label`` 1 for those, 0 for clean; ``info`` describes the
    largest nodule of each positive slice (``None`` for clean ones); ``slice_index`` the slice number;
    ``block`` 0 (calibration) or 1 (test) for each row.
    """

    x: np.ndarray
    label: np.ndarray
    slice_index: np.ndarray
    block: np.ndarray
    info: list[tuple[float, str, str, str] | None]
    n_variants: int
    n_nodules: int


def build_eval_set(
    case: Case,
    cfg: PreprocessConfig,
    *,
    n_variants: int,
    nodules_per_variant: int = 6,
    sampler: NoduleSampler | None = None,
    seed: int,
    ctx: LungContext | None = None,
    clean_slices: Sequence[int] | None = None,
    block: int = 4,
    ambiguous: tuple[float, float] = (0.1, 0.5),
) -> EvalSet:
    """Clean slices of a case plus slices with synthetic nodules (held-out cases).

    A slice is positive when some inserted nodule fills ≥ ``ambiguous[1]`` of one of its voxels;
    slices where the best nodule stays between ``ambiguous`` (a faint partial-volume trace) are left
    out of the metrics rather than called either. Clean negatives are ``clean_slices`` (default:
    every slice outside the real lesion and its neighbours).
    """
    rng = np.random.default_rng(seed)
    sampler = sampler or NoduleSampler(texture_power=1.0)
    clean = list(training_slices(case, cfg.context) if clean_slices is None else clean_slices)
    if ctx is None:
        ctx = prepare(case.volume, case.spacing, case.lesion)
    cal, _test = split_blocks(case.n_slices, block)
    cal_set = set(cal)
    allowed = set(clean)
    xs = [preprocess_slices(case.volume, clean, cfg)]
    labels = [np.zeros(len(clean), np.int8)]
    sidx = [np.asarray(clean, int)]
    info: list = [None] * len(clean)
    n_nod = 0
    for _ in range(n_variants):
        sim: Simulation = insert_nodules(ctx, sampler.sample_many(rng, nodules_per_variant), rng)
        best: dict[int, tuple[float, tuple]] = {}
        for nod in sim.nodules:
            n_nod += 1
            s = nod.spec
            for k, pk in nod.slice_peak.items():
                if pk >= ambiguous[1] and (k not in best or s.diameter_mm > best[k][0]):
                    best[k] = (s.diameter_mm, (s.diameter_mm, s.texture, s.kind, s.calcification))
        ks = sorted(k for k in best if k in allowed)
        if not ks:
            continue
        xs.append(preprocess_slices(sim.volume, ks, cfg))
        labels.append(np.ones(len(ks), np.int8))
        sidx.append(np.asarray(ks, int))
        info += [best[k][1] for k in ks]
    s_all = np.concatenate(sidx)
    return EvalSet(
        x=np.concatenate(xs),
        label=np.concatenate(labels),
        slice_index=s_all,
        block=np.array([0 if k in cal_set else 1 for k in s_all], np.int8),
        info=info,
        n_variants=n_variants,
        n_nodules=n_nod,
    )
