"""A model card as a reader reads it: headed sections and tables, not JSON (Qt-free text).

The card's fields (:class:`viewer.base.model_card.ModelCard`) are shown in the order a reader asks about
a model: what it is for, how good it is (metrics per split, as tables), what it was trained on, how its
input is prepared, where it comes from. Nested values become nested tables; numbers get four significant
digits; nothing is left out, and nothing is shown as braces.
"""

from __future__ import annotations

import html
from typing import Any

#: Sections: title and the card fields they show, in this order (fields not named here go to "More").
SECTIONS = (
    ("Use", ("intended_use", "demonstration", "labels", "modalities", "threshold", "heatmap_method")),
    ("Performance", ("metrics",)),
    ("Training data", ("training_data",)),
    ("Input", ("arch", "input_size", "in_chans", "preprocessing", "arch_kwargs", "num_classes")),
    ("Provenance", ("name", "version", "parent", "created", "sha256", "weights_file", "format_version")),
)


def _title(key: str) -> str:
    return key.replace("_", " ").strip().capitalize()


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None or value == "":
        return "—"
    return str(value)


def value_html(value: Any) -> str:
    """A value as HTML: a scalar as text, a list of scalars joined, a dict or a list of dicts as a table."""
    esc = html.escape
    if isinstance(value, dict):
        if not value:
            return "—"
        rows = "".join(f"<tr><td valign='top'><i>{esc(_title(str(k)))}</i></td><td>{value_html(v)}</td></tr>"
                       for k, v in value.items())
        return f"<table cellspacing='0' cellpadding='2'>{rows}</table>"
    if isinstance(value, (list, tuple)):
        if not value:
            return "—"
        if all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for v in value for k in v))
            head = "".join(f"<th align='left'>{esc(_title(str(c)))}</th>" for c in columns)
            body = "".join("<tr>" + "".join(f"<td>{value_html(v.get(c))}</td>" for c in columns) + "</tr>"
                           for v in value)
            return f"<table cellspacing='0' cellpadding='2'><tr>{head}</tr>{body}</table>"
        return esc(", ".join(_scalar(v) for v in value))
    return esc(_scalar(value))


def card_html(card: dict[str, Any], where: str = "") -> str:
    """The whole card (``ModelCard.to_dict()``) as headed sections; ``where``: the bundle's folder."""
    shown: set[str] = set()
    parts = [f"<h3>{html.escape(str(card.get('name', 'model')))} v{html.escape(str(card.get('version', '')))}</h3>"]
    if card.get("demonstration"):
        parts.append("<p style='color:#c0392b'><b>Demonstration model – not for diagnosis.</b></p>")
    for title, keys in SECTIONS:
        present = {k: card[k] for k in keys if k in card}
        shown.update(present)
        if present:
            parts.append(f"<h4>{title}</h4>{value_html(present)}")
    rest = {k: v for k, v in card.items() if k not in shown}
    if rest:
        parts.append(f"<h4>More</h4>{value_html(rest)}")
    if where:
        parts.append(f"<p style='color:#888'>bundle: {html.escape(where)}</p>")
    return "".join(parts)
