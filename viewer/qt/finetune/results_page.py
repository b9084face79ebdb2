"""The dialog's results page: the metrics table, ROC with the operating point, confusion matrix, the
threshold picker, before/after on the test split and both models' heatmaps on the slice on screen.

Tables and curves are computed here from the scores the child sent (:class:`ResultView`; numpy only,
:mod:`models.finetune.metrics`, the functions the engine itself uses), so picking a threshold redraws at once; the
chosen rule is also sent to the child, whose saved card then carries it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.ai.finetune_service import (
    BinaryMetrics,
    Comparison,
    ResultView,
    ThresholdChoice,
    binary_metrics,
    roc_curve,
    select_threshold,
    wilson_interval,
)
from viewer.qt.ai.overlay import heat_image, heat_lut

ROWS = (("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"), ("specificity", "Specificity"),
        ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"), ("auc", "AUC"))
SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _counts(m: BinaryMetrics, attr: str) -> tuple[int, int] | None:
    """(successes, trials) behind a proportion of the table (None for F1 and AUC, which are not one)."""
    cm = m.confusion
    return {"accuracy": (cm.tp + cm.tn, m.n), "sensitivity": (cm.tp, cm.tp + cm.fn), "recall": (cm.tp, cm.tp + cm.fn),
            "specificity": (cm.tn, cm.tn + cm.fp), "precision": (cm.tp, cm.tp + cm.fp)}.get(attr)


def cell_text(m: BinaryMetrics, attr: str) -> str:
    """A table cell: the value, and for a proportion its 95 % Wilson interval ("0.900 (0.60–0.98)"), so ten
    images from one patient never read like a certainty."""
    value = getattr(m, attr)
    counts = _counts(m, attr)
    interval = wilson_interval(*counts) if counts is not None and value is not None else None
    return _fmt(value) + (f" ({interval[0]:.2f}–{interval[1]:.2f})" if interval else "")


def metrics_at(view: ResultView, threshold: float) -> dict[str, BinaryMetrics]:
    """The new model's table per split at ``threshold``."""
    return {k: binary_metrics(y, p, threshold) for k, (y, p) in view.scores.items()}


def before_metrics(view: ResultView) -> dict[str, BinaryMetrics]:
    """The base model's table per split (val, test) at its own card threshold."""
    if view.before_threshold is None:
        return {}
    return {k: binary_metrics(view.scores[k][0], p, view.before_threshold) for k, p in view.before_scores.items()}


#: Appended to the summary when fine-tuning never beat the starting model: saving it then only stores a new
#: threshold (and, with a new head, an untrained model), which a reader should not mistake for learning.
NO_IMPROVEMENT = ("\nNo epoch beat the starting model on validation loss: the new model is the starting model "
                  "(with a freshly initialised head, an untrained one). More or more varied labels are needed.")

class HeatPair(QWidget):
    """The slice on screen twice, the base model's heatmap over one and the new model's over the other."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.views = pg.GraphicsLayoutWidget(self)
        self.views.setMinimumHeight(220)
        self.titles: list[QLabel] = []
        self.images: list[pg.ImageItem] = []
        self.heats: list[pg.ImageItem] = []
        self._lut = heat_lut("jet", 0.5, 0.3)
        for k in range(2):
            vb = self.views.addViewBox(row=0, col=k, lockAspect=True, invertY=True, enableMenu=False)
            image, heat = pg.ImageItem(axisOrder="row-major"), pg.ImageItem(axisOrder="row-major")
            heat.setZValue(1)
            vb.addItem(image)
            vb.addItem(heat)
            self.images.append(image)
            self.heats.append(heat)
        row = QHBoxLayout()
        for _ in range(2):
            label = QLabel("", self)
            label.setWordWrap(True)
            self.titles.append(label)
            row.addWidget(label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.views, 1)

    def show_pair(self, grey: np.ndarray, comparison: Comparison) -> None:
        rows, cols = grey.shape
        pairs = ((comparison.base_heat, comparison.base_name or "no base (from scratch)", comparison.base_probability,
                  comparison.base_threshold),
                 (comparison.new_heat, "new model", comparison.new_probability, comparison.new_threshold))
        for k, (heat, name, p, t) in enumerate(pairs):
            self.images[k].setImage(grey, autoLevels=False, levels=(0, 255))
            if heat is not None:
                self.heats[k].setImage(heat_image(heat, self._lut), autoLevels=False, levels=None)
                self.heats[k].setRect(0, 0, cols, rows)
                self.heats[k].setVisible(True)
            else:
                self.heats[k].setVisible(False)
            verdict = "" if p is None else f": p = {p:.3f} (threshold {t:.3f}, " \
                                           f"{'suspicious' if p >= t else 'below'})"
            self.titles[k].setText(f"{name}{verdict}")
        for vb in (self.images[0].getViewBox(), self.images[1].getViewBox()):
            vb.autoRange(padding=0)

    def heat_shown(self) -> tuple[bool, bool]:
        return (self.heats[0].isVisible(), self.heats[1].isVisible())


class ResultsPage(QWidget):
    """See the module docstring. The dialog calls :meth:`show_result`, :meth:`show_comparison`."""

    sig_threshold_chosen = Signal(str, float)  # method ("youden" | "sensitivity"), target sensitivity
    sig_save = Signal(str)  # model name
    sig_activate = Signal()
    sig_compare = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: ResultView | None = None
        self.threshold: ThresholdChoice | None = None
        self._pair: tuple[np.ndarray, Comparison] | None = None
        self.summary = QLabel("", self)
        self.summary.setWordWrap(True)
        self.table = QTableWidget(len(ROWS), 0, self)
        self.table.setVerticalHeaderLabels([text for _, text in ROWS])
        self.table.setMinimumHeight(230)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion = QTableWidget(2, 2, self)
        self.confusion.setHorizontalHeaderLabels(["predicted −", "predicted +"])
        self.confusion.setVerticalHeaderLabels(["actual −", "actual +"])
        self.confusion.setMaximumHeight(90)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion_title = QLabel("", self)
        self.roc = pg.PlotWidget(self)
        self.roc.setLabel("bottom", "1 − specificity")
        self.roc.setLabel("left", "sensitivity")
        self.roc.setXRange(0, 1)
        self.roc.setYRange(0, 1)
        self.roc.addLegend(offset=(-10, 10))
        self.roc.setMinimumHeight(230)
        self.roc.plot([0, 1], [0, 1], pen=pg.mkPen((120, 120, 120), style=pg.QtCore.Qt.PenStyle.DashLine))
        self.roc_new = self.roc.plot([], [], pen=pg.mkPen((80, 200, 255), width=2), name="new model")
        self.roc_base = self.roc.plot([], [], pen=pg.mkPen((255, 170, 60), width=2), name="base model")
        self.point_new = self.roc.plot([], [], pen=None, symbol="o", symbolBrush=(80, 200, 255), symbolSize=11)
        self.point_base = self.roc.plot([], [], pen=None, symbol="s", symbolBrush=(255, 170, 60), symbolSize=9)
        # threshold picker
        self.youden = QRadioButton("Youden's J", self)
        self.by_sensitivity = QRadioButton("target sensitivity", self)
        group = QButtonGroup(self)
        group.addButton(self.youden)
        group.addButton(self.by_sensitivity)
        self.youden.setChecked(True)
        self.target = QDoubleSpinBox(self)
        self.target.setRange(0.05, 1.0)
        self.target.setSingleStep(0.05)
        self.target.setValue(0.9)
        self.apply_threshold = QPushButton("Apply", self)
        self.apply_threshold.clicked.connect(self.choose_threshold)
        self.threshold_label = QLabel("", self)
        self.before_after = QLabel("", self)
        self.before_after.setWordWrap(True)
        self.heat = HeatPair(self)
        self.compare_button = QPushButton("Compare on the slice on screen", self)
        self.compare_button.clicked.connect(self.sig_compare)
        self.name_edit = QLineEdit(self)
        self.save_button = QPushButton("Save as new model", self)
        self.save_button.clicked.connect(lambda: self.sig_save.emit(self.name_edit.text().strip()))
        self.activate_button = QPushButton("Activate", self)
        self.activate_button.setToolTip("Save if not saved yet, switch the viewer to the new model, re-analyse")
        self.activate_button.clicked.connect(self.sig_activate)
        self.saved_label = QLabel("", self)
        self.saved_label.setWordWrap(True)

        threshold_box = QGroupBox("Threshold (chosen on the validation split)", self)
        row = QHBoxLayout(threshold_box)
        for w in (self.youden, self.by_sensitivity, self.target, self.apply_threshold, self.threshold_label):
            row.addWidget(w)
        row.addStretch(1)
        grid = QGridLayout()
        grid.addWidget(self.table, 0, 0)
        grid.addWidget(self.roc, 0, 1)
        cm = QVBoxLayout()
        cm.addWidget(self.confusion_title)
        cm.addWidget(self.confusion)
        cm.addWidget(self.before_after)
        cm.addStretch(1)
        grid.addLayout(cm, 1, 0)
        heat_box = QVBoxLayout()
        heat_box.addWidget(self.heat, 1)
        heat_box.addWidget(self.compare_button)
        grid.addLayout(heat_box, 1, 1)
        save_box = QGroupBox("New model", self)
        form = QFormLayout(save_box)
        row2 = QHBoxLayout()
        row2.addWidget(self.name_edit, 1)
        row2.addWidget(self.save_button)
        row2.addWidget(self.activate_button)
        form.addRow("Name", row2)
        form.addRow(self.saved_label)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(threshold_box)
        layout.addLayout(grid, 1)
        layout.addWidget(save_box)

    # -- showing ----------------------------------------------------------------------------------------------

    def show_result(self, view: ResultView, default_name: str) -> None:
        self.view = view
        self.threshold = view.threshold
        self._pair = None
        self.name_edit.setText(default_name)
        self.saved_label.setText("not saved yet")
        splits = [k for k in ("train", "val", "test") if k in view.scores]
        head = [SPLIT_NAMES[k] for k in splits] + ([f"{SPLIT_NAMES[k]}, base model" for k in ("test", "val")
                                                     if k in view.before_scores][:1])
        self.table.setColumnCount(len(head))
        self.table.setHorizontalHeaderLabels(head)
        self.summary.setText(
            f"{view.epochs_run} epoch(s) in {view.seconds:.0f} s; weights of epoch {view.best_epoch} kept (lowest "
            f"validation loss{'; stopped early' if view.stopped_early else ''}); "
            f"{view.n_trainable:,} trainable parameters. Splits are by patient."
            + (NO_IMPROVEMENT if view.best_epoch == 0 else ""))
        self._redraw()

    def _redraw(self) -> None:
        view, t = self.view, self.threshold
        if view is None or t is None:
            return
        table = metrics_at(view, t.threshold)
        before = before_metrics(view)
        columns = [table[k] for k in ("train", "val", "test") if k in table]
        before_split = next((k for k in ("test", "val") if k in before), None)
        if before_split is not None:
            columns.append(before[before_split])
        for c, m in enumerate(columns):
            for r, (attr, _) in enumerate(ROWS):
                self.table.setItem(r, c, QTableWidgetItem(cell_text(m, attr)))
        self.threshold_label.setText(
            f"threshold {t.threshold:.4f} ({t.method}"
            + (f" {t.target_sensitivity:.2f}" if t.target_sensitivity is not None else "")
            + " on validation)"
        )
        split = "test" if "test" in table else "val"
        m = table[split]
        cm = m.confusion
        for r, c, v in ((0, 0, cm.tn), (0, 1, cm.fp), (1, 0, cm.fn), (1, 1, cm.tp)):
            self.confusion.setItem(r, c, QTableWidgetItem(str(v)))
        self.confusion_title.setText(f"Confusion matrix, {SPLIT_NAMES[split]} split ({m.n} images)")
        y, p = view.scores[split]
        roc = roc_curve(y, p)
        self.roc_new.setData(roc.fpr, roc.tpr)
        self.point_new.setData([1 - (m.specificity or 0.0)], [m.sensitivity or 0.0])
        if split in before:
            b = before[split]
            broc = roc_curve(y, view.before_scores[split])
            self.roc_base.setData(broc.fpr, broc.tpr)
            self.point_base.setData([1 - (b.specificity or 0.0)], [b.sensitivity or 0.0])
            self.before_after.setText(
                f"Before/after on the {SPLIT_NAMES[split]} split: AUC {_fmt(b.auc)} → {_fmt(m.auc)}, sensitivity "
                f"{_fmt(b.sensitivity)} → {_fmt(m.sensitivity)}, specificity {_fmt(b.specificity)} → "
                f"{_fmt(m.specificity)} (base at its threshold {view.before_threshold:.3f})")
        else:
            self.roc_base.setData([], [])
            self.point_base.setData([], [])
            self.before_after.setText("No base model to compare (trained from scratch).")
        self.roc.setTitle(f"ROC, {SPLIT_NAMES[split]} split")

    def choose_threshold(self) -> ThresholdChoice | None:
        """Pick the threshold on the validation scores by the chosen rule and redraw (also tells the child)."""
        if self.view is None:
            return None
        y, p = self.view.scores["val"]
        method = "sensitivity" if self.by_sensitivity.isChecked() else "youden"
        self.threshold = select_threshold(y, p, method, target_sensitivity=self.target.value(), chosen_on="val")
        self._redraw()
        if self._pair is not None:  # the new model's verdict on the compared slice, at the new threshold
            grey, comparison = self._pair
            self.show_comparison(grey, replace(comparison, new_threshold=float(self.threshold.threshold)))
        self.sig_threshold_chosen.emit(method, float(self.target.value()))
        return self.threshold

    def table_values(self) -> dict[str, dict[str, str]]:
        """{column header: {row name: text}} as displayed (tests, scripts)."""
        out = {}
        for c in range(self.table.columnCount()):
            head = self.table.horizontalHeaderItem(c).text()
            out[head] = {key: self.table.item(r, c).text() for r, (key, _) in enumerate(ROWS)}
        return out

    def show_comparison(self, grey: np.ndarray, comparison: Comparison) -> None:
        self._pair = (grey, comparison)
        self.heat.show_pair(grey, comparison)

    def show_saved(self, path: str, active: bool) -> None:
        self.saved_label.setText(f"saved as {path}" + (" — active in the viewer" if active else ""))
