"""The model card as a reader reads it (viewer.qt.ai.card_html), on the shipped model's real card."""

from __future__ import annotations

import json
from pathlib import Path

from viewer.qt.ai.card_html import card_html, value_html

CARD = Path(__file__).resolve().parents[3] / "resources" / "models" / "demo-nodule" / "card.json"


def test_the_shipped_card_reads_as_sections_and_tables_without_json() -> None:
    card = json.loads(CARD.read_text())
    text = card_html(card, "/models/demo-nodule")
    for section in ("Use", "Performance", "Training data", "Input", "Provenance"):
        assert f"<h4>{section}</h4>" in text
    assert "{" not in text and '":' not in text  # no JSON left
    assert "Demonstration model" in text and "Intended use" in text
    assert card["sha256"] in text  # nothing is left out
    threshold = f"{card['threshold']:.4g}"
    assert threshold in text


def test_nested_values_become_tables() -> None:
    html = value_html({"test": {"auc": 0.961234, "n": 436}, "splits": [{"name": "a", "n": 1}, {"name": "b"}]})
    assert "<table" in html and "0.9612" in html and "<th align='left'>Name</th>" in html and "—" in html
    assert value_html(["CT", "MR"]) == "CT, MR" and value_html(True) == "yes"
