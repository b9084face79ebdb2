"""What the PACS dialog's "Send findings" and "Send heatmap capture" send.

- **Findings:** the AI findings of the series on screen, as the reader left them (accepted, rejected,
  outlines corrected, axes re-measured), and the reader's lines, written as SEG and SR.
- **Heatmap capture:** the slice on screen with the heatmap as the reader sees it (their colour map,
  opacity and threshold), as a Secondary Capture marked derived and not for diagnosis.

Each ``*_snapshot`` takes what it needs from the window in the UI thread (immutable values only, the
heatmap copied); the returned ``prepare`` writes the objects on the transfer worker (highdicom takes a
second or two) into ``<cache>/results/<StudyInstanceUID>/`` and gives their paths to send.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from viewer.ai.dicom_results import write_heatmap_capture, write_results
from viewer.core.user_dirs import cache_dir


def _results_folder(volume) -> tuple[Path, str]:
    """Where a series' objects are written before they are sent, and the series' part of their names."""
    return (cache_dir() / "results" / (volume.series.study_uid or "unknown-study"),
            volume.series.series_uid.replace("#", "_"))


def findings_snapshot(controller, review) -> tuple[str, Callable[[], list[Path]]] | str:
    """``(what, prepare)`` for the transfer queue, or the one-line reason there is nothing to send."""
    ai = controller.ai
    volume, entry = controller.volume, ai.model
    found = ai.findings()
    if volume is None or entry is None:
        return "No series with the assistant's results is on screen"
    if found is None:
        return "The assistant has not finished finding nodules in this series"
    findings = tuple(found.findings)
    if not findings:
        return "The assistant found nothing in this series: no SEG or SR to send"
    statuses = {f.id: review.status(f) for f in findings}
    store = controller.measurements.store
    lines = tuple(store.all()) if store is not None else ()
    card, key = entry.card, entry.version_key
    folder, name = _results_folder(volume)

    def prepare() -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = write_results(
            volume, findings, card, seg_path=folder / f"{name}-seg.dcm", sr_path=folder / f"{name}-sr.dcm",
            status=lambda f: statuses[f.id].split(",")[0], corrected=lambda f: "edited" in statuses[f.id],
            model_key=key, lines=lines)
        return [p for p in (written.seg, written.sr) if p is not None]

    return f"findings of {volume.series.description or 'the series'} (SEG + SR, {len(findings)} finding(s))", prepare


def capture_snapshot(controller) -> tuple[str, Callable[[], list[Path]]] | str:
    """``(what, prepare)`` for the slice on screen with its heatmap as the reader sees it, or the one-line
    reason there is none: a heatmap the window does not show (hidden, or on a slice the model calls clean
    while "only on suspicious slices" is on) is not sent either, since a blob there would say more than the
    model does (:class:`viewer.qt.ai.status.OverlaySettings`).

    The captures of one series by one model share a series (its UID made from the two), each image one
    instance numbered as the image is, so a PACS lists them together however often the reader sends."""
    ai, volume = controller.ai, controller.volume
    entry, results = ai.model, ai.results()
    if volume is None or entry is None:
        return "No series with the assistant's results is on screen"
    reason = ai.applies()
    if reason:
        return f"No heatmap to send: {reason}"
    index, look = controller.slice_index, ai.overlay
    image = volume.series.image_label(index)
    heat = results.heat.get(index) if results is not None else None
    if heat is None:
        return f"The assistant has not analysed {image} yet: no heatmap to send"
    probability, card = float(results.probabilities[index]), entry.card
    if not look.visible:
        return "The heatmap is hidden (H): show it to send what you see"
    if not look.draws_on(probability >= card.threshold):
        return (f"The model calls {image} clean (p = {probability:.2f}, below {card.threshold:.2f}), so no heatmap "
                "is shown there and none is sent")
    heatmap = heat.astype(np.float32) / 255  # the window keeps heatmaps as uint8
    folder, name = _results_folder(volume)
    series_uid = generate_uid(entropy_srcs=["radview-heatmap-sc", volume.series.series_uid, entry.version_key])
    file_label = re.sub(r"[^A-Za-z0-9]+", "", image.split("(")[0]).lower() or f"{index + 1}"

    def prepare() -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        return [write_heatmap_capture(volume, index, heatmap, probability, card, folder / f"{name}-sc-{file_label}.dcm",
                                      colormap=look.colormap, opacity=look.opacity, threshold=look.threshold,
                                      series_uid=series_uid, instance_number=index + 1)]

    return f"heatmap capture of {image} (SC, p = {probability:.2f})", prepare
