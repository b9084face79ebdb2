"""A model's card: what it is, how to feed it, how good it is, and the sha256 of its weights (torch-free).

A bundle is a folder with ``weights.safetensors`` and ``card.json`` (:mod:`models.runtime.bundle` saves and loads
the weights). Reading and checking a card needs neither torch nor timm, so the model picker, ``radview
models`` and the fine-tune dialog show cards before torch has loaded (importing torch + timm takes ~4 s
here). :data:`ARCHITECTURES` names what a card may name; :mod:`models.runtime.architectures` builds them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viewer.base.preprocess_config import PreprocessConfig, in_channels

__all__ = [
    "ARCHITECTURES",
    "CARD_FILE",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "BundleError",
    "ModelCard",
    "file_sha256",
    "read_card",
]

#: The timm ones are always created with random weights (``pretrained=False``).
ARCHITECTURES: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "efficientnet_b0",
    "vit_tiny_patch16_224",
    "smallcnn",
    "nodulemap",
)

CARD_FILE = "card.json"

WEIGHTS_FILE = "weights.safetensors"

FORMAT_VERSION = 1


class BundleError(Exception):
    """A model bundle that cannot be used, with a one-line reason.

    Parameters
    ----------
    reason : str
        What is wrong, for a person (e.g. ``"sha256 mismatch: card says 1a2b…, file is 9f8e…"``).
    path : path-like, optional
        The bundle, card or weights file concerned.
    """

    def __init__(self, reason: str, path: str | os.PathLike[str] | None = None) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)


@dataclass(frozen=True)
class ModelCard:
    """What a model is, how to feed it, how good it is, and which weights it describes.

    Parameters
    ----------
    name, version : str
        Identity shown in the model picker (``name`` is also the bundle folder's usual name).
    arch : str
        An architecture of :data:`models.runtime.architectures.ARCHITECTURES`.
    arch_kwargs : dict
        Extra keyword arguments for :func:`models.runtime.architectures.create_model` (e.g. ``map_stride``).
    input_size : int
        Side of the square input in pixels (equals ``preprocessing["size"]``).
    in_chans : int
        Input channels (equals :func:`viewer.base.preprocess_config.in_channels` of the preprocessing).
    preprocessing : dict
        :meth:`viewer.base.preprocess_config.PreprocessConfig.to_dict` of the recipe used in training.
    labels : list of str
        Class names; with one logit, ``[negative, positive]``.
    threshold : float
        Decision threshold on the probability, calibrated on held-out clean slices (never assume 0.5:
        crop-trained models are miscalibrated on whole slices).
    modalities : list of str
        DICOM Modality values the model accepts (e.g. ``["CT"]``); others get "model does not apply".
    heatmap_method : str
        Default explanation: ``"gradcam"``, ``"gradcampp"``, ``"rollout"`` or ``"location"``.
    training_data : dict
        Free-form summary of the training data.
    metrics : dict
        Held-out metrics, stated honestly.
    parent : str or None
        ``name@sha256`` of the model this one was fine-tuned from.
    created : str
        ISO 8601 UTC time; filled in by :func:`save_bundle` when empty.
    demonstration : bool
        True for a demonstration model: the UI labels it "not for diagnosis".
    intended_use : str
        Plain-language intended use and limits.
    sha256 : str
        Hex sha256 of the weights file; filled in by :func:`save_bundle`.
    num_classes : int
        Output logits (1: sigmoid probability of ``labels[-1]``).
    weights_file : str
        Weights file name inside the bundle (``weights.safetensors``, or an explicit ``.pt`` state dict).
    format_version : int
        Card format version; newer versions are refused.
    """

    name: str
    arch: str
    input_size: int
    in_chans: int
    preprocessing: dict[str, Any]
    version: str = "1"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=lambda: ["no nodule", "nodule"])
    threshold: float = 0.5
    modalities: list[str] = field(default_factory=lambda: ["CT"])
    heatmap_method: str = "gradcam"
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    created: str = ""
    demonstration: bool = True
    intended_use: str = "Demonstration of an AI second reader. Not for diagnosis."
    sha256: str = ""
    num_classes: int = 1
    weights_file: str = WEIGHTS_FILE
    format_version: int = FORMAT_VERSION

    def preprocess_config(self) -> PreprocessConfig:
        """The card's preprocessing as a :class:`~viewer.base.preprocess_config.PreprocessConfig`."""
        return PreprocessConfig.from_dict(self.preprocessing)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Pretty JSON with sorted keys (stable diffs when a card is committed)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Build and validate a card; raises :class:`ValueError` with the first problem found."""
        if not isinstance(d, dict):
            raise ValueError(f"card must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown card fields: {', '.join(unknown)}")
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.name not in d and _required(f))
        if missing:
            raise ValueError(f"card lacks required fields: {', '.join(missing)}")
        card = cls(**d)
        card.validate()
        return card

    def validate(self) -> None:
        """Check the card is self-consistent; raises :class:`ValueError`."""
        if self.format_version > FORMAT_VERSION:
            raise ValueError(f"card format {self.format_version} is newer than this program ({FORMAT_VERSION})")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}")
        cfg = self.preprocess_config()
        if in_channels(cfg) != self.in_chans:
            raise ValueError(f"in_chans {self.in_chans} but the preprocessing makes {in_channels(cfg)} channels")
        if cfg.size != self.input_size:
            raise ValueError(f"input_size {self.input_size} but the preprocessing resizes to {cfg.size}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold {self.threshold} is not a probability")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if Path(self.weights_file).name != self.weights_file or not self.weights_file.endswith(
            (".safetensors", ".pt", ".pth")
        ):
            raise ValueError(f"weights_file must be a .safetensors/.pt file name in the bundle: {self.weights_file!r}")


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read and validate a card (torch-free).

    Parameters
    ----------
    path : path-like
        A bundle folder, its ``card.json``, or a weights file beside a ``card.json``.

    Raises
    ------
    BundleError
    """
    card_file = card_path(Path(path))
    try:
        text = card_file.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise BundleError(f"no {CARD_FILE} (not a model bundle)", card_file.parent) from e
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"cannot read card: {e}", card_file) from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BundleError(f"card is not valid JSON ({e.msg} at line {e.lineno})", card_file) from e
    try:
        return ModelCard.from_dict(data)
    except (TypeError, ValueError) as e:
        raise BundleError(f"invalid card: {e}", card_file) from e


def card_path(path: Path) -> Path:
    """The ``card.json`` of a bundle folder, a card file itself, or the card beside a weights file."""
    if path.is_dir():
        return path / CARD_FILE
    if path.suffix == ".json":
        return path
    return path.parent / CARD_FILE
