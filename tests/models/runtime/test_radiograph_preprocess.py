"""Radiograph preprocessing: MONOCHROME1 and MONOCHROME2 files of the same anatomy give the same input.

On pydicom-data's real chest CR (RG1, 1955 x 1841, MONOCHROME1, 15 bits): its pixels mirrored into a
MONOCHROME2 file (the window mirrored with them) are the same anatomy as the film shows it; both files go
through the viewer's reading (scan, volume, the slices sent to the model service) and the one
preprocessing function of training and inference.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from models.runtime.preprocess import preprocess, preprocess_stacks, radiograph_plane
from viewer.ai.analysis import presentation, stored_slices
from viewer.base.preprocess_config import PreprocessConfig, Presentation
from viewer.core.scan import scan
from viewer.core.volume import load_volume

CFG = PreprocessConfig(kind="radiograph", size=256, clahe=True)
MAX15 = 2**15 - 1


def _rg1_pair(tmp_path, window: tuple[float, float] | None):
    """RG1 as it is (MONOCHROME1) and mirrored into MONOCHROME2, uncompressed, with ``window`` (and its
    mirror) as the files' VOI window (None: RG1's own, which spans the whole 15-bit range)."""
    ds = dcmread(get_testdata_file("RG1_UNCI.dcm"))
    pixels = ds.pixel_array.astype(np.uint16)
    paths = []
    for name, photometric, image in (("mono1", "MONOCHROME1", pixels), ("mono2", "MONOCHROME2", MAX15 - pixels)):
        out = ds.copy()
        out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        out.PhotometricInterpretation = photometric
        out.PixelData = np.ascontiguousarray(image).tobytes()
        out.SeriesInstanceUID = generate_uid()
        out.SOPInstanceUID = out.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if window is not None:
            c, w = window
            out.WindowCenter, out.WindowWidth = (c if name == "mono1" else MAX15 - c), w
        folder = tmp_path / name
        folder.mkdir()
        out.save_as(folder / "image.dcm")
        paths.append(folder)
    return [load_volume(scan(p).series[0]) for p in paths]


@pytest.mark.parametrize("window", [None, (9000.0, 8000.0)], ids=["no window", "a window"])
def test_monochrome1_and_monochrome2_of_the_same_anatomy_give_the_same_input(tmp_path, window) -> None:
    mono1, mono2 = _rg1_pair(tmp_path, window)
    assert mono1.invert and not mono2.invert
    assert (presentation(mono1).window is None) == (window is None)
    inputs = []
    for volume in (mono1, mono2):
        sent = stored_slices(volume, [0], 0)
        assert sent.presentation == presentation(volume)
        inputs.append(preprocess_stacks(sent.distinct_values(), sent.stacks, CFG, sent.presentation))
    a, b = inputs
    assert a.shape == (1, 1, 256, 256)
    np.testing.assert_allclose(a, b, atol=2e-6)
    # bone is bright in both: the spine (centre columns) is brighter than the lung fields beside it
    img = a[0, 0]
    assert img[80:180, 118:138].mean() > img[80:180, 50:90].mean() + 0.1


def test_the_stretch_maps_the_percentiles_to_0_and_1_and_a_window_first() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(1000, 200, (1, 400, 400)).astype(np.float32)
    out = radiograph_plane(values, CFG, None)
    lo, hi = np.percentile(out[0], (1, 99))
    assert lo == pytest.approx(0, abs=0.01) and hi == pytest.approx(1, abs=0.01)
    # the file's window clips first: values above its top are all white before the stretch
    windowed = radiograph_plane(values, CFG, Presentation(window=(1000.0, 200.0)))
    assert (windowed[0][values[0] > 1100] == 1).all()
    # and the same anatomy inverted with the MONOCHROME1 flag gives the same image
    inverted = radiograph_plane(3000 - values, CFG, Presentation(invert=True, window=(2000.0, 200.0)))
    np.testing.assert_allclose(inverted, windowed, atol=1e-5)


def test_a_radiograph_config_is_one_channel_and_round_trips() -> None:
    assert PreprocessConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ValueError, match="one channel"):
        PreprocessConfig(kind="radiograph", context=1)
    with pytest.raises(ValueError, match="percentiles"):
        PreprocessConfig(kind="radiograph", percentiles=(99, 1))
    assert preprocess(np.zeros((64, 64), np.float32), CFG).shape == (1, 1, 256, 256)
