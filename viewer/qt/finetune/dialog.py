"""The non-modal fine-tune dialog: Setup -> Training (-> Grid search) -> Results, with the viewer usable
throughout.

Flow: *Estimate* (or *Start*) loads the data and prepares the split in the child process and shows the
estimated seconds per epoch (and, with a grid, the whole search's time at most); *Start* trains (a grid search
fills the Grid search page's table as each configuration finishes, then refits the best), drawing loss and
metric curves per epoch (pyqtgraph) and a progress bar with the ETA; *Cancel* stops at the next batch and
keeps nothing. The Results page then shows the metrics, ROC, confusion matrix, threshold picker, before/after
and both models' heatmaps on the slice on screen; *Save as new model* writes a new bundle (atomically, never
over another model); *Activate* saves if needed and switches the viewer's AI to it, which re-analyses the open
series.

All work runs through :class:`~viewer.qt.finetune.lane.FineTuneLane` (a worker thread driving a child
process); this module only draws and routes.
"""

from __future__ import annotations

import logging

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from viewer.ai.analysis import context_stack
from viewer.ai.finetune import EpochReport, GanReport, GridProgress, GridRow, TrainingProgress
from viewer.ai.finetune_service import Comparison, DataSummary, PreparedSummary, ResultView
from viewer.ai.model_registry import find_model
from viewer.base.model_card import BundleError
from viewer.qt.controller import ViewerController
from viewer.qt.finetune.grid_page import GridPage
from viewer.qt.finetune.lane import FineTuneLane
from viewer.qt.finetune.results_page import ResultsPage
from viewer.qt.finetune.setup_page import SetupPage, SetupValues

log = logging.getLogger(__name__)

PHASES = {"gan": "training the GAN", "before": "scoring the base model", "features": "caching features",
          "train": "training", "validate": "validating", "final": "scoring the kept model"}


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f" · about {seconds:.0f} s left" if seconds < 120 else f" · about {seconds / 60:.0f} min left"


class TrainingPage(QWidget):
    """Loss and metric curves per epoch, progress with the ETA, Cancel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss_plot = pg.PlotWidget(self)
        self.loss_plot.setTitle("Loss per epoch")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_plot.addLegend()
        self.train_loss = self.loss_plot.plot([], [], pen=pg.mkPen((80, 200, 255), width=2), symbol="o",
                                              symbolSize=6, name="train")
        self.val_loss = self.loss_plot.plot([], [], pen=pg.mkPen((255, 170, 60), width=2), symbol="o",
                                            symbolSize=6, name="validation")
        self.metric_plot = pg.PlotWidget(self)
        self.metric_plot.setTitle("AUC and accuracy per epoch (validation)")
        self.metric_plot.setLabel("bottom", "epoch")
        self.metric_plot.setYRange(0, 1)
        self.metric_plot.addLegend()
        self.val_auc = self.metric_plot.plot([], [], pen=pg.mkPen((120, 230, 140), width=2), symbol="o",
                                             symbolSize=6, name="AUC")
        self.val_acc = self.metric_plot.plot([], [], pen=pg.mkPen((230, 120, 230), width=2), symbol="t",
                                             symbolSize=6, name="accuracy")
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.log = QLabel("", self)
        self.log.setWordWrap(True)
        #: what GAN augmentation feeds the model: a grid of its samples, shown once the GAN is trained
        self.gan_view = pg.GraphicsLayoutWidget(self)
        self.gan_view.setFixedWidth(260)
        self.gan_box = self.gan_view.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.gan_image = pg.ImageItem(axisOrder="row-major")
        self.gan_box.addItem(self.gan_image)
        self.gan_label = QLabel("", self)
        self.gan_label.setWordWrap(True)
        self.gan_label.setFixedWidth(260)
        gan = QVBoxLayout()
        gan.addWidget(QLabel("GAN samples (what the model is fed as positives)", self))
        gan.addWidget(self.gan_view, 1)
        gan.addWidget(self.gan_label)
        self.gan_panel = QWidget(self)
        self.gan_panel.setLayout(gan)
        self.gan_panel.setVisible(False)
        self.gan: GanReport | None = None
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.metric_plot)
        plots.addWidget(self.gan_panel)
        layout = QVBoxLayout(self)
        layout.addLayout(plots, 1)
        layout.addLayout(row)
        layout.addWidget(self.log)
        self.points: list[EpochReport] = []

    def reset(self) -> None:
        self.points = []
        for curve in (self.train_loss, self.val_loss, self.val_auc, self.val_acc):
            curve.setData([], [])
        self.progress.setRange(0, 0)
        self.progress.setFormat("starting…")
        self.log.setText("")
        self.gan = None
        self.gan_image.clear()
        self.gan_panel.setVisible(False)

    def show_gan(self, report: GanReport) -> None:
        """The GAN's samples, as the model will see them (middle input channel), beside the curves."""
        self.gan = report
        self.gan_image.setImage(report.sample_grid(), levels=(0, 255))
        self.gan_box.autoRange(padding=0)
        self.gan_label.setText(f"Trained on {report.n_real} positive training image(s), {report.steps} steps, "
                               f"{report.seconds:.0f} s; {report.n_generated} generated positives join the training "
                               f"split only.")
        self.gan_panel.setVisible(True)

    def add_point(self, point: EpochReport) -> None:
        self.points.append(point)
        trained = [p for p in self.points if p.train_loss is not None]
        self.train_loss.setData([p.epoch for p in trained], [p.train_loss for p in trained])
        self.val_loss.setData([p.epoch for p in self.points], [p.val_loss for p in self.points])
        auc = [p for p in self.points if p.val.auc is not None]
        self.val_auc.setData([p.epoch for p in auc], [p.val.auc for p in auc])
        acc = [p for p in self.points if p.val.accuracy is not None]
        self.val_acc.setData([p.epoch for p in acc], [p.val.accuracy for p in acc])
        auc_text = "n/a" if point.val.auc is None else f"{point.val.auc:.3f}"
        self.log.setText(f"epoch {point.epoch}/{point.epochs}: validation loss {point.val_loss:.4f}, AUC {auc_text}"
                         + (" (best so far)" if point.best else "") + (" — stopping early" if point.stopping_early
                                                                       else ""))

    def finish(self) -> None:
        """Training ended with a result: the bar says so (not "scoring… about 0 s left")."""
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")

    def show_progress(self, p: TrainingProgress | GridProgress) -> None:
        """A batch done; a grid search's says which configuration, with the whole search's time left."""
        where, eta = "", p.eta_seconds
        if isinstance(p, GridProgress):
            where = "refit of the best · " if p.index == p.total else f"configuration {p.index + 1}/{p.total} · "
            p = p.step
        self.progress.setRange(0, max(p.batches, 1))
        self.progress.setValue(p.batch)
        epoch = f" epoch {p.epoch}/{p.epochs}" if p.phase in ("train", "validate") else ""
        unit = "step" if p.phase == "gan" else "batch"
        self.progress.setFormat(f"{where}{PHASES.get(p.phase, p.phase)}{epoch} · {unit} {p.batch}/{p.batches}"
                                f"{_eta(eta)}")


class FineTuneDialog(QDialog):
    """See the module docstring. ``controller`` gives the open study (labels, slice on screen) and the AI."""

    sig_state_changed = Signal(str)  # "idle", "loading", "preparing", "training", "results", "saved"

    def __init__(self, controller: ViewerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune the AI model")
        self.setModal(False)
        self.controller = controller
        self.lane = FineTuneLane(self)
        self.setup = SetupPage(controller.paths)
        reading = controller.ai.model
        if reading is not None:  # the base the reader means first: the model the window reads with
            self.setup.prefer_model(str(reading.path))
        self.training = TrainingPage()
        self.grid = GridPage()
        self.results = ResultsPage()
        scroll = QScrollArea(self)
        scroll.setWidget(self.setup)
        scroll.setWidgetResizable(True)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(scroll, "1 Setup")
        self.tabs.addTab(self.training, "2 Training")
        self.tabs.addTab(self.grid, "3 Grid search")
        self.tabs.addTab(self.results, "4 Results")
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.estimate_button = QPushButton("Estimate", self)
        self.start_button = QPushButton("Start", self)
        self.start_button.setDefault(True)
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        for b in (self.estimate_button, self.start_button, close):
            row.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(row)
        self.resize(1100, 820)

        self.state = "idle"
        self.values: SetupValues | None = None
        self.data: DataSummary | None = None
        self.prepared: PreparedSummary | None = None
        self.result: ResultView | None = None
        self.comparison: Comparison | None = None
        self.saved_path: str | None = None
        self._loaded_source = None
        self._loading_source = None
        self._prepared_values: SetupValues | None = None
        self._train_after_prepare = False
        self._start_pending = False
        self._activate_after_save = False
        self._compared_grey: np.ndarray | None = None

        self.estimate_button.clicked.connect(lambda: self.start(train=False))
        self.start_button.clicked.connect(lambda: self.start(train=True))
        self.setup.load_button.clicked.connect(self.load_data)
        self.setup.sig_changed.connect(self._on_settings_changed)
        self.training.cancel_button.clicked.connect(self.cancel)
        self.results.sig_threshold_chosen.connect(lambda m, t: self.lane.set_threshold(m, t))
        self.results.sig_save.connect(self.save)
        self.results.sig_activate.connect(self.activate)
        self.results.sig_compare.connect(self.compare)
        controller.sig_scan_finished.connect(lambda _result: self.setup.set_study_paths(controller.paths))
        lane = self.lane
        lane.sig_data.connect(self._on_data)
        lane.sig_prepared.connect(self._on_prepared)
        lane.sig_item.connect(self._on_item)
        lane.sig_compared.connect(self._on_compared)
        lane.sig_saved.connect(self._on_saved)
        lane.sig_failed.connect(self._on_failed)
        lane.sig_refused.connect(self._on_refused)
        lane.sig_cancelled.connect(self._on_cancelled)
        lane.sig_busy.connect(self._update_buttons)
        self._update_buttons()

    # -- state ------------------------------------------------------------------------------------------------

    def _set_state(self, state: str, message: str = "") -> None:
        self.state = state
        if message:
            self.status.setText(message)
        self._update_buttons()
        self.sig_state_changed.emit(state)

    def _update_buttons(self, *_: object) -> None:
        busy = self.lane.busy
        training = self.state == "training"
        self.start_button.setEnabled(not busy and not self.setup.problem)
        self.estimate_button.setEnabled(not busy)
        self.setup.setEnabled(not busy)
        self.training.cancel_button.setEnabled(training)
        have = self.result is not None and not busy
        for b in (self.results.save_button, self.results.activate_button, self.results.apply_threshold,
                  self.results.compare_button):
            b.setEnabled(have)
        self.tabs.setTabEnabled(self.tabs.indexOf(self.grid), self.grid.total > 0)
        self.tabs.setTabEnabled(self.tabs.indexOf(self.results), self.result is not None)

    def _on_settings_changed(self) -> None:
        if self.state not in ("training",):
            self.prepared = None  # the next Start prepares again with the new settings
        self._update_buttons()  # a split the data cannot make disables Start

    # -- steps ----------------------------------------------------------------------------------------------

    def _read_values(self) -> SetupValues | None:
        try:
            return self.setup.values()
        except (ValueError, BundleError) as e:  # settings, or the base card: one line, no crash
            self._set_state("idle", f"Cannot start: {e}")
            return None

    def load_data(self) -> None:
        try:
            source = self.setup.data_source()
        except ValueError as e:
            self._set_state("idle", f"Cannot load data: {e}")
            return
        self._start_pending = False
        self._load(source)

    def _load(self, source) -> None:
        self._loaded_source, self._loading_source = None, source
        self.data = self.prepared = None
        self.lane.load_data(source)
        self._set_state("loading", "Reading the labelled images…")

    def start(self, train: bool = True) -> None:
        """Load the data and prepare the split if the settings changed, then train (or only estimate)."""
        values = self._read_values()
        if values is None:
            return
        self.values = values
        self._train_after_prepare = train
        if self._loaded_source != values.source or self.data is None:
            self._start_pending = True
            self._load(values.source)
        elif self.prepared is None or self._prepared_values != values:
            self._prepare()
        elif train:
            self._train()

    def _prepare(self) -> None:
        v = self.values
        self.lane.prepare(v.config, v.test, v.val, v.positive, v.grid)
        self._set_state("preparing", "Splitting by patient, reading and preprocessing the images, timing an "
                                     "epoch…" + (" (each distinct cost of the grid)" if v.grid is not None else ""))

    def _train(self) -> None:
        self.result = None
        self.saved_path = None
        self.training.reset()
        self.grid.start(self.values.grid if self.values is not None else None)
        self.tabs.setCurrentIndex(self.tabs.indexOf(self.training))
        self.lane.train()
        self._set_state("training", "Training in a background process (the viewer stays usable)…")

    def cancel(self) -> None:
        """Stop training at the next batch; nothing is saved and the active model is untouched."""
        self.lane.cancel()
        self.status.setText("Cancelling at the next batch…")

    def compare(self) -> None:
        """Both models' heatmaps on the slice on screen."""
        c = self.controller
        volume = c.volume
        if volume is None or self.result is None or not c.slice_ready():
            self.status.setText("Open a series and wait for the slice on screen to load to compare heatmaps.")
            return
        context = self.values.config.preprocess_config().context
        stack = context_stack(volume, [c.slice_index], context)[0]
        window = c.window or volume.default_window()
        hu = stack[context]
        low = window.center - window.width / 2
        self._compared_grey = np.clip((hu - low) / window.width * 255.0, 0, 255).astype(np.uint8)
        self.lane.compare(stack)
        self.status.setText(f"Running both models on slice {c.slice_index + 1}…")

    def save(self, name: str = "") -> None:
        if self.result is None:
            return
        if self.saved_path is not None and not self._activate_after_save:
            self.status.setText(f"Already saved as {self.saved_path}")
            return
        self.lane.save(name or self.results.name_edit.text().strip() or "model-ft")
        self.status.setText("Saving a new model version…")

    def activate(self) -> None:
        """Save (if not yet) and make the viewer's AI use the new model; it re-analyses the open series."""
        if self.saved_path is None:
            self._activate_after_save = True
            self.save(self.results.name_edit.text().strip())
            return
        self._activate(self.saved_path)

    def _activate(self, path: str) -> None:
        ai = self.controller.ai
        try:
            entry = find_model(path)
            entry = next((m for m in _installed() if m.path == entry.path), entry)
        except (KeyError, BundleError) as e:  # one line, the active model stays
            self.status.setText(f"Cannot activate: {e}")
            return
        ai.reload_models()
        if ai.set_model(entry):
            self.results.show_saved(path, True)
            self._set_state("saved", f"The viewer now uses {entry.name}; the open series is analysed again.")
        else:
            self.status.setText("The AI second reader is off in this window; the model is saved.")

    # -- answers --------------------------------------------------------------------------------------------

    def _on_data(self, summary: DataSummary) -> None:
        self.data = summary
        self._loaded_source = self._loading_source
        try:
            classes = self.setup.values().config.class_names()
        except (ValueError, BundleError):  # an unreadable base: the positive class defaults to the last one
            classes = None
        self.setup.show_data(summary, classes)
        if self._start_pending:
            self._start_pending = False
            self.values = self._read_values()  # the positive class is known only now
            if self.values is not None:
                self._prepare()
                return
        self._set_state("idle", f"Data: {self.setup.data_label.text()}")

    def _on_prepared(self, summary: PreparedSummary) -> None:
        self.prepared = summary
        self._prepared_values = self.values
        parts = [f"{n} {name} ({pos} positive, {pat} patient{'s' if pat != 1 else ''})"
                 for name, (n, pos, pat) in summary.splits.items()]
        text = (f"Split by patient: {'; '.join(parts)}. About {summary.seconds_per_epoch:.1f} s per epoch here"
                + (f"; {len(summary.skipped)} image(s) left out ({summary.skipped[0][1]})" if summary.skipped
                   else "") + ".")
        if summary.gan_seconds:
            text += f" GAN augmentation adds about {summary.gan_seconds:.0f} s to each run."
        if summary.grid_seconds is not None:
            text += (f" Grid search: {summary.grid_size} configurations and the refit, about "
                     f"{summary.grid_seconds / 60:.1f} min at most.")
        self.setup.describe_grid(seconds=summary.grid_seconds)
        if self._train_after_prepare:
            self.status.setText(text)
            self._train()
        else:
            self._set_state("idle", text)

    def _on_item(self, item: object) -> None:
        if isinstance(item, (TrainingProgress, GridProgress)):
            self.training.show_progress(item)
        elif isinstance(item, GridRow):
            self.grid.add_row(item)
            auc = "n/a" if item.val_auc is None else f"{item.val_auc:.3f}"
            self.training.log.setText(f"configuration {item.index + 1}/{self.grid.total} done: validation AUC "
                                      f"{auc}, loss {item.val_loss:.4f} (the Grid search page)")
            self._update_buttons()
        elif isinstance(item, GanReport):
            self.training.show_gan(item)
        elif isinstance(item, EpochReport):
            self.training.add_point(item)
        elif isinstance(item, ResultView):
            self.training.finish()
            self.grid.finish(item.grid_best)
            self.result = item
            self.results.show_result(item, _default_name(self.values))
            note = small_sample_note(self.prepared)
            if note:
                self.results.summary.setText(f"{self.results.summary.text()} ⚠ {note}")
            self.tabs.setTabEnabled(self.tabs.indexOf(self.results), True)
            self.tabs.setCurrentIndex(self.tabs.indexOf(self.results))
            self._set_state("results", item.summary)
            self.compare()

    def _on_compared(self, comparison: Comparison) -> None:
        self.comparison = comparison
        if self._compared_grey is not None:
            self.results.show_comparison(self._compared_grey, comparison)
        self.status.setText("Heatmaps of both models on the slice on screen (left: base, right: new).")

    def _on_saved(self, path: str) -> None:
        self.saved_path = path
        self.results.show_saved(path, False)
        self.controller.ai.reload_models()
        if self._activate_after_save:
            self._activate_after_save = False
            self._activate(path)
        else:
            self._set_state("saved", f"Saved as a new model: {path}")

    def _on_failed(self, step: str, message: str, traceback_text: str) -> None:
        log.warning("fine-tune step %s failed: %s", step, message)
        self._activate_after_save = False
        self._start_pending = False
        if step == "train":
            self.training.progress.setRange(0, 1)
            self.training.progress.setFormat("stopped")
            self.training.log.setText(f"Training stopped: {message}. Nothing was saved; the active model is "
                                      f"unchanged.")
        self._set_state("results" if self.result is not None and step != "train" else "idle",
                        f"{step}: {message}")

    def _on_refused(self, step: str, message: str) -> None:
        """The child refused the reader's data or settings: in words, beside the split, no error report."""
        self._start_pending = False
        self.setup.show_problem(message)
        if step == "train":
            self.training.progress.setRange(0, 1)
            self.training.progress.setFormat("not started")
        self._set_state("results" if self.result is not None else "idle", f"Cannot train: {message}")

    def _on_cancelled(self, step: str) -> None:
        if step == "train":
            self.training.progress.setRange(0, 1)
            self.training.progress.setFormat("cancelled")
            self.training.log.setText("Cancelled. Nothing was saved; the active model is unchanged.")
        self._set_state("idle", f"{step} cancelled")

    # -- closing --------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the work and the child process (the window calls this when it closes)."""
        self.lane.shutdown()


#: A split with fewer images or patients than these gets the small-sample warning beside its figures.
SMALL_SPLIT_IMAGES, SMALL_SPLIT_PATIENTS = 30, 3


def small_sample_note(prepared: PreparedSummary | None) -> str:
    """A warning when a split scoring the model is small: perfect figures on ten images of one patient can
    be chance, and the table's intervals say how wide."""
    if prepared is None:
        return ""
    small = [f"{name} {n} image(s) from {patients} patient(s)" for name, (n, _pos, patients) in prepared.splits.items()
             if name != "train" and (n < SMALL_SPLIT_IMAGES or patients < SMALL_SPLIT_PATIENTS)]
    if not small:
        return ""
    return (f"Small sample ({'; '.join(small)}): these figures can be chance; the 95 % intervals in the table "
            f"show how wide they are. Label more patients before trusting them.")


def _default_name(values: SetupValues | None) -> str:
    if values is None:
        return "model-ft"
    from viewer.ai.finetune import default_model_name

    try:
        return default_model_name(values.config)
    except (ValueError, BundleError):  # an unreadable base card
        return "model-ft"


def _installed():
    from viewer.ai.model_registry import list_models

    return list_models()
