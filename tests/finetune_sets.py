"""Labelled CT slices for the fine-tune engine's tests: the two demo CTs (pyradiomics lung1 and lung2, cached
by ``radview demo``) at 256 px with solid 10-20 mm nodules inserted by ``models.demo.simulate``, cut into
blocks of 12 slices that act as patients (a block never straddles two splits, so 2.5D neighbours never leak
across them), split train/val/test by block. About 80 slices, ~3 s to make.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.demo.simulated_slices import simulated_nodule_slices
from models.demo.training_data import context_stack
from models.finetune.datasets import TrainingSet
from viewer.base.preprocess_config import PreprocessConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "models" / "demo-nodule"
BLOCK = 12
#: A small input for quick runs from scratch.
SMALL = PreprocessConfig(size=64)


def _demo_volumes() -> list[tuple[str, np.ndarray, tuple[float, float, float], np.ndarray]]:
    import SimpleITK as sitk

    from viewer.core.demo import ensure_demo_study
    from viewer.core.scan import scan
    from viewer.core.volume import load_volume

    study = ensure_demo_study()
    out = []
    for name, folder, label in (("lung1", study.lung1, study.lung1_label), ("lung2", study.lung2, study.lung2_label)):
        (series,) = scan(folder).series
        volume = load_volume(series)
        hu = volume.stored.astype(np.float32) * volume.slope + volume.intercept
        z, h, w = hu.shape
        hu = hu.reshape(z, h // 2, 2, w // 2, 2).mean(axis=(2, 4))  # 256 px, 2x the pixel spacing
        lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(label)))[:, ::2, ::2] > 0
        row, col = series.first.pixel_spacing
        out.append((name, hu, (series.geometry.slice_spacing, 2 * row, 2 * col), lesion))
    return out


def demo_slices(diameter_mm: tuple[float, float] = (10.0, 20.0)) -> dict:
    """HU context stacks (z-1, z, z+1), labels and pseudo-patient per slice, already split by patient;
    ``diameter_mm``: the inserted nodules' range (smaller ones are harder)."""
    stacks, labels, groups = [], [], []
    for name, hu, spacing, lesion in _demo_volumes():
        sim = simulated_nodule_slices(hu, spacing, n_nodules=10, diameter_mm=diameter_mm, seed=1, exclude=lesion)
        for k in sim.positives + sim.negatives:
            stacks.append(context_stack(sim.volume, [k], 1)[0])
            labels.append(int(sim.labels[k]))
            groups.append(f"{name}-{k // BLOCK}")
    patients = sorted(set(groups))
    split = {"train": patients[0::3], "val": patients[1::3], "test": patients[2::3]}
    out = {}
    for name, members in split.items():
        idx = [i for i, g in enumerate(groups) if g in members]
        out[name] = (np.stack([stacks[i] for i in idx]), np.array([labels[i] for i in idx]), [groups[i] for i in idx])
        assert 0 < out[name][1].sum() < len(idx), name  # both classes in every split
    return out


def sets_for(slices: dict, cfg: PreprocessConfig) -> dict[str, TrainingSet]:
    return {k: TrainingSet.from_hu(hu, y, cfg, groups=g) for k, (hu, y, g) in slices.items()}
