"""Where models live and which ones there are: the shipped demo model and the user's own.

Torch-free: only model cards are read (:func:`viewer.base.model_card.read_card`), so the model picker and
``radview models`` answer before torch is imported.

- shipped: ``resources/models/<name>/`` beside the packages (or inside a PyInstaller bundle);
- user: ``<user data dir>/models/<name>/`` (``$RADVIEW_DATA_DIR`` overrides the data dir), where
  fine-tuned models are saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from viewer.base.model_card import BundleError, ModelCard, read_card
from viewer.core.user_dirs import data_dir, resources_dir

#: The model the viewer uses when the user has chosen none.
DEFAULT_MODEL = "demo-nodule"


@dataclass(frozen=True)
class ModelEntry:
    """One installed model bundle."""

    name: str
    path: Path
    card: ModelCard
    source: str  # "shipped" or "user"

    @property
    def version_key(self) -> str:
        """Identifies these exact weights (results are cached under it)."""
        return f"{self.card.name}@{self.card.sha256[:12]}"


def user_models_dir() -> Path:
    return data_dir() / "models"


def _entries(folder: Path, source: str) -> list[ModelEntry]:
    found: list[ModelEntry] = []
    if not folder.is_dir():
        return found
    for child in sorted(folder.iterdir()):
        if (child / "card.json").is_file():
            try:
                found.append(ModelEntry(child.name, child, read_card(child), source))
            except BundleError:
                continue  # a broken bundle is not offered; `radview models` says why
    return found


def list_models() -> list[ModelEntry]:
    """Installed models: shipped ones first, then the user's."""
    return _entries(resources_dir() / "models", "shipped") + _entries(user_models_dir(), "user")


def find_model(name_or_path: str | None = None) -> ModelEntry:
    """A model by name (user models shadow shipped ones of the same name) or by bundle path.

    Raises
    ------
    KeyError
        No such model; the message lists the installed ones.
    BundleError
        The path is not a readable bundle.
    """
    wanted = name_or_path or DEFAULT_MODEL
    path = Path(wanted)
    if path.exists():
        folder = path if path.is_dir() else path.parent
        return ModelEntry(folder.name, folder, read_card(folder), "file")
    matches = [m for m in list_models() if m.name == wanted or m.card.name == wanted]
    if not matches:
        names = ", ".join(sorted({m.name for m in list_models()})) or "none"
        raise KeyError(f"no model {wanted!r}; installed: {names}")
    return matches[-1]


def reads(entry: ModelEntry, modality: str) -> bool:
    """Whether ``entry``'s card says it reads ``modality`` (a card that names none reads any)."""
    return not entry.card.modalities or modality in entry.card.modalities


def model_for(modality: str, models: Sequence[ModelEntry], preferred: ModelEntry | None = None) -> ModelEntry | None:
    """The model to read ``modality`` with: ``preferred`` when it reads it, else the first of ``models`` that
    does (the shipped ones come first in :func:`list_models`), else None. So a chest radiograph opens with the
    radiograph model and a CT with the CT model, whichever was shown last."""
    if preferred is not None and reads(preferred, modality):
        return preferred
    return next((m for m in models if reads(m, modality)), None)
