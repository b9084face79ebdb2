"""The AI dock: model picker and card, the slice's probability and faithfulness badge, overlay controls.

A view of :class:`~viewer.qt.ai.state.AIState`: every control writes through its setters, and every
signal of the state updates the controls inside ``QSignalBlocker`` so nothing echoes back.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from viewer.ai.model_registry import ModelEntry
from viewer.core.overlay import COLORMAPS
from viewer.qt.ai.card_html import card_html
from viewer.qt.ai.state import AIState
from viewer.qt.ai.status import (
    DEMONSTRATION_TEXT,
    NOT_APPLICABLE,
    RESULT,
    OverlaySettings,
    ProbabilityCurve,
    SliceStatus,
)

#: Characters of the metrics summary shown in the panel (the card dialog shows all of it).
METRICS_CHARS = 170
#: The picker's last item, which opens a bundle folder from disk.
OPEN_BUNDLE_TEXT = "Open model bundle…"

_BADGE = "border-radius: 4px; padding: 2px 6px; font-weight: bold;"
BADGE_STYLES = {
    "faithful": f"background: #1f6f3a; color: white; {_BADGE}",
    "little": f"background: #9a5b00; color: white; {_BADGE}",
    "pending": f"background: #444; color: #ddd; {_BADGE}",
}
SUSPICIOUS_COLOR = "#e06a00"
MUTED_COLOR = "#888"
DEMONSTRATION_STYLE = "background: #a32020; color: white; font-weight: bold; padding: 4px; border-radius: 4px;"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def metrics_summary(metrics: dict) -> str:
    """One line of a card's metrics: its ``summary`` when it has one, else its top-level numbers."""
    summary = metrics.get("summary")
    if isinstance(summary, str) and summary.strip():
        return summary.strip()
    numbers = [f"{k} {_fmt(v)}" for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return " · ".join(numbers) if numbers else "none stated"


def card_summary_html(entry: ModelEntry, metrics_chars: int | None = None) -> str:
    """The model card in a few lines: identity, input, threshold, metrics, intended use, demonstration flag."""
    card = entry.card
    esc = html.escape
    metrics = metrics_summary(card.metrics)
    if metrics_chars is not None and len(metrics) > metrics_chars:
        metrics = metrics[: metrics_chars - 1].rstrip() + "…"
    lines = [
        f"<b>{esc(card.name)}</b> v{esc(str(card.version))} · {esc(entry.source)}",
        f"{esc(card.arch)} · {card.input_size} px · {card.in_chans} channel(s) · "
        f"modalities {esc(', '.join(card.modalities) or 'any')}",
        f"threshold <b>{card.threshold:.4g}</b> · heatmap {esc(card.heatmap_method)}",
        f"<i>metrics:</i> {esc(metrics)}",
        f"<i>intended use:</i> {esc(card.intended_use)}",
        f"demonstration model: <b>{'yes' if card.demonstration else 'no'}</b>",
        f"<span style='color:#888'>sha256 {esc(card.sha256[:12])}… · {esc(card.created[:10])}"
        + (f" · parent {esc(card.parent)}" if card.parent else "") + "</span>",
    ]
    return "<br>".join(lines)


class CardDialog(QDialog):
    """The whole model card, as headed sections and tables (:func:`viewer.qt.ai.card_html.card_html`)."""

    def __init__(self, entry: ModelEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card — {entry.card.name}")
        self.resize(620, 640)
        self.text = text = QTextBrowser(self)
        text.setHtml(card_html(entry.card.to_dict(), str(entry.path)))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)


class AIPanel(QScrollArea):
    """The AI second reader's dock widget (scrolls when the dock is short)."""

    def __init__(self, ai: AIState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget(self)
        self.setWidget(content)
        self.ai = ai
        self.card_dialog: CardDialog | None = None

        self.picker = QComboBox(self)
        self.picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.picker.setMinimumContentsLength(12)
        self.picker.setToolTip("The model that reads the images")
        self.card_button = QPushButton("Card…", self)
        self.card_button.setToolTip("The whole model card")
        self.card_label = QLabel(self)
        self.card_label.setWordWrap(True)
        self.card_label.setTextFormat(Qt.TextFormat.RichText)
        self.card_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        small = QFont(self.font())
        small.setPointSizeF(max(7.0, self.font().pointSizeF() - 1))
        self.card_label.setFont(small)
        self.demo_label = QLabel(DEMONSTRATION_TEXT, self)
        self.demo_label.setStyleSheet(DEMONSTRATION_STYLE)
        self.demo_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.demo_label.setWordWrap(True)
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)
        self.status_label.setFont(small)
        self.progress = QProgressBar(self)
        self.progress.setMaximumHeight(12)
        self.progress.setTextVisible(False)

        self.probability_label = QLabel(self)
        big = QFont(self.font())
        big.setPointSizeF(self.font().pointSizeF() + 7)
        big.setBold(True)
        self.probability_label.setFont(big)
        self.verdict_label = QLabel(self)
        self.verdict_label.setWordWrap(True)
        self.faith_label = QLabel(self)
        self.faith_label.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.faith_label.setToolTip("Deletion test: does removing the hottest pixels lower the probability faster "
                                    "than removing random ones? Computed for the slice you pause on.")
        self.prev_button = QPushButton("◀ Previous", self)
        self.prev_button.setToolTip("Previous suspicious slice in ranked order (Shift+N)")
        self.next_button = QPushButton("Next suspicious ▶", self)
        self.next_button.setToolTip("Next suspicious slice in ranked order (N)")
        self.suspicious_label = QLabel(self)
        self.suspicious_label.setWordWrap(True)
        self.suspicious_label.setFont(small)

        self.show_heat = QCheckBox("Show heatmap (H)", self)
        self.suspicious_only = QCheckBox("Only on slices at or above threshold", self)
        self.suspicious_only.setToolTip("Grad-CAM is scaled per slice: its hottest spot is bright even where the "
                                        "model sees nothing")
        self.colormap = QComboBox(self)
        self.colormap.addItems(list(COLORMAPS))
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity of the hottest heat")
        self.heat_threshold = QSlider(Qt.Orientation.Horizontal, self)
        self.heat_threshold.setRange(0, 95)
        self.heat_threshold.setToolTip("Heat below this level is not drawn")

        layout = QVBoxLayout(content)
        layout.setContentsMargins(6, 6, 6, 6)
        row = QHBoxLayout()
        row.addWidget(QLabel("Model", self))
        row.addWidget(self.picker, 1)
        row.addWidget(self.card_button)
        layout.addLayout(row)
        layout.addWidget(self.card_label)
        layout.addWidget(self.demo_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.progress)

        slice_box = QGroupBox("This slice", self)
        box = QVBoxLayout(slice_box)
        box.addWidget(self.probability_label)
        box.addWidget(self.verdict_label)
        box.addWidget(self.faith_label)
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        box.addLayout(nav)
        box.addWidget(self.suspicious_label)
        layout.addWidget(slice_box)

        overlay_box = QGroupBox("Heatmap overlay", self)
        form = QFormLayout(overlay_box)
        form.addRow(self.show_heat)
        form.addRow(self.suspicious_only)
        form.addRow("Colours", self.colormap)
        form.addRow("Opacity", self.opacity)
        form.addRow("Hide below", self.heat_threshold)
        layout.addWidget(overlay_box)
        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.NoFrame)
        layout.addWidget(line, 1)

        self.picker.activated.connect(self._on_picked)
        self.card_button.clicked.connect(self.show_card)
        self.prev_button.clicked.connect(lambda: ai.next_suspicious(-1))
        self.next_button.clicked.connect(lambda: ai.next_suspicious(1))
        self.show_heat.toggled.connect(ai.set_overlay_visible)
        self.suspicious_only.toggled.connect(ai.set_suspicious_only)
        self.colormap.currentTextChanged.connect(ai.set_colormap)
        self.opacity.valueChanged.connect(lambda v: ai.set_opacity(v / 100))
        self.heat_threshold.valueChanged.connect(lambda v: ai.set_heat_threshold(v / 100))

        ai.sig_models_changed.connect(self._on_models)
        ai.sig_model_changed.connect(self._on_model)
        ai.sig_pending_model_changed.connect(lambda _: self._select_model())
        ai.sig_status_changed.connect(self.status_label.setText)
        ai.sig_progress.connect(self._on_progress)
        ai.sig_current_changed.connect(self._on_current)
        ai.sig_curve_changed.connect(self._on_curve)
        ai.sig_overlay_changed.connect(self._on_overlay)

        self._on_models(ai.models)
        self._on_model(ai.model)
        self._on_overlay(ai.overlay)
        self._on_progress(*ai.progress)
        self.status_label.setText(ai.status_text())
        self._on_current(ai.current())
        self._on_curve(ai.curve())
        self.setEnabled(ai.enabled)

    # -- picker and card ---------------------------------------------------------------------------------------

    def _on_models(self, models: list[ModelEntry]) -> None:
        with QSignalBlocker(self.picker):
            self.picker.clear()
            for m in models:
                label = m.name if m.source != "file" else f"{m.name} ({m.path})"
                self.picker.addItem(f"{label} · {m.source}", userData=m)
                self.picker.setItemData(self.picker.count() - 1, str(m.path), Qt.ItemDataRole.ToolTipRole)
            self.picker.addItem(OPEN_BUNDLE_TEXT)
        self._select_model()

    def model_names(self) -> list[str]:
        """Names of the models the picker offers (tests, scripts)."""
        return [self.picker.itemData(i).name for i in range(self.picker.count())
                if isinstance(self.picker.itemData(i), ModelEntry)]

    def _select_model(self) -> None:
        wanted = self.ai.pending_model or self.ai.model
        with QSignalBlocker(self.picker):
            for i in range(self.picker.count()):
                m = self.picker.itemData(i)
                if isinstance(m, ModelEntry) and wanted is not None and Path(m.path) == Path(wanted.path) \
                        and m.version_key == wanted.version_key:
                    self.picker.setCurrentIndex(i)
                    return
            self.picker.setCurrentIndex(-1)

    def _on_model(self, entry: ModelEntry | None) -> None:
        self._select_model()
        self.card_button.setEnabled(entry is not None)
        self.card_label.setText(card_summary_html(entry, METRICS_CHARS) if entry is not None else "no model")
        self.demo_label.setVisible(entry is not None and bool(entry.card.demonstration))

    def _on_picked(self, index: int) -> None:
        item = self.picker.itemData(index)
        if isinstance(item, ModelEntry):
            self.ai.set_model(item)
            return
        folder = QFileDialog.getExistingDirectory(self, "Open a model bundle (folder with card.json)")
        if folder:
            self.ai.set_model(folder)
        self._select_model()

    def show_card(self) -> None:
        entry = self.ai.model
        if entry is None:
            return
        self.card_dialog = CardDialog(entry, self)
        self.card_dialog.show()

    # -- state -> panel -----------------------------------------------------------------------------------------

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))

    def _on_current(self, status: SliceStatus) -> None:
        if status.state == RESULT:
            self.probability_label.setText(f"p = {status.probability:.3f}")
            # orange that reads on light and dark palettes; the palette's own text colour otherwise
            self.probability_label.setStyleSheet(f"color: {SUSPICIOUS_COLOR};" if status.suspicious else "")
            self.verdict_label.setText(status.text.split(" · ", 1)[1] if " · " in status.text else status.text)
        else:
            self.probability_label.setText("p = –" if status.state != NOT_APPLICABLE else "no number")
            self.probability_label.setStyleSheet(f"color: {MUTED_COLOR};")
            self.verdict_label.setText(status.text)
        badge = status.faithfulness_text
        if status.faithfulness is not None:
            style = BADGE_STYLES["faithful" if status.faithfulness.faithful else "little"]
            badge += f" (score {status.faithfulness.score:+.2f})"
        else:
            style = BADGE_STYLES["pending"]
        self.faith_label.setText(badge)
        self.faith_label.setStyleSheet(style)
        self.faith_label.setVisible(bool(badge))
        self.demo_label.setVisible(status.model is not None and status.demonstration)

    def _on_curve(self, curve: ProbabilityCurve) -> None:
        order = self.ai.suspicious()
        enabled = bool(order)
        self.prev_button.setEnabled(enabled)
        self.next_button.setEnabled(enabled)
        if curve.reason or curve.threshold is None or not order:
            self.suspicious_label.setText("")
            return
        results = self.ai.results()
        above = results is not None and results.probabilities[order[0]] >= curve.threshold
        head = ", ".join(self.ai.image_label(i) for i in order[:6]) + ("…" if len(order) > 6 else "")
        if above:
            self.suspicious_label.setText(f"{len(order)} slice(s) at or above threshold: {head}")
        else:
            self.suspicious_label.setText(f"none at or above threshold; highest first: {head}")

    def _on_overlay(self, overlay: OverlaySettings) -> None:
        widgets = (self.show_heat, self.suspicious_only, self.colormap, self.opacity, self.heat_threshold)
        blockers = [QSignalBlocker(w) for w in widgets]
        try:
            self.show_heat.setChecked(overlay.visible)
            self.suspicious_only.setChecked(overlay.suspicious_only)
            self.colormap.setCurrentText(overlay.colormap)
            self.opacity.setValue(round(overlay.opacity * 100))
            self.heat_threshold.setValue(round(overlay.threshold * 100))
        finally:
            for blocker in blockers:
                blocker.unblock()
