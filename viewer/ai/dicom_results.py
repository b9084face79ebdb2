"""From a series' findings, the reader's decisions and lines to radview's DICOM SEG and SR (Qt-free glue).

:func:`write_results` is what ``radview analyze --seg --sr`` and the window's "Send findings" both call:
it turns each :class:`~models.runtime.findings.find.Finding` (voxel indices) into a
:class:`~viewer.core.results.content.ResultFinding` in the series' LPS millimetres (its centre, its long
and short axis lines exactly as the Findings table and the window draw them, :func:`viewer.ai.finding_edit.
axis_lines`), builds the label volume, reads the source headers in display order, and writes the SEG and
the SR (which references the SEG's segments) atomically.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from models.runtime.findings.find import Finding
from viewer.ai.finding_edit import axis_lines
from viewer.ai.findings import decision_key, findings_labels, voxel_spacing
from viewer.ai.heatmap_picture import heatmap_picture
from viewer.base.atomic import atomic_write_bytes
from viewer.base.model_card import ModelCard
from viewer.core.measurements import Measurement
from viewer.core.results.content import ModelIdentity, ResultFinding, ResultLine
from viewer.core.results.sc import write_sc
from viewer.core.results.seg import ResultsRefused, write_seg
from viewer.core.results.sr import write_sr
from viewer.core.volume import Volume

#: The decision statuses of :mod:`viewer.core.finding_decisions` as the SR states them.
REVIEW = {"accepted": "accepted", "rejected": "rejected"}


def model_identity(card: ModelCard) -> ModelIdentity:
    return ModelIdentity(card.name, str(card.version or ""), card.sha256, bool(card.demonstration))


def source_headers(volume: Volume) -> list[Dataset]:
    """The header of each display slice's file (no pixels), in display order."""
    sources = volume.series.sources
    if any(h.n_frames > 1 for h, _ in sources):
        raise ResultsRefused("a SEG of a multi-frame source is not written yet")
    return [dcmread(h.path, stop_before_pixels=True) for h, _ in sources]


def _lps(volume: Volume, k: float, r: float, c: float) -> tuple[float, float, float]:
    p = volume.geometry.voxel_to_patient(k, r, c)
    return float(p[0]), float(p[1]), float(p[2])


def result_finding(volume: Volume, finding: Finding, segment: int, model_key: str, status: str = "pending",
                   corrected: bool = False) -> ResultFinding:
    """``finding`` in the series' LPS mm, as segment ``segment`` of the SEG, with the reader's ``status``."""
    spacing = voxel_spacing(volume)
    m = finding.measures
    k = m.axes.slice_index + finding.offset[0]
    long_line, short_line = axis_lines(finding, spacing)
    centre = _lps(volume, *finding.centre)
    key = decision_key(volume, model_key, finding)
    return ResultFinding(
        segment=segment, label=f"AI finding {finding.id}",
        tracking_uid=generate_uid(entropy_srcs=["radview-finding", key]), center=centre,
        long_axis_mm=m.long_axis_mm, short_axis_mm=m.short_axis_mm, diameter_mm=m.diameter_mm,
        volume_mm3=m.volume_mm3, kind=finding.kind, probability=float(finding.probability),
        lung_rads=finding.lung_rads, status=REVIEW.get(status, "pending"),
        long_axis=tuple(_lps(volume, k, r, c) for r, c in long_line),  # type: ignore[arg-type]
        short_axis=tuple(_lps(volume, k, r, c) for r, c in short_line),  # type: ignore[arg-type]
        image_index=int(k), corrected=corrected)


def result_lines(measurements: Sequence[Measurement], series_uid: str) -> list[ResultLine]:
    """The reader's lines drawn on ``series_uid`` (the AI's own axis lines are in the findings already)."""
    out = []
    for m in measurements:
        if m.kind == "line" and m.source == "reader" and m.series_uid == series_uid and len(m.points) == 2:
            a, b = (tuple(float(v) for v in p) for p in m.points)
            length = float(np.linalg.norm(np.subtract(b, a)))
            uid = generate_uid(entropy_srcs=["radview-line", m.uid])  # a DICOM UID, the same for the same line
            out.append(ResultLine(uid, m.text or f"Line {length:.1f} mm", (a, b), length))  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class Written:
    """Where the objects went (None: not asked for), and how many findings and lines they hold."""

    seg: Path | None
    sr: Path | None
    findings: int
    lines: int


def _save(ds: Dataset, path: Path) -> Path:
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return atomic_write_bytes(path, buffer.getvalue())


def write_results(volume: Volume, findings: Sequence[Finding], card: ModelCard, *, seg_path: Path | None = None,
                  sr_path: Path | None = None, status: Callable[[Finding], str] = lambda f: "pending",
                  corrected: Callable[[Finding], bool] = lambda f: False, model_key: str | None = None,
                  lines: Sequence[Measurement] = ()) -> Written:
    """Write the SEG of ``findings`` and the SR of them and of the reader's ``lines`` (see the module
    docstring). A rejected finding is kept in both, marked rejected: the PACS keeps what the reader decided.
    The SR needs the SEG (its groups reference the segments); a SEG is made for it when none is asked for."""
    if seg_path is None and sr_path is None:
        raise ResultsRefused("neither a SEG nor an SR asked for")
    model = model_identity(card)
    results = [result_finding(volume, f, k, model_key or card.name, status(f), corrected(f))
               for k, f in enumerate(findings, start=1)]
    reader_lines = result_lines(lines, volume.series.series_uid)
    sources = source_headers(volume)
    seg = None
    if results:
        seg = write_seg(sources, findings_labels(volume.stored.shape, findings), results, model)
        if seg_path is not None:
            _save(seg, seg_path)
    elif seg_path is not None and sr_path is None:
        raise ResultsRefused("no finding: there is no SEG to write")
    if sr_path is not None:
        _save(write_sr(sources, results, reader_lines, model, seg), sr_path)
    return Written(seg_path if seg is not None else None, sr_path, len(results), len(reader_lines))


def write_heatmap_capture(volume: Volume, index: int, heatmap: np.ndarray, probability: float, card: ModelCard,
                          path: Path, *, series_uid: str | None = None, instance_number: int = 1,
                          **look: Any) -> Path:
    """Slice ``index`` with its ``heatmap`` (values in [0, 1]) as a Secondary Capture at ``path``
    (:mod:`viewer.core.results.sc`), instance ``instance_number`` of series ``series_uid`` (a new one when
    None); ``look`` is the overlay's colour map, opacity and threshold."""
    header, _ = volume.series.frame_source(index)
    if header.n_frames > 1:
        raise ResultsRefused("a heatmap capture of a multi-frame source is not written yet")
    picture = heatmap_picture(volume, index, heatmap, **look)
    return _save(write_sc(dcmread(header.path, stop_before_pixels=True), picture, model_identity(card),
                          float(probability), series_uid=series_uid, instance_number=instance_number), path)
