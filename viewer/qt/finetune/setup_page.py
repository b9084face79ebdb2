"""The dialog's first page: base model, data, and every training setting, read into frozen values.

Torch-free: the base models' cards are read with :func:`viewer.base.model_card.read_card`, and
:class:`models.finetune.config.FineTuneConfig` validates the settings without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.ai.finetune import Augmentation, FineTuneConfig, Grid
from viewer.ai.finetune_service import DataSource, DataSummary
from viewer.ai.model_registry import list_models
from viewer.base.model_card import ARCHITECTURES, BundleError
from viewer.base.preprocess_config import PreprocessConfig
from viewer.core.labeled_data import default_shares, split_problem

#: Train/test presets of the issue (share of images for training + validation, the rest tests), and
#: "no test split" for a study of two patients (validation only; the metrics then have no test column).
SPLIT_PRESETS: tuple[tuple[str, float], ...] = (
    ("80/20", 0.2), ("75/25", 0.25), ("60/40", 0.4), ("no test split (too few patients)", 0.0))
MODES = (("head", "head only (feature extraction)"), ("last", "last block + head"), ("full", "full fine-tune"))
OPTIMIZERS = (("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD with momentum 0.9"))
DEVICES = ("auto", "cpu", "cuda", "mps")
#: The grid the page offers first (seed 004's settings; the issue's example).
DEFAULT_GRID = "lr=1e-3,3e-4;batch=16,32;dropout=0.3,0.5"
AUGMENTATIONS = (("flips", "flips"), ("rotation", "rotation ±15°"), ("noise", "Gaussian noise"),
                 ("intensity", "intensity jitter"), ("clahe", "CLAHE"))


@dataclass(frozen=True)
class SetupValues:
    """What the page says: the engine config, the data source, the split, the positive class, and the grid
    to search (None: one run of ``config``)."""

    config: FineTuneConfig
    source: DataSource
    test: float
    val: float
    positive: str | None
    grid: Grid | None = None


def _windows_text(windows: tuple[tuple[float, float], ...]) -> str:
    return ", ".join(f"{c:g}/{w:g}" for c, w in windows)


def _parse_windows(text: str) -> tuple[tuple[float, float], ...]:
    """``"-600/1500, 40/400"`` -> ((-600, 1500), (40, 400)) (centre/width in HU)."""
    out = []
    for part in text.split(","):
        c, _, w = part.strip().partition("/")
        try:
            out.append((float(c), float(w)))
        except ValueError:
            raise ValueError(f"windows are centre/width pairs like -600/1500, not {part.strip()!r}") from None
    return tuple(out)


class SetupPage(QWidget):
    """Base, data, preprocessing, augmentation, split, optimiser and run settings."""

    sig_changed = Signal()  # any setting changed: a prepared split no longer matches

    def __init__(self, study_paths: tuple[str, ...] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.study_paths = study_paths
        # -- base
        self.base_model = QRadioButton("Installed model", self)
        self.base_scratch = QRadioButton("Architecture from scratch", self)
        self.base_file = QRadioButton("Weights file (beside its card.json)", self)
        self.base_group = QButtonGroup(self)
        for b in (self.base_model, self.base_scratch, self.base_file):
            self.base_group.addButton(b)
        self.model_box = QComboBox(self)
        self.arch_box = QComboBox(self)
        self.arch_box.addItems(list(ARCHITECTURES))
        self.file_edit = QLineEdit(self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._choose_weights)
        self.preprocess_label = QLabel(self)
        self.preprocess_label.setWordWrap(True)
        self.size_spin = QSpinBox(self)
        self.size_spin.setRange(32, 1024)
        self.size_spin.setSingleStep(32)
        self.context_spin = QSpinBox(self)
        self.context_spin.setRange(0, 3)
        self.windows_edit = QLineEdit(_windows_text(PreprocessConfig().windows), self)
        base_box = QGroupBox("Base", self)
        form = QFormLayout(base_box)
        form.addRow(self.base_model, self.model_box)
        form.addRow(self.base_scratch, self.arch_box)
        row = QHBoxLayout()
        row.addWidget(self.file_edit, 1)
        row.addWidget(browse)
        form.addRow(self.base_file, row)
        form.addRow("Preprocessing", self.preprocess_label)
        form.addRow("  input size (px)", self.size_spin)
        form.addRow("  context slices each side", self.context_spin)
        form.addRow("  windows (centre/width HU)", self.windows_edit)
        # -- data
        self.data_labels = QRadioButton("My labels on the open study", self)
        self.data_import = QRadioButton("Folder per class, or CSV of path,label", self)
        self.data_group = QButtonGroup(self)
        self.data_group.addButton(self.data_labels)
        self.data_group.addButton(self.data_import)
        self.data_edit = QLineEdit(self)
        browse_data = QPushButton("Folder…", self)
        browse_data.clicked.connect(self._choose_data_folder)
        browse_csv = QPushButton("CSV…", self)
        browse_csv.clicked.connect(self._choose_data_csv)
        self.load_button = QPushButton("Load data", self)
        self.data_label = QLabel("", self)
        self.data_label.setWordWrap(True)
        self.warning_label = QLabel("", self)
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #d08000")
        self.positive_box = QComboBox(self)
        data_box = QGroupBox("Data", self)
        form = QFormLayout(data_box)
        form.addRow(self.data_labels)
        row = QHBoxLayout()
        row.addWidget(self.data_import)
        row.addWidget(self.data_edit, 1)
        row.addWidget(browse_data)
        row.addWidget(browse_csv)
        form.addRow(row)
        form.addRow(self.load_button, self.data_label)
        form.addRow("", self.warning_label)
        form.addRow("Positive class", self.positive_box)
        # -- training
        self.mode_box = QComboBox(self)
        for key, text in MODES:
            self.mode_box.addItem(text, key)
        self.reset_head = QCheckBox("start from a new head (a new task on the same features)", self)
        self.augment_checks: dict[str, QCheckBox] = {}
        aug_row = QHBoxLayout()
        for key, text in AUGMENTATIONS:
            self.augment_checks[key] = QCheckBox(text, self)
            aug_row.addWidget(self.augment_checks[key])
        self.split_box = QComboBox(self)
        for text, test in SPLIT_PRESETS:
            self.split_box.addItem(text, test)
        self.val_spin = QDoubleSpinBox(self)
        self.val_spin.setRange(0.05, 0.5)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setValue(0.1)
        self.optimizer_box = QComboBox(self)
        for key, text in OPTIMIZERS:
            self.optimizer_box.addItem(text, key)
        self.lr_spin = QDoubleSpinBox(self)
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-4)
        self.lr_spin.setValue(1e-3)
        self.batch_spin = QSpinBox(self)
        self.batch_spin.setRange(1, 512)
        self.batch_spin.setValue(16)
        self.epochs_spin = QSpinBox(self)
        self.epochs_spin.setRange(1, 500)
        self.epochs_spin.setValue(10)
        self.patience_spin = QSpinBox(self)
        self.patience_spin.setRange(0, 100)
        self.patience_spin.setValue(3)
        self.weighting = QCheckBox("weight the rarer class up", self)
        self.weighting.setChecked(True)
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2**31 - 1)
        self.device_box = QComboBox(self)
        self.device_box.addItems(list(DEVICES))
        train_box = QGroupBox("Training", self)
        form = QFormLayout(train_box)
        form.addRow("Transfer mode", self.mode_box)
        form.addRow("", self.reset_head)
        form.addRow("Augmentation", aug_row)
        self.gan_check = QCheckBox("GAN positives: a small GAN learns the training positives, and its samples "
                                   "join the training split (never validation or test)", self)
        self.gan_ratio_spin = QDoubleSpinBox(self)
        self.gan_ratio_spin.setRange(0.1, 10.0)
        self.gan_ratio_spin.setSingleStep(0.5)
        self.gan_ratio_spin.setValue(1.0)
        self.gan_steps_spin = QSpinBox(self)
        self.gan_steps_spin.setRange(10, 20000)
        self.gan_steps_spin.setSingleStep(100)
        self.gan_steps_spin.setValue(600)
        form.addRow("", self.gan_check)
        row = QHBoxLayout()
        for text, w in (("generated per real positive", self.gan_ratio_spin), ("GAN steps", self.gan_steps_spin)):
            row.addWidget(QLabel(text, self))
            row.addWidget(w)
        form.addRow("", row)
        for w in (self.gan_ratio_spin, self.gan_steps_spin):
            w.setEnabled(False)
            self.gan_check.toggled.connect(w.setEnabled)
        row = QHBoxLayout()
        row.addWidget(self.split_box)
        row.addWidget(QLabel("validation share", self))
        row.addWidget(self.val_spin)
        form.addRow("Train/test split", row)
        #: why the loaded data cannot be split at these shares (before Start, beside the field)
        self.split_problem_label = QLabel("", self)
        self.split_problem_label.setWordWrap(True)
        self.split_problem_label.setStyleSheet("color: #c0392b")
        form.addRow("", self.split_problem_label)
        self._summary: DataSummary | None = None
        form.addRow("Optimiser", self.optimizer_box)
        form.addRow("Learning rate", self.lr_spin)
        row = QHBoxLayout()
        for text, w in (("batch", self.batch_spin), ("epochs", self.epochs_spin),
                        ("early-stopping patience", self.patience_spin)):
            row.addWidget(QLabel(text, self))
            row.addWidget(w)
        form.addRow("Run", row)
        form.addRow("Class weighting", self.weighting)
        row = QHBoxLayout()
        row.addWidget(self.seed_spin)
        row.addWidget(QLabel("device", self))
        row.addWidget(self.device_box)
        form.addRow("Seed", row)
        # -- grid search
        self.grid_check = QCheckBox("search a grid of settings (each combination is trained and scored on "
                                    "validation; the best is refit and tested once)", self)
        self.grid_edit = QLineEdit(DEFAULT_GRID, self)
        self.grid_edit.setToolTip("key=value,value;... with keys lr, batch, dropout, weight_decay, epochs, "
                                  "patience, mode, optimizer; the settings above are the defaults")
        self.grid_label = QLabel("", self)
        self.grid_label.setWordWrap(True)
        grid_box = QGroupBox("Grid search", self)
        form = QFormLayout(grid_box)
        form.addRow(self.grid_check)
        form.addRow("Settings", self.grid_edit)
        form.addRow("", self.grid_label)
        self.grid_edit.setEnabled(False)
        self.grid_check.toggled.connect(self.grid_edit.setEnabled)
        self.grid_check.toggled.connect(self.sig_changed)
        self.grid_edit.editingFinished.connect(self.sig_changed)
        self.grid_check.toggled.connect(self.describe_grid)
        self.grid_edit.textChanged.connect(self.describe_grid)
        layout = QVBoxLayout(self)
        for box in (base_box, data_box, train_box, grid_box):
            layout.addWidget(box)
        layout.addStretch(1)

        self.refresh_models()
        self.base_model.setChecked(True)
        self.data_labels.setChecked(True)
        self.data_labels.setEnabled(bool(study_paths))
        if not study_paths:
            self.data_import.setChecked(True)
        for signal in (self.base_group.buttonToggled, self.model_box.currentIndexChanged,
                       self.arch_box.currentIndexChanged, self.file_edit.editingFinished):
            signal.connect(self._on_base_changed)
        for w in (self.mode_box, self.split_box, self.optimizer_box, self.device_box, self.positive_box):
            w.currentIndexChanged.connect(self.sig_changed)
        for w in (self.val_spin, self.lr_spin, self.batch_spin, self.epochs_spin, self.patience_spin,
                  self.seed_spin, self.size_spin, self.context_spin):
            w.valueChanged.connect(self.sig_changed)
        for w in (self.gan_ratio_spin, self.gan_steps_spin):
            w.valueChanged.connect(self.sig_changed)
        for w in (self.reset_head, self.weighting, self.gan_check, *self.augment_checks.values()):
            w.toggled.connect(self.sig_changed)
        self.windows_edit.editingFinished.connect(self.sig_changed)
        self.data_group.buttonToggled.connect(self.sig_changed)
        self.data_edit.editingFinished.connect(self.sig_changed)
        self.split_box.currentIndexChanged.connect(self.check_split)
        self.val_spin.valueChanged.connect(self.check_split)
        self._on_base_changed()

    # -- base ----------------------------------------------------------------------------------------------------

    def refresh_models(self) -> None:
        current = self.model_box.currentData()
        self.model_box.clear()
        for entry in list_models():
            self.model_box.addItem(f"{entry.name} ({entry.source}, {entry.card.arch})", str(entry.path))
        k = self.model_box.findData(current)
        if k >= 0:
            self.model_box.setCurrentIndex(k)

    def prefer_model(self, path: str) -> bool:
        """Start from the installed model at ``path`` (the one the window reads with); False if not listed."""
        k = self.model_box.findData(str(path))
        if k >= 0:
            self.model_box.setCurrentIndex(k)
        return k >= 0

    def base_source(self) -> dict:
        """``{"base": path}`` or ``{"arch": name, "preprocessing": ...}`` for FineTuneConfig."""
        if self.base_scratch.isChecked():
            cfg = PreprocessConfig(windows=_parse_windows(self.windows_edit.text()), context=self.context_spin.value(),
                                   size=self.size_spin.value())
            return {"arch": self.arch_box.currentText(), "preprocessing": cfg}
        if self.base_file.isChecked():
            path = self.file_edit.text().strip()
            if not path:
                raise ValueError("choose a weights file")
            return {"base": path}
        if self.model_box.currentData() is None:
            raise ValueError("no installed model to start from")
        return {"base": self.model_box.currentData()}

    def _on_base_changed(self, *_: object) -> None:
        scratch = self.base_scratch.isChecked()
        for w in (self.size_spin, self.context_spin, self.windows_edit):
            w.setEnabled(scratch)  # a base model only works on input made exactly as in its training
        self.reset_head.setEnabled(not scratch)
        try:
            source = self.base_source()
            if "base" in source:
                cfg = FineTuneConfig(base=source["base"]).preprocess_config()
                where = "from the base model's card (fixed)"
            else:
                cfg = source["preprocessing"]
                where = "from scratch (editable)"
        except (ValueError, BundleError) as e:  # no file chosen, a card that cannot be read
            self.preprocess_label.setText(f"cannot use this base: {e}")
        else:
            self.size_spin.blockSignals(True)
            self.context_spin.blockSignals(True)
            self.size_spin.setValue(cfg.size)
            self.context_spin.setValue(cfg.context)
            self.size_spin.blockSignals(False)
            self.context_spin.blockSignals(False)
            if not scratch:
                self.windows_edit.setText(_windows_text(cfg.windows))
            self.preprocess_label.setText(
                f"{where}: {cfg.size} px, {2 * cfg.context + 1} slice(s), windows {_windows_text(cfg.windows)}, "
                f"{cfg.normalise}" + (", CLAHE" if cfg.clahe else ""))
        self.sig_changed.emit()

    def _choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Base weights", "", "Weights (*.safetensors *.pt *.pth)")
        if path:
            self.file_edit.setText(path)
            self.base_file.setChecked(True)
            self._on_base_changed()

    # -- data ----------------------------------------------------------------------------------------------------

    def set_study_paths(self, paths: tuple[str, ...]) -> None:
        """The folders of the study now open (the "my labels" source reads the labels of studies under them)."""
        self.study_paths = tuple(paths)
        self.data_labels.setEnabled(bool(self.study_paths))
        if not self.study_paths and self.data_labels.isChecked():
            self.data_import.setChecked(True)
        self.sig_changed.emit()

    def _choose_data_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder with one sub-folder per class")
        if path:
            self.data_edit.setText(path)
            self.data_import.setChecked(True)

    def _choose_data_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CSV of path,label", "", "CSV files (*.csv)")
        if path:
            self.data_edit.setText(path)
            self.data_import.setChecked(True)

    def data_source(self) -> DataSource:
        if self.data_labels.isChecked():
            if not self.study_paths:
                raise ValueError("no study is open")
            return DataSource("labels", tuple(self.study_paths))
        path = self.data_edit.text().strip()
        if not path:
            raise ValueError("choose a folder per class or a CSV")
        return DataSource("import", (path,))

    def show_data(self, summary: DataSummary, model_classes: tuple[str, str] | None) -> None:
        counts = ", ".join(f"{n} {c!r}" for c, n in summary.counts.items()) or "no images"
        text = f"{counts} from {summary.patients} patient(s)"
        if summary.duplicates:
            text += f"; {summary.duplicates} duplicate(s) dropped"
        if summary.n_skipped:
            text += f"; {summary.n_skipped} file(s) skipped (first: {summary.skipped[0][1]})"
        self.data_label.setText(text)
        warnings = list(summary.warnings) + ([summary.imbalance] if summary.imbalance else [])
        self.warning_label.setText("\n".join(f"⚠ {w}" for w in warnings))
        self._summary = summary
        test, val = default_shares(summary.patients)  # shares this many patients allow
        if test == 0.0:
            self.split_box.setCurrentIndex(self.split_box.findData(0.0))
        if val > self.val_spin.value():
            self.val_spin.setValue(val)
        self.check_split()
        self.positive_box.blockSignals(True)
        self.positive_box.clear()
        self.positive_box.addItems(list(summary.classes))
        want = model_classes[1] if model_classes else None
        k = self.positive_box.findText(want) if want else -1
        self.positive_box.setCurrentIndex(k if k >= 0 else self.positive_box.count() - 1)
        self.positive_box.blockSignals(False)

    @property
    def problem(self) -> str:
        """Why the loaded data cannot be split at the chosen shares ("" when it can, or nothing is loaded)."""
        return self.split_problem_label.text()

    def check_split(self, *_: object) -> str:
        """Say beside the split why the loaded data cannot be split so (or clear it); returns the reason."""
        summary = self._summary
        reason = ""
        if summary is not None:
            reason = split_problem(summary.counts, summary.patients_per_class, test=float(self.split_box.currentData()),
                                   val=float(self.val_spin.value())) or ""
        self.split_problem_label.setText(reason)
        return reason

    def show_problem(self, reason: str) -> None:
        """A refusal from the fine-tune process (the data, the split): beside the split, in words."""
        self.split_problem_label.setText(reason)

    # -- grid --------------------------------------------------------------------------------------------------

    def grid(self) -> Grid | None:
        """The grid to search, or None when the box is off (raises ValueError with the rule broken)."""
        if not self.grid_check.isChecked():
            return None
        return Grid.parse(self.grid_edit.text())

    def describe_grid(self, *_: object, seconds: float | None = None) -> None:
        """Beside the field: how many configurations (or why the text is not a grid), and the estimate."""
        if not self.grid_check.isChecked():
            self.grid_label.setText("")
            return
        try:
            grid = Grid.parse(self.grid_edit.text())
        except ValueError as e:
            self.grid_label.setText(f"⚠ {e}")
            return
        when = (f"about {seconds / 60:.1f} min at most here (every configuration at all its epochs, and the refit)"
                if seconds is not None else "Estimate times it")
        self.grid_label.setText(f"{len(grid)} configurations, then the refit: {when}.")

    # -- everything ----------------------------------------------------------------------------------------------

    def values(self) -> SetupValues:
        """The settings as frozen values (raises ValueError with a one-line reason)."""
        augment = Augmentation(**{k: c.isChecked() for k, c in self.augment_checks.items()},
                               gan=self.gan_check.isChecked(), gan_ratio=self.gan_ratio_spin.value(),
                               gan_steps=self.gan_steps_spin.value())
        source = self.base_source()
        config = FineTuneConfig(
            **source, mode=self.mode_box.currentData(),
            reset_head=self.reset_head.isChecked() and "base" in source, augment=augment,
            optimizer=self.optimizer_box.currentData(), lr=self.lr_spin.value(), batch_size=self.batch_spin.value(),
            epochs=self.epochs_spin.value(), patience=self.patience_spin.value(),
            class_weighting=self.weighting.isChecked(), seed=self.seed_spin.value(),
            device=self.device_box.currentText())
        test = float(self.split_box.currentData())
        grid = self.grid()
        if grid is not None:
            grid.configs(config)  # every combination is a valid configuration (dropout in [0, 1), ...)
        return SetupValues(config, self.data_source(), test, float(self.val_spin.value()),
                           self.positive_box.currentText() or None, grid)
