"""What the AI says about the slice on screen and the series, as the view, the panel and the plot show it.

Frozen snapshots (:class:`SliceStatus`, :class:`ProbabilityCurve`, :class:`OverlaySettings`) that
:class:`viewer.qt.ai.state.AIState` emits, and the texts they carry (Qt-free).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.ai.model_registry import ModelEntry
from viewer.core.volume import Volume
from viewer.qt.ai.inference import FaithfulnessReport
from viewer.qt.ai.results import SeriesResults

# SliceStatus.state values
OFF, EMPTY, WAITING, RESULT, NOT_APPLICABLE, UNAVAILABLE = (
    "off", "empty", "waiting", "result", "not_applicable", "unavailable")

DEFAULT_COLORMAP = "jet"

DEFAULT_OPACITY = 0.5

#: Heat below this (of the heatmap's 0..1 range) is transparent.
DEFAULT_HEAT_THRESHOLD = 0.3

DEMONSTRATION_TEXT = "Demonstration model – not for diagnosis"


@dataclass(frozen=True)
class OverlaySettings:
    """How the heatmap is drawn over the slice.

    ``suspicious_only``: draw it only on slices at or above the model's threshold. Grad-CAM is scaled per
    slice (its hottest pixel is 1 even where the model sees nothing), so on a slice the model calls clean
    a bright blob would say more than the model does.
    """

    visible: bool = True
    colormap: str = DEFAULT_COLORMAP
    opacity: float = DEFAULT_OPACITY
    threshold: float = DEFAULT_HEAT_THRESHOLD
    suspicious_only: bool = True

    def draws_on(self, suspicious: bool) -> bool:
        """Whether the heatmap is drawn on a slice (``suspicious``: at or above the model's threshold)."""
        return self.visible and (suspicious or not self.suspicious_only)


def _decimals(p: float, t: float) -> int:
    """Enough decimals (3 to 6) that ``p`` and ``t`` do not print alike unless they are equal."""
    d = 3
    while d < 6 and p != t and f"{p:.{d}f}" == f"{t:.{d}f}":
        d += 1
    return d


def probability_text(p: float, threshold: float) -> str:
    """``p = 0.870 · threshold 0.993 · below threshold`` (or ``· suspicious`` at or above it)."""
    d = _decimals(p, threshold)
    verdict = "suspicious" if p >= threshold else "below threshold"
    return f"p = {p:.{d}f} · threshold {threshold:.{d}f} · {verdict}"


def faithfulness_text(report: FaithfulnessReport) -> str:
    """The badge: ``heatmap faithful`` or ``heatmap explains little``."""
    return "heatmap faithful" if report.faithful else "heatmap explains little"


@dataclass(frozen=True, eq=False)
class SliceStatus:
    """What the AI says about the slice on screen, one snapshot per change (the view and panel draw it)."""

    state: str
    index: int
    text: str
    model: ModelEntry | None = None
    probability: float | None = None
    threshold: float | None = None
    heat: np.ndarray | None = None
    faithfulness: FaithfulnessReport | None = None
    faithfulness_pending: bool = False

    @property
    def suspicious(self) -> bool:
        return self.probability is not None and self.threshold is not None and self.probability >= self.threshold

    @property
    def demonstration(self) -> bool:
        return self.model is not None and bool(self.model.card.demonstration)

    @property
    def faithfulness_text(self) -> str:
        if self.faithfulness is not None:
            return faithfulness_text(self.faithfulness)
        return "checking heatmap…" if self.faithfulness_pending else ""


@dataclass(frozen=True, eq=False)
class ProbabilityCurve:
    """Probability per slice of the series on screen (NaN where not analysed) and the model's threshold."""

    series_key: str
    probabilities: np.ndarray
    threshold: float | None
    reason: str = ""  # why there is no curve (the model does not apply...)


def slice_status(
    index: int,
    *,
    enabled: bool,
    entry: ModelEntry | None,
    volume: Volume | None,
    model_error: str = "",
    applies: str | None = None,
    results: SeriesResults | None = None,
    failed: bool = False,
    loaded: bool = False,
    loading: ModelEntry | None = None,
    faith_pending: bool = False,
) -> SliceStatus:
    """What the AI says about slice ``index``: its result, or why there is none (yet).

    ``applies``: None when ``entry`` reads the series, else why not; ``results``: its cached results on the
    series; ``failed``: its analysis of the series failed for good; ``loading``: the model being loaded
    while none is active; ``faith_pending``: the reader paused here and the faithfulness test is due.
    """
    if not enabled:
        return SliceStatus(OFF, index, "")
    if volume is None:
        return SliceStatus(EMPTY, index, "", entry)
    if entry is None:
        return SliceStatus(UNAVAILABLE, index, f"AI unavailable: {model_error or 'no model'}")
    if applies is not None:
        return SliceStatus(NOT_APPLICABLE, index, f"the model does not apply: {applies}", entry)
    threshold = float(entry.card.threshold)
    if results is not None and index < len(results.probabilities) and index in results.heat:
        p = float(results.probabilities[index])
        faith = results.faithfulness.get(index)
        pending = faith is None and faith_pending and not failed
        return SliceStatus(RESULT, index, probability_text(p, threshold), entry, p, threshold,
                           results.heat[index], faith, pending)
    if failed:
        return SliceStatus(UNAVAILABLE, index, "AI analysis failed (see Problems)", entry, threshold=threshold)
    if index in volume.failed:
        return SliceStatus(UNAVAILABLE, index, "AI: this slice could not be read", entry, threshold=threshold)
    if not loaded:
        return SliceStatus(WAITING, index, "AI: waiting for the series to load", entry, threshold=threshold)
    if loading is not None:
        return SliceStatus(WAITING, index, f"AI: loading model {loading.name}…", entry, threshold=threshold)
    return SliceStatus(WAITING, index, "AI: analysing…", entry, threshold=threshold)


def status_line(
    *,
    enabled: bool,
    entry: ModelEntry | None,
    active: ModelEntry | None,
    pending: ModelEntry | None,
    job_submitted: bool,
    has_volume: bool,
    applies: str | None,
    failed: bool,
    loaded: bool,
    done: int,
    total: int,
    sweep: bool,
    device: str,
    notice: str,
    model_error: str,
) -> str:
    """One line for the panel: model loading, analysis progress (``done`` of ``total`` readable slices), or
    what went wrong; ``entry`` is the model whose results are shown, ``active`` / ``pending`` the active one
    and the one being loaded."""
    if not enabled:
        return "AI second reader off"
    if entry is None:
        return model_error or "no model installed"
    parts = []
    if active is None and pending is not None and job_submitted:
        parts.append(f"loading model {pending.name}…")
    elif active is not None and pending is not None:
        parts.append(f"loading model {pending.name}… (showing {active.name})")
    if not has_volume:
        parts.append("open a series to analyse it")
    elif applies is not None:
        parts.append("the model does not apply to this series")
    elif failed:
        parts.append("analysis stopped (see Problems)")
    elif not loaded:
        parts.append("waiting for the series to load")
    else:
        verb = "analysed" if done >= total else ("analysing" if sweep else "analysed on demand")
        parts.append(f"{verb} {done}/{total} slices")
    if device:
        parts.append(f"on {device}")
    if notice:
        parts.append(notice)
    if model_error and active is not None:
        parts.append(model_error)
    return " · ".join(parts)
