"""What the AI should run next for the reader: the scheduling decision, apart from its effects (Qt-free).

:func:`plan` looks at what is on screen, what is cached, what has been tried and what the lane is doing,
and says what to do; :class:`viewer.qt.ai.state.AIState` carries it out. Kept apart so the rules (sweep
the series the reader has loaded, nearest slice first; never twice what failed; the faithfulness test of
the slice the reader paused on; load a newly chosen model even where it cannot run, so a bad bundle is
refused at once) can be read, and tested, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.ai.model_registry import ModelEntry
from viewer.core.volume import Volume
from viewer.qt.ai.inference import AnalysisRequest
from viewer.qt.ai.results import SeriesResults

#: (series key, bundle path, model version key): one model's work on one series.
JobKey = tuple[str, str, str]

NOTHING, CONFIRM, LOAD_ONLY, FOCUS, SUBMIT = "nothing", "confirm", "load_only", "focus", "submit"


@dataclass(frozen=True)
class Plan:
    """The next step: ``action`` is one of :data:`NOTHING`, :data:`CONFIRM` (make the chosen model active
    untried), :data:`LOAD_ONLY` (load the chosen model, nothing to analyse), :data:`FOCUS` (tell the
    running sweep where the reader is, and ask the faithfulness test if ``faithfulness``) or :data:`SUBMIT`
    (send ``request``)."""

    action: str = NOTHING
    faithfulness: bool = False
    request: AnalysisRequest | None = None


@dataclass(frozen=True)
class Running:
    """The lane's current request, as far as scheduling cares."""

    volume: Volume | None
    entry: ModelEntry
    sweep: bool
    slice_index: int
    busy: bool


def same_model(a: ModelEntry | None, b: ModelEntry | None) -> bool:
    """The same weights from the same bundle folder (a copy elsewhere is another model until loaded)."""
    if a is b:
        return True
    if a is None or b is None or a.version_key != b.version_key:
        return False
    return a.path == b.path or Path(a.path).resolve() == Path(b.path).resolve()


def job_key(series_key: str, entry: ModelEntry) -> JobKey:
    return (series_key, str(entry.path), entry.version_key)


def plan(
    *,
    volume: Volume,
    series_key: str,
    index: int,
    active: ModelEntry | None,
    pending: ModelEntry | None,
    applies: str | None,
    results: SeriesResults | None,
    running: Running | None,
    sweep: bool,
    failed: bool,
    complete: bool,
    tried: bool,
    faith_wanted: bool,
    faith_tried: bool,
) -> Plan:
    """The next step for the series on screen (fully loaded) and slice ``index``.

    Parameters
    ----------
    active, pending:
        The model whose results are shown, and the one chosen to replace it (being loaded).
    applies:
        None when the model that would run (``pending`` or else ``active``) reads this series, else why not.
    results:
        That model's cached results on this series.
    running:
        The lane's request, or None.
    failed, complete:
        That model's work on this series failed for good / ran to the end.
    tried:
        (Sweep off) slice ``index`` was answered already.
    faith_wanted, faith_tried:
        The reader paused on ``index``; its faithfulness test was asked already.
    """
    entry = pending if pending is not None else active
    if entry is None:
        return Plan()
    if applies is not None:
        # Nothing to run. The first model becomes active untried (torch is not loaded for nothing); a model
        # chosen to replace another is loaded anyway, so a bad bundle says so and changes nothing.
        if pending is not None and active is None:
            return Plan(CONFIRM)
        if pending is not None and not (running is not None and running.busy and same_model(running.entry, pending)):
            return Plan(LOAD_ONLY)
        return Plan()
    if failed:
        return Plan()
    done = results.done if results is not None else np.zeros(volume.n_slices, bool)
    if sweep:
        readable = np.ones(volume.n_slices, bool)
        readable[list(volume.failed)] = False
        need = not complete and bool((readable & ~done).any())
    else:
        need = not done[index] and index not in volume.failed and not tried
    faith = (faith_wanted and bool(done[index]) and results is not None
             and index not in results.faithfulness and not faith_tried)
    if (running is not None and running.busy and running.volume is volume and same_model(running.entry, entry)
            and (running.sweep or running.slice_index == index)):
        return Plan(FOCUS, faithfulness=faith)
    if not (need or faith or pending is not None):
        return Plan()
    return Plan(SUBMIT, request=AnalysisRequest(series_key, volume, index, entry, done.copy(), sweep=sweep,
                                                faithfulness=faith, findings=sweep))
