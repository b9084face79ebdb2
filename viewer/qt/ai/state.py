"""The AI part of the view state: which model, its results per slice, the overlay settings, navigation.

:class:`AIState` belongs to the :class:`~viewer.qt.controller.ViewerController` (``controller.ai``), sees it
through :class:`~viewer.qt.view_state.ViewState` and, like it, is the one owner of its state: widgets call
its setters and redraw from its signals. It is the only object that submits inference requests (to its
:class:`~viewer.qt.ai.inference.InferenceLane`), as :func:`viewer.qt.ai.scheduling.plan` decides:

- nothing runs until a series has loaded; then the whole series is analysed in the background, the slice
  on screen first and then outwards; another series or model cancels the running request;
- results are cached (:class:`~viewer.qt.ai.results.ResultCache`), superseded answers dropped (:attr:`AIState.dropped`);
- after the reader pauses :data:`PAUSE_MS` on an analysed slice, its heatmap's faithfulness test runs;
- a chosen model is loaded in the worker, and until it has answered the previous one stays active, so a
  corrupt bundle, a hash mismatch or an input that does not fit leaves a clear message and the old model;
- if the model's child process dies mid-request the error is reported and the request retried once with a
  new process (:data:`SERVICE_RETRIES`); then the failure sticks like any other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from viewer.ai.analysis import model_applies, ranking
from viewer.ai.model_registry import DEFAULT_MODEL, ModelEntry, find_model, list_models, model_for, reads
from viewer.base.model_card import BundleError
from viewer.core.overlay import COLORMAPS
from viewer.qt.ai.contour_edit import ContourEdit
from viewer.qt.ai.inference import (
    AnalysisBatch,
    AnalysisRequest,
    FaithfulnessReport,
    InferenceLane,
    JobSummary,
    ModelReady,
)
from viewer.qt.ai.lung_state import LungMaskState
from viewer.qt.ai.results import ResultCache, SeriesResults
from viewer.qt.ai.scheduling import CONFIRM, FOCUS, LOAD_ONLY, SUBMIT, Running, job_key, plan, same_model
from viewer.qt.ai.status import (
    OverlaySettings,
    ProbabilityCurve,
    SliceStatus,
    slice_status,
    status_line,
)
from viewer.qt.view_state import series_identity

if TYPE_CHECKING:
    from viewer.base.child_process import ChildProcess
    from viewer.qt.view_state import ErrorSink, ViewState

log = logging.getLogger(__name__)

#: The reader must stay this long on a slice before its heatmap's faithfulness is tested (ms).
PAUSE_MS = 300
#: Longest the plot, progress bar and status line lag behind the results of a sweep (ms): a sweep answers
#: every ~0.1 s, and redrawing the plot and panel for each answer would cost the reader's scrolling.
SUMMARY_INTERVAL_MS = 200
#: Requests of one series and model retried after the model service's process died (then it is an error).
SERVICE_RETRIES = 1
class AIState(QObject):
    """The AI view state of one controller (see the module docstring).

    Parameters
    ----------
    view:
        The view state it follows (series, load and slice signals; see :mod:`viewer.qt.view_state`).
    report_error:
        Where failures go (the controller's one error handler).
    parent:
        The owning QObject (the controller).
    enabled:
        False: no model is ever loaded (tests and benchmarks of the plain viewer, screenshots without AI).
    sync:
        Run inference inline (scripts).
    sweep:
        True: analyse the whole series in the background. False: only the slice on screen, on request.
    device:
        ``"auto"`` (GPU when present) or a torch device name.
    service:
        The model service process to use (see :class:`~viewer.qt.ai.inference.InferenceLane`); default:
        the lane's own.
    """

    sig_models_changed = Signal(list)  # [ModelEntry], the picker's list
    sig_model_changed = Signal(object)  # ModelEntry | None, the model whose results are shown
    sig_pending_model_changed = Signal(object)  # ModelEntry | None, a model being loaded
    sig_status_changed = Signal(str)  # one line: loading, analysing 12/48, errors
    sig_progress = Signal(int, int)  # slices analysed, analysable slices
    sig_current_changed = Signal(object)  # SliceStatus of the slice on screen
    sig_curve_changed = Signal(object)  # ProbabilityCurve of the series on screen
    sig_overlay_changed = Signal(object)  # OverlaySettings
    sig_message = Signal(str)  # notices for the status bar (GPU fell back to CPU...)
    sig_navigate = Signal(int)  # show this slice (N / Shift+N); the controller moves the view
    sig_findings_changed = Signal(object)  # SeriesFindings of the series on screen, or None

    def __init__(self, view: ViewState, report_error: ErrorSink, *, parent: QObject | None = None,
                 enabled: bool = True, sync: bool = False, sweep: bool = True, device: str = "auto",
                 service: ChildProcess | None = None) -> None:
        super().__init__(parent)
        self._c = view
        self._report_error = report_error
        self.enabled = enabled
        self.sweep = sweep
        self.lane = InferenceLane(self, sync=sync, device=device, service=service)
        self.cache = ResultCache()
        #: Answers dropped because a newer request superseded theirs.
        self.dropped = 0
        #: The id of the finding the reader picked in the Findings panel, or None.
        self.selected_finding: int | None = None
        #: The outline-editing mode the views paint the selected finding in.
        self.contour_edit = ContourEdit(self)
        #: The lung mask overlay (the Findings panel's toggle).
        self.lungs = LungMaskState(view, report_error, sync=sync, parent=self)
        #: ``(SeriesFindings) -> SeriesFindings``: what the reader corrected, applied to findings as they
        #: arrive (set by the finding review); None: as the AI found them.
        self.adjust_findings: Callable[[Any], Any] | None = None
        self._overlay = OverlaySettings()
        self._entry: ModelEntry | None = None  # active: its results are shown
        self._pending: ModelEntry | None = None  # chosen, being loaded
        self._models: list[ModelEntry] = []
        self._by_modality: dict[str, ModelEntry] = {}  # the model last shown for each modality
        self._model_error = ""
        self._notice = ""  # e.g. the GPU ran out of memory and the CPU took over
        self._device = ""
        self._job: AnalysisRequest | None = None
        self._job_rid = 0
        self._complete: set[tuple[str, str, str]] = set()  # sweeps that ran to the end
        self._tried: set[tuple[tuple[str, str, str], int]] = set()  # single slices answered (sweep off)
        self._faith_tried: set[tuple[tuple[str, str, str], int]] = set()
        self._failed: dict[tuple[str, str, str], str] = {}
        self._service_died: set[int] = set()  # requests during which the model service's process died
        self._crashes: dict[tuple[str, str, str], int] = {}  # such deaths per (series, model) since an answer
        self._faith_index: int | None = None
        self._stopped = False
        self._pause = QTimer(self)
        self._pause.setSingleShot(True)
        self._pause.setInterval(PAUSE_MS)
        self._pause.timeout.connect(self._on_pause)
        self._summary = QTimer(self)
        self._summary.setSingleShot(True)
        self._summary.setInterval(SUMMARY_INTERVAL_MS)
        self._summary.timeout.connect(self._emit_summary)

        lane = self.lane
        lane.sig_model_ready.connect(self._on_model_ready)
        lane.sig_results.connect(self._on_results)
        lane.sig_faithfulness.connect(self._on_faithfulness)
        lane.sig_findings.connect(self._on_findings)
        lane.sig_notice.connect(self._on_notice)
        lane.sig_service_died.connect(lambda rid, text: self._service_died.add(rid))
        lane.worker.sig_finished.connect(self._on_finished)
        lane.worker.sig_failed.connect(self._on_failed)
        lane.worker.sig_done.connect(self._on_done)  # after the worker's own bookkeeping: busy is exact

        view.sig_series_selected.connect(self._on_series_selected)
        view.sig_series_loaded.connect(self._on_series_loaded)
        view.sig_slice_changed.connect(self._on_slice_changed)

        if enabled:
            self._models = list_models()  # card reads only: no torch
            try:
                self._pending = find_model(DEFAULT_MODEL)  # loaded lazily, once a series has loaded
            except (KeyError, BundleError) as e:  # not installed, or an unreadable card
                self._model_error = f"no model: {e}"

    # -- read-only state ---------------------------------------------------------------------------------

    @property
    def models(self) -> list[ModelEntry]:
        """Models the picker offers (shipped, the user's, and bundles opened from disk)."""
        return list(self._models)

    @property
    def model(self) -> ModelEntry | None:
        """The model whose results are shown (until the first load: the one being loaded)."""
        return self._entry if self._entry is not None else self._pending

    @property
    def active_model(self) -> ModelEntry | None:
        """The model that has answered on this machine (None before the first answer)."""
        return self._entry

    @property
    def pending_model(self) -> ModelEntry | None:
        """A model chosen and being loaded (replaces :attr:`active_model` after its first answer)."""
        return self._pending if self._entry is not None else None

    @property
    def request_id(self) -> int:
        """Id of the newest inference request (0 before the first)."""
        return self._job_rid

    @property
    def overlay(self) -> OverlaySettings:
        return self._overlay

    @property
    def progress(self) -> tuple[int, int]:
        """(slices analysed, readable slices) of the series on screen under the shown model."""
        volume = self._c.volume
        if volume is None:
            return (0, 0)
        results = self.results()
        done = int(results.done.sum()) if results is not None and len(results.done) == volume.n_slices else 0
        return (done, volume.n_slices - len(volume.failed))

    @property
    def device(self) -> str:
        return self._device

    def results(self) -> SeriesResults | None:
        """The shown model's results on the series on screen."""
        entry, key = self.model, series_identity(self._c)
        if entry is None or key is None:
            return None
        return self.cache.get(key, entry.version_key)

    def probability(self, index: int) -> float | None:
        results = self.results()
        if results is None or not 0 <= index < len(results.probabilities):
            return None
        p = float(results.probabilities[index])
        return None if math.isnan(p) else p

    def applies(self) -> str | None:
        """None when the shown model can read the series on screen, else the reason."""
        entry, volume = self.model, self._c.volume
        if entry is None or volume is None:
            return None
        return model_applies(entry.card, volume)

    def current(self) -> SliceStatus:
        """The snapshot :attr:`sig_current_changed` carries, for the slice on screen."""
        c = self._c
        index, entry, volume = c.slice_index, self.model, c.volume
        if not self.enabled or volume is None or entry is None:
            return slice_status(index, enabled=self.enabled, entry=entry, volume=volume, model_error=self._model_error)
        key = self._key(entry)
        return slice_status(
            index, enabled=True, entry=entry, volume=volume, model_error=self._model_error,
            applies=model_applies(entry.card, volume), results=self.cache.get(series_identity(c), entry.version_key),
            failed=key in self._failed, loaded=c.loaded, loading=self._pending if self._entry is None else None,
            faith_pending=self._faith_index == index and (key, index) not in self._faith_tried,
        )

    def curve(self) -> ProbabilityCurve:
        """Probability per slice of the series on screen under the shown model."""
        c = self._c
        n = c.n_slices
        entry = self.model
        key = series_identity(c) or ""
        if not self.enabled or entry is None or c.volume is None:
            return ProbabilityCurve(key, np.full(n, np.nan, np.float32), None)
        reason = model_applies(entry.card, c.volume)
        results = self.cache.get(key, entry.version_key)
        probabilities = (results.probabilities.copy() if results is not None and len(results.probabilities) == n
                         else np.full(n, np.nan, np.float32))
        return ProbabilityCurve(key, probabilities, float(entry.card.threshold), reason or "")

    def status_text(self) -> str:
        """One line for the panel: model loading, analysis progress, or what went wrong."""
        entry, c = self.model, self._c
        done = total = 0
        applies = None
        failed = False
        if entry is not None and c.volume is not None:
            applies = model_applies(entry.card, c.volume)
            failed = self._key(entry) in self._failed
            results = self.cache.get(series_identity(c), entry.version_key)
            done = int(results.done.sum()) if results is not None else 0
            total = c.n_slices - len(c.volume.failed)
        return status_line(
            enabled=self.enabled, entry=entry, active=self._entry, pending=self._pending,
            job_submitted=self._job is not None, has_volume=c.volume is not None, applies=applies, failed=failed,
            loaded=c.loaded, done=done, total=total, sweep=self.sweep, device=self._device, notice=self._notice,
            model_error=self._model_error,
        )

    # -- navigation ----------------------------------------------------------------------------------------

    def image_label(self, index: int) -> str:
        """How the reader names slice ``index`` of the series on screen ("Im 26", else its stack position)."""
        series = self._c.series
        return series.image_label(index) if series is not None else str(index + 1)

    def ranking(self) -> list[int]:
        """Analysed slices, most suspicious first (ties: lower index first), as ``radview analyze`` ranks."""
        results = self.results()
        if results is None:
            return []
        p = results.probabilities
        return ranking({int(i): float(p[i]) for i in np.flatnonzero(~np.isnan(p))})

    def suspicious(self) -> list[int]:
        """Slices at or above the model's threshold in ranked order; the whole ranking if none is."""
        order, entry, results = self.ranking(), self.model, self.results()
        if entry is None or results is None or not order:
            return order
        return [i for i in order if results.probabilities[i] >= entry.card.threshold] or order

    def next_suspicious(self, step: int = 1) -> int | None:
        """Go to the next (``step`` > 0) or previous suspicious slice in ranked order; the slice, or None.

        From a slice outside the list, N goes to the top-ranked slice and Shift+N to the last listed one.
        """
        if not self.enabled:
            return None
        order = self.suspicious()
        if not order:
            return None
        index = self._c.slice_index
        if index in order:
            target = order[(order.index(index) + (1 if step > 0 else -1)) % len(order)]
        else:
            target = order[0] if step > 0 else order[-1]
        self.sig_navigate.emit(target)
        return target

    # -- overlay settings ------------------------------------------------------------------------------------

    def _set_overlay(self, overlay: OverlaySettings) -> None:
        if overlay != self._overlay:
            self._overlay = overlay
            self.sig_overlay_changed.emit(overlay)

    def set_overlay_visible(self, visible: bool) -> None:
        self._set_overlay(replace(self._overlay, visible=bool(visible)))

    def toggle_overlay(self) -> None:
        self.set_overlay_visible(not self._overlay.visible)

    def set_suspicious_only(self, only: bool) -> None:
        self._set_overlay(replace(self._overlay, suspicious_only=bool(only)))

    def set_colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise KeyError(f"unknown colour map {name!r}; choose from {', '.join(COLORMAPS)}")
        self._set_overlay(replace(self._overlay, colormap=name))

    def set_opacity(self, opacity: float) -> None:
        self._set_overlay(replace(self._overlay, opacity=min(max(float(opacity), 0.0), 1.0)))

    def set_heat_threshold(self, threshold: float) -> None:
        self._set_overlay(replace(self._overlay, threshold=min(max(float(threshold), 0.0), 0.99)))

    # -- choosing a model --------------------------------------------------------------------------------------

    def reload_models(self) -> None:
        """Read the installed models again (after a fine-tune or removal); opened bundles stay while they exist."""
        if not self.enabled:
            return
        installed = list_models()
        opened = [m for m in self._models if m.source == "file" and Path(m.path).is_dir()
                  and not any(same_model(m, i) for i in installed)]
        self._models = installed + opened
        self.sig_models_changed.emit(self.models)

    def set_model(self, model: ModelEntry | str | Path) -> bool:
        """Use ``model`` (entry, name or bundle folder), loaded in the worker; False if it cannot be found."""
        if not self.enabled:
            return False
        if not isinstance(model, ModelEntry):
            try:
                model = find_model(str(model))
            except (KeyError, BundleError) as e:  # a card that cannot be read
                self._report_error(f"could not use model {model}: {e}")
                self.sig_status_changed.emit(self.status_text())
                return False
        if same_model(model, self.model) and (self._entry is None or self._pending is None):
            return True
        if not any(same_model(model, m) for m in self._models):
            self._models.append(model)
            self.sig_models_changed.emit(self.models)
        self._model_error = ""
        self._failed = {k: v for k, v in self._failed.items() if not (k[1] == str(model.path)
                                                                     and k[2] == model.version_key)}
        if same_model(model, self._entry):  # back to the active model: forget the pending one
            self._pending = None
            self.lane.cancel()
            self._job = None
        else:
            self._pending = model
        self.sig_pending_model_changed.emit(self.pending_model)
        if self._entry is None:
            self.sig_model_changed.emit(self.model)
        self._emit_all()
        if self._pending is not None and not (self._c.volume is not None and self._c.loaded):
            self._submit_load_only(self._pending)  # no series yet: load now, so a bad bundle says so now
        else:
            self._schedule()
        return True

    def _confirm_pending(self) -> None:
        """The pending model answered: it becomes the active one."""
        if self._pending is None:
            return
        self._entry, self._pending = self._pending, None
        self._model_error = ""
        self.sig_pending_model_changed.emit(None)
        self.sig_model_changed.emit(self._entry)
        self._emit_all()

    # -- scheduling ------------------------------------------------------------------------------------------

    def _key(self, entry: ModelEntry) -> tuple[str, str, str]:
        return job_key(series_identity(self._c) or "", entry)

    def _submit(self, request: AnalysisRequest) -> None:
        self._job = request
        self._job_rid = self.lane.submit(request)
        self.sig_status_changed.emit(self.status_text())

    def _submit_load_only(self, entry: ModelEntry) -> None:
        self._submit(AnalysisRequest("", None, 0, entry, np.zeros(0, bool), sweep=False))

    def _schedule(self) -> None:
        """Ask the lane for what the reader needs next (:func:`viewer.qt.ai.scheduling.plan`)."""
        if not self.enabled or self._stopped:
            return
        c = self._c
        volume, series_key = c.volume, series_identity(c)
        if volume is None or series_key is None or not c.loaded:
            return
        entry = self._pending if self._pending is not None else self._entry
        if entry is None:
            return
        key, index, job = job_key(series_key, entry), c.slice_index, self._job
        running = None if job is None else Running(job.volume, job.entry, job.sweep, job.slice_index, self.lane.busy)
        step = plan(
            volume=volume, series_key=series_key, index=index, active=self._entry, pending=self._pending,
            applies=model_applies(entry.card, volume), results=self.cache.get(series_key, entry.version_key),
            running=running, sweep=self.sweep, failed=key in self._failed, complete=key in self._complete,
            tried=(key, index) in self._tried, faith_wanted=self._faith_index == index,
            faith_tried=(key, index) in self._faith_tried,
        )
        if step.action == CONFIRM:
            self._confirm_pending()
        elif step.action == LOAD_ONLY and self._pending is not None:
            self._submit_load_only(self._pending)
        elif step.action == FOCUS:
            self.lane.set_focus(series_key, index)
            if step.faithfulness:
                self.lane.ask_faithfulness(series_key, entry.version_key, index)
        elif step.action == SUBMIT and step.request is not None:
            self._submit(step.request)

    # -- controller -> AI -----------------------------------------------------------------------------------

    def _on_series_selected(self, key: str) -> None:
        if not self.enabled:
            return
        self.lane.cancel()
        self._job = None
        self._pause.stop()
        self._faith_index = None
        # A series whose results were dropped from the cache is swept again when shown again.
        self._complete = {k for k in self._complete if (k[0], k[2]) in self.cache}
        self._emit_all()

    def _on_series_loaded(self, key: str) -> None:
        if not self.enabled:
            return
        self._model_for_series()
        self._schedule()
        self._emit_all()

    def _model_for_series(self) -> None:
        """Show the series with a model that reads its modality: the one shown if it does, else the one last
        shown for that modality, else the first installed that does (a chest CR after a CT gets the radiograph
        model, and the CT after it the CT model again, the reader's own choice included)."""
        volume = self._c.volume
        current = self._pending if self._pending is not None else self._entry  # the one the reader will see
        if volume is None or current is None:
            return
        modality = volume.series.modality
        if reads(current, modality):
            self._by_modality[modality] = current
            return
        choice = model_for(modality, self._models, self._by_modality.get(modality))
        if choice is not None and not same_model(choice, current):
            self.set_model(choice)

    def _on_slice_changed(self, index: int) -> None:
        if not self.enabled:
            return
        self._faith_index = None
        self.sig_current_changed.emit(self.current())
        if self._c.volume is not None and self._c.loaded:
            self._pause.start()
            self._schedule()

    def _on_pause(self) -> None:
        self._faith_index = self._c.slice_index
        self._schedule()
        self.sig_current_changed.emit(self.current())

    # -- lane -> AI ---------------------------------------------------------------------------------------------

    def _on_model_ready(self, rid: int, ready: ModelReady) -> None:
        if not self.lane.is_current(rid):
            return
        self._device = ready.device
        if self._job is not None and self._job.volume is None:  # a load-only request: nothing else to wait for
            self._confirm_pending()
        self.sig_status_changed.emit(self.status_text())

    def _on_results(self, rid: int, batch: AnalysisBatch) -> None:
        c = self._c
        if not self.lane.is_current(rid) or batch.series_key != series_identity(c) or c.volume is None:
            self.dropped += 1
            return
        self.cache.add(batch.series_key, batch.version_key, c.n_slices, batch.results)
        self._crashes.clear()  # the service answers again
        if self._pending is not None and self._job is not None and same_model(self._job.entry, self._pending):
            self._confirm_pending()
        entry = self.model
        if entry is not None and entry.version_key == batch.version_key:
            if any(r.index == c.slice_index for r in batch.results):
                self.sig_current_changed.emit(self.current())
            if not self._summary.isActive():  # plot, progress and status: at most every SUMMARY_INTERVAL_MS
                self._summary.start()
        self._schedule()  # a faithfulness test may be due now that the slice on screen has its result

    def _on_faithfulness(self, rid: int, report: FaithfulnessReport) -> None:
        if not self.lane.is_current(rid) or report.series_key != series_identity(self._c):
            self.dropped += 1
            return
        results = self.cache.get(report.series_key, report.version_key)
        if results is None:
            return
        results.faithfulness[report.index] = report
        if report.index == self._c.slice_index:
            self.sig_current_changed.emit(self.current())

    def findings(self):
        """The nodules of the series on screen (SeriesFindings), None until the sweep has found them."""
        results = self.results()
        return results.findings if results is not None else None

    def select_finding(self, finding_id: int | None) -> None:
        """The finding the reader picked (drawn thicker in every view)."""
        if finding_id != self.selected_finding:
            self.selected_finding = finding_id
            self.sig_findings_changed.emit(self.findings())

    def _on_findings(self, rid: int, report) -> None:
        if not self.lane.is_current(rid) or report.series_key != series_identity(self._c):
            self.dropped += 1
            return
        results = self.cache.get(report.series_key, report.version_key)
        if results is not None:
            adjust = self.adjust_findings
            results.findings = adjust(report.findings) if adjust is not None else report.findings
            self.sig_findings_changed.emit(self.findings())

    def replace_finding(self, finding) -> None:
        """Show ``finding`` (a Finding) instead of the one of the same id (its outline corrected)."""
        results = self.results()
        if results is None or results.findings is None:
            return
        found = results.findings
        results.findings = replace(
            found, findings=tuple(finding if f.id == finding.id else f for f in found.findings))
        self.sig_findings_changed.emit(self.findings())

    def _on_notice(self, rid: int, text: str) -> None:
        log.warning("%s", text)
        self._notice = text
        self.sig_message.emit(text)
        self.sig_status_changed.emit(self.status_text())

    def _on_finished(self, rid: int, summary: JobSummary) -> None:
        job = self._job
        if not self.lane.is_current(rid) or job is None:
            return
        if job.volume is not None:
            key = job_key(job.series_key, job.entry)
            if job.sweep:
                self._complete.add(key)
            else:
                self._tried.add((key, job.slice_index))
            if job.faithfulness:
                self._faith_tried.add((key, job.slice_index))
        if self._pending is not None and same_model(job.entry, self._pending):
            self._confirm_pending()
        else:
            self._emit_all()

    def _on_failed(self, rid: int, message: str, traceback_text: str) -> None:
        job = self._job
        if not self.lane.is_current(rid) or job is None:
            log.debug("superseded inference request %s failed: %s", rid, message)
            return
        key = job_key(job.series_key, job.entry)
        message = message.removeprefix("AI: ")  # the lane's job name; the status bar says "AI" anyway
        if rid in self._service_died:
            self._service_died.discard(rid)
            self._crashes[key] = self._crashes.get(key, 0) + 1
            if self._crashes[key] <= SERVICE_RETRIES:  # not the model's fault: _on_done asks again
                self._job = None
                self._report_error(message, traceback_text)
                self._emit_all()
                return
        if self._pending is not None and same_model(job.entry, self._pending):
            failed, self._pending = self._pending, None
            keep = self._entry
            text = f"{message}; keeping model {keep.name}" if keep is not None else message
            self._model_error = f"model {failed.name} not used (see Problems)" if keep is not None else text
            self.sig_pending_model_changed.emit(None)
            self.sig_model_changed.emit(self.model)
        else:
            text = message
        self._failed[key] = text
        self._job = None
        self._report_error(text, traceback_text)
        self._emit_all()

    def _on_done(self, rid: int) -> None:
        if not self.lane.busy:
            self._schedule()

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _emit_summary(self) -> None:
        self._summary.stop()
        self.sig_progress.emit(*self.progress)
        self.sig_curve_changed.emit(self.curve())
        self.sig_status_changed.emit(self.status_text())

    def _emit_all(self) -> None:
        self.sig_findings_changed.emit(self.findings())
        self.sig_current_changed.emit(self.current())
        self._emit_summary()

    def refresh(self) -> None:
        """Re-emit every snapshot (a widget connected late draws the present state)."""
        self.sig_models_changed.emit(self.models)
        self.sig_model_changed.emit(self.model)
        self.sig_overlay_changed.emit(self._overlay)
        self._emit_all()

    def idle(self) -> bool:
        """True when no inference request is waiting, running or undelivered."""
        return not self.lane.busy

    def shutdown(self) -> None:
        """Cancel and join the inference thread (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._pause.stop()
        self._summary.stop()
        if not self.lane.stop():
            log.warning("the inference worker did not stop in time")
        if not self.lungs.stop():
            log.warning("the lung mask worker did not stop in time")

