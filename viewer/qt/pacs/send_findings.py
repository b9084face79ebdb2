"""What "Send findings" sends: the AI findings of the series on screen, as the reader left them (accepted,
rejected, outlines corrected, axes re-measured), and the reader's lines, written as SEG and SR.

:func:`findings_snapshot` takes what it needs from the window in the UI thread (immutable values only);
the returned ``prepare`` writes the two objects on the transfer worker (highdicom takes a second or two)
into ``<cache>/results/<StudyInstanceUID>/`` and gives their paths to send.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from viewer.ai.dicom_results import write_results
from viewer.core.user_dirs import cache_dir


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
    folder = cache_dir() / "results" / (volume.series.study_uid or "unknown-study")
    name = volume.series.series_uid.replace("#", "_")

    def prepare() -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = write_results(
            volume, findings, card, seg_path=folder / f"{name}-seg.dcm", sr_path=folder / f"{name}-sr.dcm",
            status=lambda f: statuses[f.id].split(",")[0], corrected=lambda f: "edited" in statuses[f.id],
            model_key=key, lines=lines)
        return [p for p in (written.seg, written.sr) if p is not None]

    return f"findings of {volume.series.description or 'the series'} (SEG + SR, {len(findings)} finding(s))", prepare
