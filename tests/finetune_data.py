"""Labelled fine-tune data made from the demo CTs with radview's synthetic nodules (tests and benchmarks).

The demo CTs at 256 px with the project's synthetic nodules (10-20 mm, ``models.demo.simulate``), cut into
blocks of 12 slices written as separate DICOM series of separate pseudo-patients (PatientID), so a split
by patient has patients to split; the same slices sorted into ``nodule/`` and ``no nodule/``, and as
8-bit lung-window PNG exports listed in a CSV of ``path,label,patient``. ~80 labelled slices.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from viewer.core.dicom_writer import write_ct_series
from viewer.core.png import write_png

BLOCK = 12


def write_nodule_data(root: Path) -> dict:
    """Series per pseudo-patient (whole blocks) and the same slices sorted into nodule/ and no nodule/.

    Returns ``{"series": folder of the series, "classes": folder per class, "labels": {patient: {slice in
    block: 0/1}}, "csv": the PNG exports' CSV}``.
    """
    import SimpleITK as sitk

    from models.demo.simulated_slices import simulated_nodule_slices
    from viewer.core.demo import ensure_demo_study
    from viewer.core.scan import scan
    from viewer.core.volume import load_volume

    study = ensure_demo_study()
    series_root, classes = root / "series", root / "classes"
    labels: dict[str, dict[int, int]] = {}
    rows: list[str] = []
    for name, folder, label in (("lung1", study.lung1, study.lung1_label), ("lung2", study.lung2, study.lung2_label)):
        (series,) = scan(folder).series
        volume = load_volume(series)
        hu = volume.stored.astype(np.float32) * volume.slope + volume.intercept
        z, h, w = hu.shape
        hu = hu.reshape(z, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
        lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(label)))[:, ::2, ::2] > 0
        row, col = series.first.pixel_spacing
        spacing = (series.geometry.slice_spacing, 2 * row, 2 * col)
        sim = simulated_nodule_slices(hu, spacing, n_nodules=10, diameter_mm=(10.0, 20.0), seed=1, exclude=lesion)
        for b in range(0, z, BLOCK):
            patient = f"{name}-{b // BLOCK}"
            block = np.rint(sim.volume[b : b + BLOCK]).astype(np.int16)
            files = write_ct_series(series_root / patient, block, spacing_xyz=(2 * col, 2 * row, spacing[0]),
                                    origin_lps=(0.0, 0.0, b * spacing[0]), direction=np.eye(3),
                                    series_description=f"{patient} with synthetic nodules", patient_id=patient,
                                    uid_seed=f"finetune test {patient}")
            labels[patient] = {}
            for k, f in enumerate(files):
                y = int(sim.labels[b + k])
                if y < 0:
                    continue  # a nodule's faint edge: neither class
                labels[patient][k] = y
                target = classes / ("nodule" if y else "no nodule")
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, target / f"{patient}_{f.name}")
                # The same slice as an 8-bit lung-window PNG export, listed in a CSV with its patient.
                png = root / "png" / f"{patient}_{k:02d}.png"
                png.parent.mkdir(exist_ok=True)
                write_png(png, np.clip((block[k] + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8))
                rows.append(f"png/{png.name},{'nodule' if y else 'no nodule'},{patient}")
    (root / "labels.csv").write_text("path,label,patient\n" + "\n".join(rows) + "\n")
    return {"series": series_root, "classes": classes, "labels": labels, "csv": root / "labels.csv"}
