"""The chest-radiograph model's analysis as the viewer runs it (issue K), against a plain forward.

A series of :data:`N_IMAGES` copies of pydicom-data's real chest CR (RG1, 1955 x 1841, MONOCHROME1) is swept
by the inference lane (stored images sent to the model service's child process, the radiograph
preprocessing, Grad-CAM, uint8 heatmaps back), ÷ a plain batched forward of the same images (the same
preprocessing + :func:`models.runtime.predict.predict_probabilities`, no heatmaps) in a child process at the
AI process's niceness: :func:`tests.benchmarks.bench_inference.series_analysis`, as for the CT. Target
≤ 1.15.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

N_IMAGES = 20


def _rg1_series(folder: Path, n: int) -> Path:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    ds = dcmread(get_testdata_file("RG1_UNCR.dcm"))
    ds.SeriesInstanceUID = generate_uid()
    for i in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"rg1-{i:02d}.dcm")
    return folder


def run(n_images: int = N_IMAGES) -> dict:
    from tests.benchmarks.bench_inference import _app, _load, series_analysis

    _app()
    folder = Path(tempfile.mkdtemp(prefix="radview-bench-cxr-"))
    try:
        _rg1_series(folder, n_images)
        volume = _load(folder)
        seconds = series_analysis(volume, folder, n_images, model="demo-cxr-nodule")["seconds"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    floor = min(seconds["plain_batch4"], seconds["plain_batch16"])
    return {
        "series": {"images": n_images, "rows": 1955, "cols": 1841},
        "seconds": seconds,
        "ms_per_image": {k: 1000 * v / n_images for k, v in seconds.items()},
        "ratios": {"radiograph_analysis_with_heatmaps_over_plain_forward": seconds["lane"] / floor},
        "targets": {"radiograph_analysis_with_heatmaps_over_plain_forward": 1.15},
    }
