"""Shared fixtures: where the real test data lives, and offscreen Qt for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from viewer.core.demo import DemoStudy, demo_archive_path, ensure_demo_study, extract_demo_nrrds

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def pydicom_files() -> Path:
    """pydicom's own test files: real images in many syntaxes, plus many deliberately broken files."""
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm")).parent


@pytest.fixture(scope="session")
def pydicom_data() -> Path:
    """pydicom-data's folder: real chest CR, CT and MR, each in every transfer syntax."""
    import data_store

    return Path(data_store.__file__).parent / "data"


@pytest.fixture(scope="session")
def deid_data() -> Path:
    """deid-data: a large DX and an ultrasound cine among others."""
    import deid_data

    return Path(deid_data.__file__).parent


@pytest.fixture(scope="session")
def real_ct_slice(pydicom_data: Path) -> Path:
    """A real 512×512 CT slice (pydicom-data 693_UNCR, uncompressed)."""
    return pydicom_data / "693_UNCR.dcm"


@pytest.fixture
def write_ct_stack(real_ct_slice: Path):
    """Write a stack of real CT slices with chosen positions and orientation into a folder.

    Each slice is the real pixel data rolled by its index (so slices differ and order is checkable
    from pixels), with ImagePositionPatient = origin + k * spacing * normal. File names and
    InstanceNumbers can be shuffled to prove that order comes from geometry.
    """
    import random

    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    def write(
        folder: Path,
        n: int,
        *,
        spacing: float = 2.5,
        orientation=(1, 0, 0, 0, 1, 0),
        origin=(-100.0, -120.0, 50.0),
        series_uid: str | None = None,
        shuffle_names: bool = False,
        random_instance: bool = False,
        seed: int = 0,
        size: int | None = None,
        prefix: str = "",
        head_first: bool = False,
    ) -> list[Path]:
        rng = random.Random(seed)
        folder.mkdir(parents=True, exist_ok=True)
        template = pydicom.dcmread(real_ct_slice)
        pixels = template.pixel_array
        if size is not None:
            pixels = np.ascontiguousarray(pixels[::512 // size, ::512 // size][:size, :size])
        row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
        normal = np.cross(row, col)
        series_uid = series_uid or generate_uid()
        names = [f"{prefix}{i:04d}" for i in range(n)]
        if shuffle_names:
            rng.shuffle(names)
        instances = list(range(1, n + 1))  # the writing order: InstanceNumber 1 lowest along the normal
        if head_first:  # as a scanner numbers a head-first axial series: 1 is the most superior slice
            instances.reverse()
        if random_instance:
            rng.shuffle(instances)
        paths = []
        for k in range(n):
            ds = template.copy()
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = instances[k]
            ds.ImageOrientationPatient = [float(v) for v in orientation]
            ds.ImagePositionPatient = [float(v) for v in np.array(origin) + k * spacing * normal]
            ds.SliceThickness = spacing
            arr = np.roll(pixels, k, axis=1).astype(pixels.dtype)
            ds.Rows, ds.Columns = arr.shape
            ds.PixelData = arr.tobytes()
            path = folder / names[k]
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        return paths

    return write


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Fine-tune data, built once: demo-CT series per pseudo-patient with synthetic nodules, the same slices
    sorted into nodule/ and no nodule/, and PNG exports in a CSV (:func:`finetune_data.write_nodule_data`)."""
    from finetune_data import write_nodule_data

    return write_nodule_data(tmp_path_factory.mktemp("finetune-data"))

@pytest.fixture(scope="session")
def demo_study() -> DemoStudy:
    """The demo study in the real cache (downloaded at most once per machine, then reused)."""
    return ensure_demo_study()


@pytest.fixture(scope="session")
def demo_archive(demo_study: DemoStudy) -> Path:
    """The cached pyradiomics archive, resolved before any test points the cache elsewhere."""
    return demo_archive_path()


@pytest.fixture(scope="session")
def demo_nrrds(demo_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The source NRRD files (``lung1_image``, ``lung1_label``, ...) extracted from the archive."""
    return extract_demo_nrrds(demo_archive, tmp_path_factory.mktemp("demo_nrrds"))


# -- a real PACS (tests/pacs/orthanc_server.py), for the PACS tests and the window's PACS dialog ---------------
# Here, not in tests/pacs/conftest.py, so that one Orthanc serves every folder's tests in a session.

@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """One Orthanc for the session (each test clears what it needs)."""
    from tests.pacs.orthanc_server import start, stop

    server = start(tmp_path_factory.mktemp("orthanc"))
    yield server
    stop(server)


@pytest.fixture(scope="session")
def demo_in_orthanc(orthanc, demo_study):
    """Orthanc holding the two demo CTs (lung1: 48 slices, lung2: 61), uploaded once."""
    from pydicom import dcmread

    files = sorted(demo_study.lung1.glob("*.dcm")) + sorted(demo_study.lung2.glob("*.dcm"))
    orthanc.upload(files)
    uids = {name: str(dcmread(next(getattr(demo_study, name).glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID)
            for name in ("lung1", "lung2")}
    return orthanc, uids
