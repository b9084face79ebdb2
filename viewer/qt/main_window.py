"""The main window: slice view in the centre, docks for series, tags, problems and the AI, menus, status bar.

With the AI on (the default), an "AI second reader" dock (model picker and card, the slice's probability,
faithfulness badge, overlay controls), tabbed with tags and problems and shown first, and a "Probability
along slices" dock at the bottom join them; the AI menu holds H (heatmap) and N / Shift+N (next /
previous suspicious slice).

Folders and files dropped anywhere on the window are opened (the slice view and the docks do not take
drops, so the events reach the window). Recent folders live in ``QSettings`` (organisation "radview").
Nothing here reads pixels or headers on the UI thread beyond the one header the tag panel shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, QSignalBlocker, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QTextEdit,
    QWidget,
)

from viewer.core.scan import ScanResult
from viewer.core.windowing import PRESETS
from viewer.qt.ai.finding_review import FindingReview
from viewer.qt.ai.findings_panel import FindingsPanel
from viewer.qt.ai.panel import AIPanel
from viewer.qt.ai.plot import ProbabilityPlot
from viewer.qt.anonymise_export import AnonymiseExport
from viewer.qt.controller import ViewerController, series_label
from viewer.qt.error_panel import ErrorPanel
from viewer.qt.labels_panel import LabelsPanel
from viewer.qt.measurements_panel import MeasurementsPanel
from viewer.qt.pacs.dialog import PacsDialog
from viewer.qt.pacs.send_findings import capture_snapshot, findings_snapshot
from viewer.qt.problems_panel import ProblemsPanel
from viewer.qt.series_browser import SeriesBrowser
from viewer.qt.tag_panel import TagPanel
from viewer.qt.view.cine import RATES, Cine
from viewer.qt.view.corner_text import CursorReadout
from viewer.qt.view.keys import handle_view_key
from viewer.qt.view.measure_bar import MeasureBar
from viewer.qt.view.slab_bar import SlabBar
from viewer.qt.view.slice_view import SliceView
from viewer.qt.view.view_grid import ViewGrid

ORGANISATION = "radview"
APPLICATION = "radview"
#: Recent folders remembered in the File menu.
MAX_RECENT = 8
RECENT_KEY = "recent_folders"
#: Series descriptions the reader shows in reverse slice order (View › Reverse Slice Order).
REVERSED_KEY = "display/reversed_series"
#: The window's size and place, and its docks and toolbar (QMainWindow.saveState), between runs.
GEOMETRY_KEY, STATE_KEY = "window/geometry", "window/state"
#: Bumped when the docks change so much that an older saved state should not be restored.
LAYOUT_VERSION = 1
#: Widgets that keep their keys (typing, editing, spinning).
TEXT_FIELDS = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)


def local_paths(urls: Iterable[QUrl]) -> list[str]:
    """Local file system paths of dropped URLs (remote URLs are ignored)."""
    return [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile()]


class MainWindow(QMainWindow):
    """radview's window.

    Parameters
    ----------
    controller:
        The view state; a new one (with worker threads) is made when omitted.
    settings:
        Where recent folders are kept; default ``QSettings("radview", "radview")``. Tests pass an
        ini file in a temporary folder.
    remember_recent:
        False for offscreen renders, which must not change the user's recent folders.
    ai:
        Run the AI second reader (ignored when a controller is given: its ``ai.enabled`` decides).
    """

    def __init__(self, controller: ViewerController | None = None, settings: QSettings | None = None,
                 remember_recent: bool = True, parent: QWidget | None = None, ai: bool = True) -> None:
        super().__init__(parent)
        self.controller = controller or ViewerController(self, ai=ai)
        self.settings = settings if settings is not None else QSettings(ORGANISATION, APPLICATION)
        self.remember_recent = remember_recent
        self.controller.set_reversed_descriptions(self._setting_list(REVERSED_KEY))
        self.controller.sig_reversed_changed.connect(
            lambda descriptions: self.settings.setValue(REVERSED_KEY, sorted(descriptions)))
        self.setWindowTitle("radview")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        self.view_grid = ViewGrid(self.controller, self)
        #: The acquisition plane's view (the first viewport of every layout).
        self.slice_view = self.view_grid.first
        self.setCentralWidget(self.view_grid)
        self.slab_bar = SlabBar(self.view_grid, self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.slab_bar)
        self.measure_bar = MeasureBar(self.controller.measurements, self)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.measure_bar)
        self.series_browser = SeriesBrowser(self.controller)
        self.tag_panel = TagPanel(self.controller)
        self.problems_panel = ProblemsPanel(self.controller)
        self.series_dock = self._dock("Series", "series", self.series_browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tags_dock = self._dock("Tags", "tags", self.tag_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.problems_dock = self._dock(
            "Problems", "problems", self.problems_panel, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.tabifyDockWidget(self.tags_dock, self.problems_dock)
        self.labels_panel = LabelsPanel(self.controller)
        self.labels_dock = self._dock("Labels", "labels", self.labels_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.problems_dock, self.labels_dock)
        self.measurements_panel = MeasurementsPanel(self.controller)
        self.measurements_dock = self._dock("Measurements", "measurements", self.measurements_panel,
                                            Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.labels_dock, self.measurements_dock)
        self.findings_panel = self.findings_dock = None
        if self.controller.ai.enabled:
            c = self.controller
            self.finding_review = FindingReview(c.ai, c, c.measurements, c.labels, c.report_error, parent=self)
            self.findings_panel = FindingsPanel(c.ai, c, c.crosshair, self.finding_review, c.reports)
            self.findings_dock = self._dock("Findings", "findings", self.findings_panel,
                                            Qt.DockWidgetArea.RightDockWidgetArea)
            self.tabifyDockWidget(self.measurements_dock, self.findings_dock)
        self.measurements_panel.setAcceptDrops(False)
        self.labels_panel.setAcceptDrops(False)
        # every unexpected exception (any worker, the last-resort hooks): shown when the first one arrives
        self.error_panel = ErrorPanel()
        self.errors_dock = self._dock("Errors", "errors", self.error_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.labels_dock, self.errors_dock)
        self.errors_dock.hide()
        self.error_panel.sig_new_report.connect(lambda _report: (self.errors_dock.show(), self.errors_dock.raise_()))
        self.error_panel.sig_count_changed.connect(
            lambda n: self.errors_dock.setWindowTitle(f"Errors ({n})" if n else "Errors"))
        self.anonymise_export = AnonymiseExport(self)
        self.anonymise_export.sig_message.connect(lambda message: self.statusBar().showMessage(message, 30_000))
        self.tags_dock.raise_()
        self.finetune_dialog = None  # made on first use (viewer.qt.finetune)
        self.pacs_dialog = None  # made on first use (viewer.qt.pacs)
        self.model_manager = None
        self.resizeDocks([self.series_dock, self.tags_dock], [230, 360], Qt.Orientation.Horizontal)
        for w in (self.series_browser, self.tag_panel, self.problems_panel):
            w.setAcceptDrops(False)
        self.ai_panel: AIPanel | None = None
        self.probability_plot: ProbabilityPlot | None = None
        self.ai_dock = self.plot_dock = None
        if self.controller.ai.enabled:
            self.ai_panel = AIPanel(self.controller.ai)
            self.probability_plot = ProbabilityPlot(self.controller, self.controller.ai)
            self.probability_plot.sig_navigate.connect(self.controller.set_slice)
            self.ai_dock = self._dock("AI second reader", "ai", self.ai_panel, Qt.DockWidgetArea.RightDockWidgetArea)
            self.plot_dock = self._dock("Probability along slices", "probability", self.probability_plot,
                                        Qt.DockWidgetArea.BottomDockWidgetArea)
            # the AI panel needs the column's height; tags and problems are one tab away
            self.tabifyDockWidget(self.problems_dock, self.ai_dock)
            self.ai_dock.raise_()
            self.resizeDocks([self.plot_dock], [150], Qt.Orientation.Vertical)
            for w in (self.ai_panel, self.probability_plot):
                w.setAcceptDrops(False)

        self.cursor_label = QLabel(self)
        self.cursor_label.setMinimumWidth(380)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.statusBar().addPermanentWidget(self.progress)

        self._build_menus()
        c = self.controller
        c.sig_scan_started.connect(self._on_scan_started)
        c.sig_scan_progress.connect(self._on_scan_progress)
        c.sig_scan_finished.connect(self._on_scan_finished)
        c.sig_series_selected.connect(self._on_series_selected)
        c.sig_load_progress.connect(self._on_load_progress)
        c.sig_invert_changed.connect(lambda v: self._set_checked(self.invert_action, v))
        self.view_grid.sig_active_changed.connect(lambda v: self._set_checked(self.invert_action, v.controller.invert))
        c.sig_patient_info_changed.connect(lambda v: self._set_checked(self.patient_action, v))
        c.sig_error.connect(lambda message: self.statusBar().showMessage(message, 15_000))
        c.ai.sig_message.connect(lambda message: self.statusBar().showMessage(message, 15_000))
        self.problems_panel.sig_count_changed.connect(self._on_problem_count)
        self.view_grid.sig_cursor_moved.connect(self._on_cursor)
        self._fit_to_screen()
        if self.remember_recent:
            self._restore_layout()
        self.slice_view.setFocus()
        # the viewer's keys work wherever the focus is in this window, except in text fields
        QApplication.instance().installEventFilter(self)

    # -- building ------------------------------------------------------------------------------------------

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{name}_dock")
        dock.setWidget(widget)
        dock.setAcceptDrops(False)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu: QMenu, text: str, slot, shortcut: str | QKeySequence | None = None,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "Open &Folder…", self.choose_folder, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open F&iles…", self.choose_files, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("&Recent Folders")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self._action(file_menu, "&PACS…", self.show_pacs, "Ctrl+Shift+P")
        self._action(file_menu, "&Anonymise and Export DICOM…", self.anonymise_dicom)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit = bar.addMenu("&Edit")
        undo = self.controller.undo_stack
        self.undo_action = self._action(edit, "&Undo", undo.undo, "Ctrl+Z")
        self.redo_action = self._action(edit, "&Redo", undo.redo, "Ctrl+Shift+Z")
        undo.sig_changed.connect(self._on_undo_changed)
        self._on_undo_changed(undo.undo_text, undo.redo_text)

        view = bar.addMenu("&View")
        for n, window in enumerate(PRESETS, start=1):
            text = f"{window.name.capitalize()} window (W {window.width:.0f} / L {window.center:.0f})"
            self._action(view, text, lambda _=False, k=n: self._active().apply_preset(k), str(n))
        view.addSeparator()
        self._action(view, "&Reset Window and Zoom", lambda: self._active().reset(), "R")
        self.invert_action = self._action(view, "&Invert", lambda on: self._active().set_invert(on), "I",
                                          checkable=True)
        self._action(view, "&Fit to Window", lambda: self.view_grid.active.fit(), "F")
        self.patient_action = self._action(view, "Show &Patient Information", self.controller.set_show_patient_info,
                                           "P", checkable=True)
        self.patient_action.setChecked(self.controller.show_patient_info)
        self._action(view, "Re&verse Slice Order (this kind of series)", self.controller.reverse_display_order,
                     "Ctrl+R")
        layouts = view.addMenu("&Layout")
        for k, (name, text) in enumerate((("1x1", "1 × 1"), ("1x2", "1 × 2"), ("2x2", "2 × 2"),
                                          ("mpr", "MPR: axial, coronal, sagittal, MIP")), start=1):
            self._action(layouts, text, lambda _=False, n=name: self.view_grid.set_layout(n), f"Ctrl+{k}")
        sync = self.view_grid.sync
        self.sync_scroll_action = self._action(view, "Sync &Scrolling (same frame of reference)", sync.set_scroll,
                                               checkable=True)
        self.sync_window_action = self._action(view, "Sync &Window/Level", sync.set_window, checkable=True)
        sync.sig_changed.connect(self._on_sync_changed)
        self._on_sync_changed()
        cine = view.addMenu("&Cine")
        self.cine = Cine(self.view_grid, self)
        self._action(cine, "&Play / Pause", self.cine.toggle, "Space")
        for rate in RATES:
            self._action(cine, f"{rate} images per second", lambda _=False, r=rate: self.cine.set_rate(r))
        self.cine.sig_changed.connect(
            lambda playing, rate: self.statusBar().showMessage(f"cine {rate} images/s" if playing else "cine paused",
                                                              3000))
        slab = view.addMenu("Thick &Slab")
        # the keys are the view's (handle_view_key); "\t" only shows them in the menu
        self._action(slab, "Thicker Slab\t]", lambda: self.view_grid.active.change_slab(1))
        self._action(slab, "Thinner Slab\t[", lambda: self.view_grid.active.change_slab(-1))
        self._action(slab, "Next Projection (MIP, MinIP, Mean)\tT", lambda: self.view_grid.active.cycle_projection())
        self._action(slab, "No Slab", lambda: self.view_grid.active.set_slab(0.0))
        view.addSeparator()
        for dock in (self.series_dock, self.tags_dock, self.problems_dock, self.labels_dock, self.measurements_dock,
                     self.findings_dock, self.ai_dock,
                     self.plot_dock, self.errors_dock):
            if dock is not None:
                view.addAction(dock.toggleViewAction())
        if self.controller.ai.enabled:
            ai = self.controller.ai
            menu = bar.addMenu("&AI")
            self.heat_action = self._action(menu, "Show &Heatmap", ai.set_overlay_visible, "H", checkable=True)
            self.heat_action.setChecked(ai.overlay.visible)
            ai.sig_overlay_changed.connect(lambda o: self._set_checked(self.heat_action, o.visible))
            self._action(menu, "&Next Suspicious Slice", lambda: ai.next_suspicious(1), "N")
            self._action(menu, "&Previous Suspicious Slice", lambda: ai.next_suspicious(-1), "Shift+N")
            menu.addSeparator()
            self._action(menu, "Model &Card…", self.ai_panel.show_card)
            self._action(menu, "&Fine-tune…", self.show_finetune)
            self._action(menu, "&Models…", self.show_model_manager)
        labels = bar.addMenu("&Labels")
        # the keys are the slice view's (handle_view_key); "\t" only shows them in the menu
        self._action(labels, "Label Slice as Positive Class\tL", lambda: self.controller.labels.mark_class(-1))
        self._action(labels, "Label Slice as First Class\tK", lambda: self.controller.labels.mark_class(0))
        self._action(labels, "Remove Slice's Label\tDel", self.controller.labels.remove_current)
        self._action(labels, "Cycle Point / Box Marking\tM", self.controller.labels.cycle_mode)
        labels.addSeparator()
        self._action(labels, "Edit Classes…", self.labels_panel.edit_classes)
        self._action(labels, "Export CSV…", self.labels_panel.choose_export)
        self._action(labels, "Import CSV…", self.labels_panel.choose_import)
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard Shortcuts…", self.show_shortcuts, "F1")
        self.shortcut_help = None

    def _active(self) -> ViewerController:
        """The controller of the active viewport (the keys and the View menu act on its series)."""
        return self.view_grid.active.controller

    def _on_sync_changed(self) -> None:
        self._set_checked(self.sync_scroll_action, self.view_grid.sync.scroll)
        self._set_checked(self.sync_window_action, self.view_grid.sync.window)

    def _on_undo_changed(self, undo_text: str, redo_text: str) -> None:
        self.undo_action.setText(f"&Undo {undo_text}" if undo_text else "&Undo")
        self.undo_action.setEnabled(bool(undo_text))
        self.redo_action.setText(f"&Redo {redo_text}" if redo_text else "&Redo")
        self.redo_action.setEnabled(bool(redo_text))

    def show_shortcuts(self) -> None:
        """Help › Keyboard Shortcuts (F1)."""
        from viewer.qt.shortcut_help import ShortcutHelp

        if self.shortcut_help is None:
            self.shortcut_help = ShortcutHelp(self.findChildren(QAction), self)
        self.shortcut_help.show()
        self.shortcut_help.raise_()

    def show_finetune(self) -> None:
        """The non-modal fine-tune dialog (one per window, kept between uses)."""
        from viewer.qt.finetune.dialog import FineTuneDialog

        if self.finetune_dialog is None:
            self.finetune_dialog = FineTuneDialog(self.controller, self)
        self.finetune_dialog.show()
        self.finetune_dialog.raise_()

    def show_model_manager(self) -> None:
        from viewer.qt.model_manager import ModelManager

        if self.model_manager is None:
            self.model_manager = ModelManager(self.controller, self)
        self.model_manager.refresh()
        self.model_manager.show()
        self.model_manager.raise_()

    # -- opening -------------------------------------------------------------------------------------------

    def open_paths(self, paths: Iterable[str | Path]) -> None:
        """Scan and show ``paths`` (files or folders); the folder is remembered in Recent Folders."""
        paths = [str(p) for p in paths]
        if not paths:
            return
        if self.remember_recent:
            first = Path(paths[0])
            self._remember_folder(first if first.is_dir() else first.parent)
        self.controller.open_paths(paths)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self._last_folder())
        if folder:
            self.open_paths([folder])

    def show_pacs(self) -> PacsDialog:
        """File › PACS…: search, retrieve, send and receive (made once, kept while the window lives)."""
        if self.pacs_dialog is None:
            self.pacs_dialog = PacsDialog(lambda folder: self.open_paths([folder]),
                                          lambda text: self.statusBar().showMessage(text, 30_000),
                                          self._series_files, self._findings_to_send, self._capture_to_send, self)
        self.pacs_dialog.show()
        self.pacs_dialog.raise_()
        return self.pacs_dialog

    def _series_files(self) -> list[Path]:
        series = self.controller.series
        return sorted({h.path for h in series.files}) if series is not None else []

    def _findings_to_send(self):
        if not self.controller.ai.enabled:
            return "The assistant is off: there are no findings to send"
        return findings_snapshot(self.controller, self.finding_review)

    def _capture_to_send(self):
        if not self.controller.ai.enabled:
            return "The assistant is off: there is no heatmap to send"
        return capture_snapshot(self.controller)

    def anonymise_dicom(self) -> None:
        """File › Anonymise and Export DICOM…: every file of the open study (or a folder to choose)."""
        result = self.controller.scan_result
        files = sorted({h.path for s in result.series for h in s.files}) if result is not None else []
        self.anonymise_export.choose_and_start(files, self)

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open DICOM files", self._last_folder(),
                                                "DICOM files (*.dcm *.dicom *.ima *.dic);;All files (*)")
        if files:
            self.open_paths(files)

    def recent_folders(self) -> list[str]:
        return self._setting_list(RECENT_KEY)

    def _setting_list(self, key: str) -> list[str]:
        value = self.settings.value(key, [])
        if isinstance(value, str):  # QSettings returns a lone string for a one-item list (ini files)
            value = [value]
        return [str(v) for v in (value or [])]

    def _last_folder(self) -> str:
        recent = self.recent_folders()
        return recent[0] if recent else str(Path.home())

    def _remember_folder(self, folder: Path) -> None:
        folder_text = str(folder.resolve())
        recent = [folder_text] + [f for f in self.recent_folders() if f != folder_text]
        self.settings.setValue(RECENT_KEY, recent[:MAX_RECENT])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_folders()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for folder in recent:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.open_paths([f]))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", lambda: self.settings.setValue(RECENT_KEY, []))

    # -- drag and drop ------------------------------------------------------------------------------------------

    def dragEnterEvent(self, ev: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if ev.mimeData().hasUrls() and local_paths(ev.mimeData().urls()):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev) -> None:  # noqa: N802 - Qt override
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = local_paths(ev.mimeData().urls()) if ev.mimeData().hasUrls() else []
        if not paths:
            ev.ignore()
            return
        ev.acceptProposedAction()
        self.open_paths(paths)

    # -- controller -> window --------------------------------------------------------------------------------------

    @staticmethod
    def _set_checked(action: QAction, checked: bool) -> None:
        with QSignalBlocker(action):
            action.setChecked(checked)

    def _on_scan_started(self, paths: list[str]) -> None:
        self.statusBar().showMessage(f"Scanning {', '.join(Path(p).name or p for p in paths)[:120]}…")
        self.progress.setFormat("scanning %v/%m")
        self.progress.setRange(0, 0)
        self.progress.show()

    def _on_scan_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_scan_finished(self, result: ScanResult) -> None:
        self.progress.hide()
        n_files = sum(len(s.files) for s in result.series)
        self.statusBar().showMessage(
            f"{len(result.series)} series in {n_files} file(s); {len(result.skipped)} skipped, "
            f"{len(result.not_dicom)} not DICOM", 10_000)

    def _on_series_selected(self, key: str) -> None:
        series = self.controller.series
        self.setWindowTitle(f"radview — {series_label(series)}" if series is not None else "radview")

    def _on_load_progress(self, done: int, total: int) -> None:
        if done >= total:
            self.progress.hide()
            return
        self.progress.setFormat("loading %v/%m")
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.show()

    def _on_problem_count(self, count: int) -> None:
        self.problems_dock.setWindowTitle(f"Problems ({count})" if count else "Problems")

    def _on_cursor(self, readout: CursorReadout | None) -> None:
        self.cursor_label.setText(readout.text() if readout is not None else "")

    # -- keys and closing ---------------------------------------------------------------------------------------

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt override
        """Viewer keys pressed in a list, a tree or a button of this window go to the active view."""
        if ev.type() != QEvent.Type.KeyPress or not isinstance(obj, QWidget) or obj.window() is not self:
            return False
        if isinstance(obj, TEXT_FIELDS) or isinstance(obj, SliceView):
            return False  # text fields keep their keys; the views handle their own
        return handle_view_key(self._active(), ev, self.view_grid.active)

    def _fit_to_screen(self) -> None:
        """1280 × 800, or the screen's available size when smaller; on a small screen the docks start
        narrow and the plot short, so the image keeps most of the window (a 1024 × 700 laptop)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else None
        width = min(1280, available.width()) if available is not None else 1280
        height = min(800, available.height()) if available is not None else 800
        self.resize(width, height)
        if width < 1200 or height < 760:
            QTimer.singleShot(0, lambda: self._narrow_docks(width < 1200, height < 760))

    def _narrow_docks(self, narrow: bool, short: bool) -> None:
        """Once the window is laid out: the side docks at their narrowest, the plot at its shortest."""
        if narrow:
            right = [d for d in (self.tags_dock, self.ai_dock) if d is not None]
            self.resizeDocks([self.series_dock, *right], [140, *[200] * len(right)], Qt.Orientation.Horizontal)
        if short and self.plot_dock is not None:
            self.plot_dock.widget().setMinimumHeight(60)
            self.resizeDocks([self.plot_dock], [80], Qt.Orientation.Vertical)

    def _restore_layout(self) -> None:
        """The docks and the window's size and place as the reader left them."""
        geometry, state = self.settings.value(GEOMETRY_KEY), self.settings.value(STATE_KEY)
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state, LAYOUT_VERSION)

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 - Qt override
        """Keys no child used (slice navigation while a dock has focus, for instance)."""
        if handle_view_key(self._active(), ev, self.view_grid.active):
            ev.accept()
            return
        super().keyPressEvent(ev)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Process events until the scan, load and thumbnails are done and the panels show them."""
        idle = self.controller.wait_idle(timeout_s)
        self.tag_panel.flush()
        return idle

    def closeEvent(self, ev: QCloseEvent) -> None:  # noqa: N802 - Qt override
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        if self.remember_recent:
            self.settings.setValue(GEOMETRY_KEY, self.saveGeometry())
            self.settings.setValue(STATE_KEY, self.saveState(LAYOUT_VERSION))
        if self.finetune_dialog is not None:
            self.finetune_dialog.shutdown()
        if self.pacs_dialog is not None:
            self.pacs_dialog.shutdown()
        self.anonymise_export.stop()
        self.controller.shutdown()
        super().closeEvent(ev)
