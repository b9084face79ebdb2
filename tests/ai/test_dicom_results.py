"""radview's findings as DICOM SEG and TID 1500 SR, written by `radview analyze --seg --sr` on the real demo CT
(lung1), judged by dciodvfy, and read back: each segment lies on the finding's slices with the finding's
volume and centre; each report group carries the finding's measurements, its axis lines as long as the
axes measure, the reader's decisions and lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from pydicom import dcmread

from tests.dicom_validator import errors
from viewer.core.results.read import read_seg, read_sr, seg_sources
from viewer.core.scan import scan


def analyze(lung1, out, data_dir) -> dict:
    env = {**os.environ, "RADVIEW_DATA_DIR": str(data_dir)}
    run = subprocess.run([sys.executable, "-m", "viewer", "analyze", str(lung1), "--no-faithfulness", "--json",
                          str(out / "a.json"), "--seg", str(out / "seg.dcm"), "--sr", str(out / "sr.dcm"),
                          "--sc", str(out / "sc.dcm")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    return json.loads((out / "a.json").read_text())


def texts(ds) -> set[str]:
    """Every TEXT content item's value in a report."""
    out = set()
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == "TEXT":
            out.add(str(item.TextValue))
        out |= texts(item)
    return out


@pytest.fixture(scope="module")
def written(demo_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    doc = analyze(demo_study.lung1, out, out / "data")
    series = max(scan(str(demo_study.lung1)).series, key=lambda s: s.n_slices)
    return out, doc["series"][0], doc["model"], series


def test_the_seg_and_the_sr_pass_dciodvfy(written) -> None:
    out, *_ = written
    assert errors(out / "seg.dcm") == []
    assert errors(out / "sr.dcm") == []
    assert errors(out / "sc.dcm") == []


def test_the_demo_series_and_its_anonymised_export_pass_dciodvfy(demo_study, tmp_path) -> None:
    first = sorted(demo_study.lung1.glob("*.dcm"))[0]
    assert errors(first) == []
    run = subprocess.run([sys.executable, "-m", "viewer", "anonymise", str(demo_study.lung1), str(tmp_path / "anon")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    exported = sorted((tmp_path / "anon").rglob("*.dcm"))
    assert len(exported) == 48 and errors(exported[0]) == [] and errors(exported[-1]) == []


def test_each_segment_lies_where_its_finding_is(written) -> None:
    out, record, _, series = written
    findings = record["findings"]
    assert findings, "the demo CT has findings"
    order = [h.sop_uid for h, _ in series.sources]
    labels = read_seg(out / "seg.dcm", order, series.rows, series.cols, series.geometry.pixel_spacing)
    assert labels.names == {f["id"]: f"AI finding {f['id']}" for f in findings}
    sz = series.geometry.slice_spacing
    voxel_mm3 = series.geometry.pixel_spacing[0] * series.geometry.pixel_spacing[1] * sz
    for f in findings:
        k, r, c = np.nonzero(labels.labels == f["id"])
        assert sorted(set(k.tolist())) == f["slices"]
        assert len(k) * voxel_mm3 == pytest.approx(f["volume_mm3"], rel=0.005)
        centre = series.geometry.voxel_to_patient(k.mean(), r.mean(), c.mean())
        assert np.allclose(centre, f["center_mm"], atol=0.6)
    seg = dcmread(out / "seg.dcm", stop_before_pixels=True)
    assert seg.ContentQualification == "RESEARCH" and "demonstration" in seg.SeriesDescription
    assert seg.StudyInstanceUID == series.study_uid and seg.FrameOfReferenceUID == series.frame_of_reference


def test_the_report_carries_each_finding_and_its_axes(written) -> None:
    out, record, model, series = written
    report = read_sr(out / "sr.dcm")
    seg_uid = str(dcmread(out / "seg.dcm", stop_before_pixels=True).SOPInstanceUID)
    volumes = {g.label: g for g in report.groups if g.kind == "volumetric"}
    axes = {g.label: g for g in report.groups if g.kind == "planar"}
    assert len(volumes) == len(axes) == len(record["findings"])
    for f in record["findings"]:
        g = volumes[f"AI finding {f['id']}"]
        assert g.segment == (seg_uid, f["id"])
        assert g.measurement("Volume") == pytest.approx(f["volume_mm3"], abs=0.05)
        assert g.measurement("Diameter") == pytest.approx(f["diameter_mm"], abs=0.05)
        assert g.measurement("Probability") == pytest.approx(f["probability"], abs=1e-4)
        assert g.evaluations["Reader review"] == "Not reviewed"
        assert g.evaluations["Lung-RADS category suggested"] == f"Lung-RADS {f['lung_rads']}"
        assert np.allclose(g.points["Center"][0], f["center_mm"], atol=0.01)
        a = axes[f"AI finding {f['id']} axes"]
        for name, line in (("Long axis", a.points["Image Region"]), ("Short axis", a.points["Short axis"])):
            assert a.measurement(name) == pytest.approx(f[name.lower().replace(" ", "_") + "_mm"], abs=0.05)
            assert float(np.linalg.norm(line[1] - line[0])) == pytest.approx(a.measurement(name), abs=0.01)
            assert line[0][2] == pytest.approx(line[1][2])  # on one axial image
    sr = dcmread(out / "sr.dcm")
    assert sr.CompletionFlag == "PARTIAL" and sr.VerificationFlag == "UNVERIFIED"
    evidence = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert {h.sop_uid for h in series.files} <= evidence and seg_uid in evidence
    assert f"sha256={model['sha256']}" in texts(sr)  # the algorithm's identification carries the weights' sha256
    assert sr.ContentQualification == "RESEARCH" and "demonstration" in sr.SeriesDescription


def test_the_readers_decisions_and_lines_go_into_the_report(written, demo_study, tmp_path) -> None:
    from viewer.core.finding_decisions import Decision, DecisionStore, finding_key
    from viewer.core.measurement_store import MeasurementStore
    from viewer.core.measurements import Measurement

    _, record, model, series = written
    first, second = record["findings"][:2]
    version = f"{model['name']}@{model['sha256'][:12]}"
    data = tmp_path / "data"
    store = DecisionStore(series.study_uid, root=data)
    for f, status in ((first, "accepted"), (second, "rejected")):
        store.put(Decision(finding_key(series.series_uid, version, f["center_mm"]), series.series_uid, version,
                           tuple(f["center_mm"]), status))
    z = first["center_mm"][2]
    MeasurementStore(series.study_uid, root=data).put(Measurement(
        kind="line", series_uid=series.series_uid, plane="axial", location_mm=z,
        points=((-50.0, -100.0, z), (-20.0, -60.0, z)), text="reader's line"))
    analyze(demo_study.lung1, tmp_path, data)
    report = read_sr(tmp_path / "sr.dcm")
    status = {g.label: g.evaluations.get("Reader review") for g in report.groups if g.kind == "volumetric"}
    assert status[f"AI finding {first['id']}"] == "Accepted by the reader"
    assert status[f"AI finding {second['id']}"] == "Rejected by the reader"
    line = next(g for g in report.groups if g.label == "reader's line")
    assert line.kind == "planar" and line.measurement("Length") == pytest.approx(50.0, abs=1e-6)
    assert errors(tmp_path / "sr.dcm") == []


def test_a_seg_of_another_system_is_read_and_one_off_the_grid_refused() -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("liver_1frame.dcm")  # written by dcmqi (QIICR), a liver on one of three CT images
    ds = dcmread(path, stop_before_pixels=True)
    _, sources = seg_sources(path)
    spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    labels = read_seg(path, sorted(sources), ds.Rows, ds.Columns, spacing)
    assert labels.names == {1: "Liver"} and sum(bool(im.any()) for im in labels.labels) == 1
    from viewer.core.results.seg import ResultsRefused

    with pytest.raises(ResultsRefused, match="grid"):
        read_seg(path, sorted(sources), ds.Rows, ds.Columns, [0.5, 0.5])
    with pytest.raises(ResultsRefused, match="not a TID 1500"):
        read_sr(get_testdata_file("test-SR.dcm"))


def test_info_lists_the_seg_and_the_sr_apart_from_the_series(written, demo_study, tmp_path) -> None:
    import shutil

    out, *_ = written
    folder = tmp_path / "study"
    shutil.copytree(demo_study.lung1, folder)
    shutil.copy(out / "seg.dcm", folder)
    shutil.copy(out / "sr.dcm", folder)
    run = subprocess.run([sys.executable, "-m", "viewer", "info", str(folder), "--json"], capture_output=True,
                         text=True, timeout=120)
    doc = json.loads(run.stdout)
    assert [s["modality"] for s in doc["series"]] == ["CT"] and doc["series"][0]["n_slices"] == 48
    assert [s["path"] for s in doc["segmentations"]] == [str(folder / "seg.dcm")]
    assert doc["reports"] == [str(folder / "sr.dcm")]


def test_the_heatmap_capture_is_the_most_suspicious_slice_marked_derived(written) -> None:
    out, record, _, series = written
    sc = dcmread(out / "sc.dcm")
    top = max(record["slices"], key=lambda r: r["probability"])
    source = dcmread(series.sources[top["index"]][0].path)
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and list(sc.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert sc.StudyInstanceUID == source.StudyInstanceUID and sc.SeriesInstanceUID != source.SeriesInstanceUID
    assert list(sc.PatientOrientation) == ["L", "P"] and "not for diagnosis" in sc.DerivationDescription
    assert [float(v) for v in sc.PixelSpacing] == [float(v) for v in source.PixelSpacing]
    rgb = sc.pixel_array
    assert rgb.shape == (source.Rows, source.Columns, 3)
    coloured = (rgb.max(axis=2).astype(int) - rgb.min(axis=2)) > 40  # the heatmap, where it is laid on
    assert 0 < coloured.mean() < 0.5
