"""The viewer's one owner of mutable view state, and the only object that starts background work.

Widgets call its methods (``set_slice``, ``set_window``, ``select_series``...) and redraw from its
signals; they never change each other. Background work (scan, load, thumbnails) runs on three
:class:`~viewer.qt.workers.Worker` lanes; every answer is checked against the newest request of its lane
and dropped when stale, and every failure reaches :meth:`ViewerController.report_error`.

Loading: :func:`viewer.core.volume.allocate` runs on the UI thread (``np.zeros`` is a lazy ``calloc``,
~0.1 ms even for 158 MB, and it refuses what cannot fit before allocating), so the view owns the volume
from the first moment; :func:`viewer.core.volume.load_into` fills it on the load lane starting with the
slice on screen, whose arrival is the first (unthrottled) progress signal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from viewer.base.errors import RadviewError
from viewer.core.errors import SeriesLoadError
from viewer.core.header import FileHeader
from viewer.core.scan import ScanResult, scan
from viewer.core.series import REVERSED_SUFFIX, SeriesInfo
from viewer.core.thumbnails import thumbnail
from viewer.core.volume import Volume, allocate, load_into
from viewer.core.windowing import PRESETS, Window, preset
from viewer.qt.ai.state import AIState
from viewer.qt.crosshair import CrosshairState
from viewer.qt.label_state import LabelState
from viewer.qt.measure_state import MeasureState
from viewer.qt.problems import Problems, SliceFailure
from viewer.qt.report_state import ReportState
from viewer.qt.segment_state import SegmentState
from viewer.qt.undo import UndoStack
from viewer.qt.workers import JobContext, Worker, wait_until_idle

log = logging.getLogger(__name__)

#: Slices moved by PageUp / PageDown.
PAGE_STEP = 10
#: Longest the loader waits for the first slice to be painted before reading the rest (seconds).
FIRST_PAINT_WAIT_S = 0.1
#: Narrowest window width accepted (the linear VOI function needs width >= 1).
MIN_WINDOW_WIDTH = 1.0


def series_label(series: SeriesInfo) -> str:
    """Short human name of a series: modality, series number and description."""
    number = f" #{series.series_number}" if series.series_number is not None else ""
    return f"{series.modality}{number} {series.description or '(no description)'}".strip()


def largest_series(result: ScanResult) -> SeriesInfo | None:
    """The series opened first: most slices, then most pixels per slice, then scan order."""
    if not result.series:
        return None
    return max(result.series, key=lambda s: (s.n_slices, s.rows * s.cols))


class ViewerController(QObject):
    """View state (scan, series, volume, slice, window, inversion, patient lines) and its signals.

    Parameters
    ----------
    sync:
        Run scans, loads and thumbnails inline (tests and scripts); the default runs them on threads.
    ai:
        Run the AI second reader (:attr:`ai`, :class:`~viewer.qt.ai.state.AIState`) on every loaded
        series. Off by default here (the plain viewer, its tests and benchmarks); the main window turns
        it on.
    ai_service:
        The AI's model service process (tests share one); default: the AI makes, and closes, its own.
    leader:
        Another viewport's series (see :meth:`companion`): errors go to the leader's handler, and the
        leader's undo stack and patient-lines toggle are shared.
    """

    sig_scan_started = Signal(list)  # paths as str
    sig_scan_progress = Signal(int, int)  # files done, total
    sig_scan_finished = Signal(object)  # ScanResult
    sig_series_selected = Signal(str)  # key; "" when nothing is shown
    sig_load_progress = Signal(int, int)  # slices done, total
    sig_series_loaded = Signal(str)  # key, every slice read (or failed)
    sig_slice_changed = Signal(int)  # index; re-emitted when the slice on screen arrives
    sig_window_changed = Signal(object)  # Window
    sig_invert_changed = Signal(bool)  # the user's inversion toggle
    sig_patient_info_changed = Signal(bool)  # show the patient/study lines
    sig_fit_requested = Signal()
    sig_problems_changed = Signal(object)  # Problems
    sig_thumbnail_ready = Signal(str, object)  # series key, uint8 array (grey or RGB)
    sig_thumbnail_failed = Signal(str, str)  # series key, reason
    sig_error = Signal(str)  # one line, for the status bar
    sig_busy_changed = Signal(bool)
    sig_reversed_changed = Signal(object)  # frozenset of series descriptions the reader shows reversed

    def __init__(self, parent: QObject | None = None, *, sync: bool = False, ai: bool = False,
                 ai_service=None, leader: ViewerController | None = None) -> None:
        super().__init__(parent)
        self._sync = sync
        self._leader = leader
        self._companions: list[ViewerController] = []
        self._scanner = Worker("scan", sync=sync, parent=self)
        self._loader = Worker("load", sync=sync, parent=self)
        self._thumbnailer = Worker("thumbnails", latest_only=False, sync=sync, parent=self)
        self._workers = (self._scanner, self._loader, self._thumbnailer)
        for w in self._workers:
            w.sig_done.connect(self._update_busy)
        self._scanner.sig_progress.connect(self._on_scan_progress)
        self._scanner.sig_finished.connect(self._on_scan_finished)
        self._scanner.sig_failed.connect(self._on_scan_failed)
        self._loader.sig_progress.connect(self._on_load_progress)
        self._loader.sig_finished.connect(self._on_load_finished)
        self._loader.sig_failed.connect(self._on_load_failed)
        self._thumbnailer.sig_finished.connect(self._on_thumbnail)
        self._thumbnailer.sig_failed.connect(self._on_thumbnail_failed)

        self._paths: list[str] = []
        self._reversed: set[str] = set()  # series descriptions shown the other way round
        self._auto_select = True
        self._scan: ScanResult | None = None
        self._series: SeriesInfo | None = None
        self._volume: Volume | None = None
        self._index = 0
        self._shown_loaded = False
        self._first_shown = threading.Event()
        self._loaded_done = False
        self._window: Window | None = None
        self._invert = False
        self._show_patient = True
        self._errors: list[str] = []
        self._n_failed = 0
        self._generation = 0  # scans finished so far; thumbnails of an older scan are stale
        self._busy = False
        self._stopped = False
        #: The AI view state (model, results, overlay); connected to this controller's signals first, so
        #: its snapshot of a new slice is ready before any view redraws that slice.
        self.ai = AIState(self, self.report_error, parent=self, enabled=ai, sync=sync, service=ai_service)
        self.ai.sig_navigate.connect(self.set_slice)
        #: Undo and redo of labels and measurements (Ctrl+Z, Ctrl+Shift+Z).
        self.undo_stack = leader.undo_stack if leader is not None else UndoStack(self)
        #: The reader's labels of the open study and the slice view's marking mode.
        self.labels = LabelState(self, self.report_error, parent=self, undo=self.undo_stack)
        self.labels.sig_navigate.connect(self.set_slice)
        #: The MPR views' linked crosshair (row and column; the slice is this controller's).
        self.crosshair = CrosshairState(self, parent=self)
        self.crosshair.sig_navigate.connect(self.set_slice)
        #: The reader's measurements and annotations of the open study, and the measuring tool.
        self.measurements = MeasureState(self, self.report_error, self.undo_stack, parent=self)
        self.measurements.sig_jump.connect(self.crosshair.set_voxel)
        #: The DICOM SEG lying on the series on screen, outlined in every plane.
        self.segments = SegmentState(self, sync=sync, parent=self)
        #: The measurement groups of the structured reports on the series on screen (Measurements panel).
        self.reports = ReportState(self, sync=sync, parent=self)
        app = QCoreApplication.instance()
        if app is not None and leader is None:
            app.aboutToQuit.connect(self.shutdown)

    # -- other viewports' series ---------------------------------------------------------------------------

    def companion(self) -> ViewerController:
        """A controller of this scan for a viewport that shows another series (a prior, another sequence).

        It loads, scrolls and windows its series on its own lanes; it runs no AI and no scan. It shares
        this controller's undo stack, error handler, patient-lines toggle, measuring tool and marking
        mode, and the study files (labels and measurements are one store per study and process). It is
        shut down with this controller, or by :meth:`drop_companion`.
        """
        other = ViewerController(self, sync=self._sync, leader=self)
        other._scan, other._paths, other._reversed = self._scan, list(self._paths), self._reversed
        other._show_patient = self._show_patient
        self.sig_patient_info_changed.connect(other.set_show_patient_info)
        for a, b in ((self, other), (other, self)):
            a.measurements.sig_tool_changed.connect(b.measurements.set_tool)
            a.labels.sig_mode_changed.connect(b.labels.set_mode)
        other.labels.sig_labels_changed.connect(lambda _snapshot: self.labels.refresh())  # the Labels panel
        other.measurements.set_tool(self.measurements.tool)
        other.labels.set_mode(self.labels.mode)
        self._companions.append(other)
        return other

    @property
    def companions(self) -> tuple[ViewerController, ...]:
        return tuple(self._companions)

    def drop_companion(self, other: ViewerController) -> None:
        """Stop ``other`` (its viewport shows this controller's series again, or a new scan came)."""
        if other in self._companions:
            self._companions.remove(other)
            other.shutdown()
            other.deleteLater()

    # -- read-only state ---------------------------------------------------------------------------------

    @property
    def scan_result(self) -> ScanResult | None:
        return self._scan

    @property
    def paths(self) -> tuple[str, ...]:
        """The files and folders opened last (the fine-tune dialog finds the labelled study under them)."""
        return tuple(self._paths)

    @property
    def series(self) -> SeriesInfo | None:
        return self._series

    @property
    def series_key(self) -> str | None:
        return self._series.key if self._series is not None else None

    @property
    def volume(self) -> Volume | None:
        return self._volume

    @property
    def slice_index(self) -> int:
        return self._index

    @property
    def n_slices(self) -> int:
        return self._volume.n_slices if self._volume is not None else 0

    @property
    def window(self) -> Window | None:
        """Current VOI window in modality units; None until the first slice of a series is known."""
        return self._window

    @property
    def invert(self) -> bool:
        """The user's inversion toggle (relative to the photometric interpretation)."""
        return self._invert

    @property
    def display_invert(self) -> bool:
        """Whether the display LUT inverts: MONOCHROME1 XOR the user's toggle."""
        base = self._volume.invert if self._volume is not None else False
        return base != self._invert

    @property
    def show_patient_info(self) -> bool:
        return self._show_patient

    @property
    def loaded(self) -> bool:
        """True once every slice of the current series was read (or failed)."""
        return self._loaded_done

    @property
    def busy(self) -> bool:
        return any(w.busy for w in self._workers)

    def current_source(self) -> tuple[FileHeader, int] | None:
        """File and frame holding the slice on screen (the tag panel reads this file)."""
        if self._series is None:
            return None
        return self._series.frame_source(self._index)

    def slice_ready(self, index: int | None = None) -> bool:
        """True when slice ``index`` (default: the current one) holds its pixels."""
        if self._volume is None:
            return False
        return bool(self._volume.loaded[self._index if index is None else index])

    def problems(self) -> Problems:
        """A snapshot of everything the Problems panel lists."""
        result = self._scan
        skipped = result.skipped if result is not None else ()
        not_dicom = len(result.not_dicom) if result is not None else 0
        warnings = tuple((series_label(s), w) for s in (result.series if result else ()) for w in s.warnings)
        failures: tuple[SliceFailure, ...] = ()
        if self._volume is not None and self._volume.failed:
            label = series_label(self._series)
            items = sorted(list(self._volume.failed.items()))
            failures = tuple(
                SliceFailure(label, i, self._series.frame_source(i)[0].path, reason, self._series.image_label(i))
                for i, reason in items
            )
        return Problems(skipped=tuple(skipped), not_dicom=not_dicom, series_warnings=warnings,
                        slice_failures=failures, errors=tuple(self._errors))

    # -- opening -----------------------------------------------------------------------------------------

    def open_paths(self, paths: Iterable[str | Path], auto_select: bool = True) -> int:
        """Scan files/folders on the scan lane; when done, the largest series is selected (if asked).

        Returns the scan's request id. A newer call cancels an unfinished scan.
        """
        self._paths = [str(p) for p in paths]
        self._auto_select = auto_select
        paths_now = list(self._paths)
        self.sig_scan_started.emit(paths_now)

        def job(ctx: JobContext) -> ScanResult:
            return scan(paths_now, progress=ctx.progress, cancel=ctx.cancelled)

        rid = self._scanner.submit(job, name="scan")
        self._update_busy()
        return rid

    def _on_scan_progress(self, rid: int, done: int, total: int) -> None:
        if self._scanner.is_current(rid):
            self.sig_scan_progress.emit(done, total)

    def _on_scan_finished(self, rid: int, result: ScanResult) -> None:
        if not self._scanner.is_current(rid):
            return
        self._scan = result
        self._generation += 1
        self._errors.clear()
        self._thumbnailer.cancel()
        self.sig_scan_finished.emit(result)
        self._emit_problems()
        for s in result.series:
            self._request_thumbnail(s)
        first = largest_series(result)
        if first is not None and self._auto_select:
            self._series = self._volume = None  # the same key may now stand for different files
            self.select_series(first.key)
        else:
            self._clear_series()
        if first is None:
            self.report_error(f"nothing loadable in {', '.join(self._paths)}: "
                              f"{len(result.skipped)} file(s) skipped, {len(result.not_dicom)} not DICOM")

    def _request_thumbnail(self, series: SeriesInfo) -> None:
        generation = self._generation

        def job(ctx: JobContext) -> tuple[int, str, np.ndarray | None, str]:
            try:
                return generation, series.key, thumbnail(series), ""
            except RadviewError as e:  # an undecodable slice: the browser shows the reason instead
                return generation, series.key, None, getattr(e, "reason", str(e))

        self._thumbnailer.submit(job, name=f"thumbnail of {series_label(series)}")

    def _on_thumbnail(self, rid: int, result: tuple[int, str, np.ndarray | None, str]) -> None:
        generation, key, image, reason = result
        if generation != self._generation:
            return
        if image is not None:
            self.sig_thumbnail_ready.emit(key, image)
        else:
            self.sig_thumbnail_failed.emit(key, reason)

    def _on_thumbnail_failed(self, rid: int, message: str, traceback_text: str) -> None:
        self.report_error(message, traceback_text)

    # -- series and loading ------------------------------------------------------------------------------

    def select_series(self, key: str) -> None:
        """Show series ``key``: cancel any load in flight, allocate, load from the middle slice outwards.

        Raises ``KeyError`` for a key the last scan does not hold.
        """
        if self._scan is None:
            raise KeyError(key)
        series = self._scan.find(key.removesuffix(REVERSED_SUFFIX))
        if self._series is not None and series.key == self._series.scan_key and self._volume is not None:
            return
        self._show(series.reversed() if series.description in self._reversed else series, series.n_slices // 2)

    # -- display order -----------------------------------------------------------------------------------

    @property
    def reversed_descriptions(self) -> frozenset[str]:
        """Series descriptions the reader has chosen to see the other way round (kept by the window)."""
        return frozenset(self._reversed)

    def set_reversed_descriptions(self, descriptions) -> None:
        """The reader's remembered choices (the window reads them from its settings at start)."""
        self._reversed = set(descriptions)

    def reverse_display_order(self) -> None:
        """Show the series on screen the other way round, on the same slice, and remember it for every
        series of that description (radiologists keep per protocol the order they read in)."""
        series = self._series
        if series is None:
            return
        if series.description in self._reversed:
            self._reversed.discard(series.description)
        else:
            self._reversed.add(series.description)
        self.sig_reversed_changed.emit(frozenset(self._reversed))
        window, invert = self._window, self._invert
        self._show(series.reversed(), series.n_slices - 1 - self._index)
        if window is not None:  # the reader's window and inversion stay
            self.set_window(window)
        if invert:
            self.set_invert(True)

    def _show(self, series: SeriesInfo, index: int) -> None:
        """Allocate ``series`` and load it from slice ``index`` outwards (see :meth:`select_series`)."""
        self._loader.cancel()
        try:
            volume = allocate(series)
        except SeriesLoadError as e:
            self._clear_series()
            self.report_error(str(e))
            return
        self._series, self._volume = series, volume
        self._index = min(max(index, 0), series.n_slices - 1)
        self._shown_loaded = False
        self._loaded_done = False
        self._n_failed = 0
        first = series.first
        self._window = (Window(first.window_center, first.window_width, "file")
                        if first.window_center is not None and first.window_width is not None else None)
        self._invert = False
        self.sig_series_selected.emit(series.key)
        self.sig_invert_changed.emit(self._invert)
        if self._window is not None:
            self.sig_window_changed.emit(self._window)
        self.sig_load_progress.emit(0, series.n_slices)
        self.sig_slice_changed.emit(self._index)
        self._emit_problems()
        start = self._index
        self._first_shown = shown = threading.Event()

        def job(ctx: JobContext) -> Volume:
            # The first slice is painted before the bulk load competes for the CPU (bounded wait).
            return load_into(volume, first=start, progress=ctx.progress, cancel=ctx.cancelled,
                             after_first=lambda: shown.wait(FIRST_PAINT_WAIT_S))

        self._loader.submit(job, name=f"loading {series_label(series)}")
        self._update_busy()

    def _clear_series(self) -> None:
        self._loader.cancel()
        self._series = self._volume = None
        self._index = 0
        self._window = None
        self._loaded_done = False
        self.sig_series_selected.emit("")
        self.sig_slice_changed.emit(0)
        self._emit_problems()

    def _on_load_progress(self, rid: int, done: int, total: int) -> None:
        if not self._loader.is_current(rid) or self._volume is None:
            return
        self._after_slices_arrived()
        self.sig_load_progress.emit(done, total)

    def _on_load_finished(self, rid: int, volume: Volume) -> None:
        if not self._loader.is_current(rid) or volume is not self._volume:
            return
        self._loaded_done = True
        self._after_slices_arrived(force_refresh=bool(volume.failed))
        self.sig_load_progress.emit(volume.n_slices, volume.n_slices)
        self.sig_series_loaded.emit(volume.series.key)

    def _after_slices_arrived(self, force_refresh: bool = False) -> None:
        """New slices are in: pick the default window once, redraw the slice on screen if it arrived."""
        volume = self._volume
        if self._window is None and volume.loaded.any():
            self._window = volume.default_window()
            self.sig_window_changed.emit(self._window)
        now_loaded = bool(volume.loaded[self._index])
        if force_refresh or (now_loaded and not self._shown_loaded):
            self._shown_loaded = now_loaded
            self.sig_slice_changed.emit(self._index)
        if now_loaded and not self._first_shown.is_set():
            # Queued behind the repaint the slot above requested: set once the slice is on screen.
            QTimer.singleShot(0, self._first_shown.set)
        if len(volume.failed) != self._n_failed:
            self._n_failed = len(volume.failed)
            self._emit_problems()

    # -- navigation and display --------------------------------------------------------------------------

    def set_slice(self, index: int) -> None:
        """Show slice ``index`` (clamped to the series)."""
        if self._volume is None:
            return
        index = int(min(max(index, 0), self._volume.n_slices - 1))
        if index == self._index:
            return
        self._index = index
        self._shown_loaded = bool(self._volume.loaded[index])
        self.sig_slice_changed.emit(index)

    def step(self, n: int) -> None:
        """Move ``n`` slices (negative: towards the first)."""
        self.set_slice(self._index + n)

    def page(self, direction: int) -> None:
        """Move :data:`PAGE_STEP` slices in ``direction`` (+1 or -1)."""
        self.step(PAGE_STEP * (1 if direction > 0 else -1))

    def first_slice(self) -> None:
        self.set_slice(0)

    def last_slice(self) -> None:
        self.set_slice(self.n_slices - 1)

    def set_window(self, window: Window) -> None:
        """Use ``window`` (centre/width in modality units; width at least 1)."""
        if window.width < MIN_WINDOW_WIDTH:
            window = Window(window.center, MIN_WINDOW_WIDTH, window.name)
        if window == self._window:
            return
        self._window = window
        self.sig_window_changed.emit(window)

    def apply_preset(self, which: int | str) -> Window:
        """Apply a preset by its key (1-5, in :data:`~viewer.core.windowing.PRESETS` order) or name."""
        if isinstance(which, int):
            if not 1 <= which <= len(PRESETS):
                raise KeyError(f"preset key must be 1-{len(PRESETS)}, not {which}")
            window = PRESETS[which - 1]
        else:
            window = preset(which)
        self.set_window(window)
        return window

    def default_window(self) -> Window | None:
        """The series' own window (file tags, else a percentile window of a loaded slice)."""
        if self._volume is None or not self._volume.loaded.any():
            return None
        return self._volume.default_window()

    def reset(self) -> None:
        """Back to the series' default window, no inversion, image fitted."""
        window = self.default_window()
        if window is not None:
            self.set_window(window)
        self.set_invert(False)
        self.request_fit()

    def set_invert(self, invert: bool) -> None:
        if invert != self._invert:
            self._invert = invert
            self.sig_invert_changed.emit(invert)

    def toggle_invert(self) -> None:
        self.set_invert(not self._invert)

    def set_show_patient_info(self, show: bool) -> None:
        if self._leader is not None and show != self._leader.show_patient_info:
            self._leader.set_show_patient_info(show)  # one toggle for every viewport (it comes back here)
            return
        if show != self._show_patient:
            self._show_patient = show
            self.sig_patient_info_changed.emit(show)

    def toggle_patient_info(self) -> None:
        self.set_show_patient_info(not self._show_patient)

    def request_fit(self) -> None:
        self.sig_fit_requested.emit()

    # -- errors, busy, shutdown --------------------------------------------------------------------------

    def report_error(self, message: str, traceback_text: str = "") -> None:
        """The one handler of failures: logged with the traceback, listed in Problems, shown in the status bar."""
        if self._leader is not None:
            self._leader.report_error(message, traceback_text)
            return
        if traceback_text:
            log.error("%s\n%s", message, traceback_text)
        else:
            log.warning("%s", message)
        self._errors.append(message)
        self.sig_error.emit(message)
        self._emit_problems()

    def _on_scan_failed(self, rid: int, message: str, traceback_text: str) -> None:
        if self._scanner.is_current(rid):
            self.report_error(message, traceback_text)
        else:
            log.debug("superseded scan %s failed: %s", rid, message)

    def _on_load_failed(self, rid: int, message: str, traceback_text: str) -> None:
        if not self._loader.is_current(rid):
            log.debug("superseded load %s failed: %s", rid, message)
            return
        self._loaded_done = True
        self.report_error(message, traceback_text)
        if self._volume is not None:
            self._after_slices_arrived(force_refresh=True)

    def _emit_problems(self) -> None:
        self.sig_problems_changed.emit(self.problems())

    def _update_busy(self, *_: object) -> None:
        busy = self.busy
        if busy != self._busy:
            self._busy = busy
            self.sig_busy_changed.emit(busy)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Process events until scan, load, thumbnails and AI analysis are done and delivered; False on timeout."""
        workers = [*self._workers, self.ai.lane.worker, *(w for c in self._companions for w in c._workers)]
        return wait_until_idle(workers, timeout_s)

    def shutdown(self) -> None:
        """Cancel all work and join the worker threads (idempotent; called at quit and window close)."""
        if self._stopped:
            return
        self._stopped = True
        for other in self._companions:
            other.shutdown()
        self.ai.shutdown()
        self.segments.shutdown()
        self.reports.shutdown()
        for w in self._workers:
            if not w.stop():
                log.warning("worker %s did not stop in time", w.name)


def preset_names() -> Sequence[str]:
    """Preset names in key order (1-5)."""
    return [w.name for w in PRESETS]


__all__ = [
    "PAGE_STEP", "Problems", "RadviewError", "SliceFailure", "ViewerController", "largest_series",
    "preset_names", "series_label",
]
