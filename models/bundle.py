"""Model bundles: a folder with ``weights.safetensors`` and ``card.json``, verified before use.

A bundle is what the viewer activates, the fine-tune dialog writes and the repository ships. Loading one
never runs code from it:

- weights are read with safetensors (a flat tensor format: no code), or, for a ``.pt`` state dict named
  explicitly, with ``torch.load(weights_only=True)``, whose restricted unpickler refuses any global that
  is not a tensor or container, so a pickle payload (``__reduce__`` → ``os.system``) is refused before it
  runs;
- the sha256 of the weights file must equal the card's ``sha256`` (checked before parsing the weights);
- the card must name a known architecture and the weights must fit it exactly (names and shapes).

Every failure is a :class:`BundleError` with a one-line reason, so the viewer can show it in its
Problems panel and keep the previous model. Saving is atomic (temp sibling folder, fsync, rename), like
every file the user makes (design convention 6).

torch and safetensors are imported lazily: :func:`read_card` is torch-free, so the model picker can show
cards before torch has loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.arch_names import ARCHITECTURES
from models.atomic import fsync_dir, move_dir_into_place
from models.preprocess import PreprocessConfig, in_channels

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "CARD_FILE",
    "WEIGHTS_FILE",
    "BundleError",
    "LoadedModel",
    "ModelCard",
    "file_sha256",
    "load_bundle",
    "read_card",
    "save_bundle",
]

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
        An architecture of :data:`models.architectures.ARCHITECTURES`.
    arch_kwargs : dict
        Extra keyword arguments for :func:`models.architectures.create_model` (e.g. ``map_stride``).
    input_size : int
        Side of the square input in pixels (equals ``preprocessing["size"]``).
    in_chans : int
        Input channels (equals :func:`models.preprocess.in_channels` of the preprocessing).
    preprocessing : dict
        :meth:`models.preprocess.PreprocessConfig.to_dict` of the recipe used in training.
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
        """The card's preprocessing as a :class:`~models.preprocess.PreprocessConfig`."""
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


@dataclass(frozen=True)
class LoadedModel:
    """A verified model, in eval mode on its device, with its card and the bundle it came from."""

    model: nn.Module
    card: ModelCard
    path: Path


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
    card_path = _card_path(Path(path))
    try:
        text = card_path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise BundleError(f"no {CARD_FILE} (not a model bundle)", card_path.parent) from e
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"cannot read card: {e}", card_path) from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BundleError(f"card is not valid JSON ({e.msg} at line {e.lineno})", card_path) from e
    try:
        return ModelCard.from_dict(data)
    except (TypeError, ValueError) as e:
        raise BundleError(f"invalid card: {e}", card_path) from e


def _card_path(path: Path) -> Path:
    if path.is_dir():
        return path / CARD_FILE
    if path.suffix == ".json":
        return path
    return path.parent / CARD_FILE


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _same_bundle(folder: Path, sha256: str) -> bool:
    """True when ``folder`` is already a valid bundle whose weights have ``sha256``."""
    try:
        card = read_card(folder)
        return card.sha256 == sha256 and file_sha256(folder / card.weights_file) == sha256
    except (BundleError, OSError):
        return False


def save_bundle(
    model: nn.Module, card: ModelCard, folder: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write a model bundle atomically: a complete bundle appears at ``folder`` or nothing does.

    The weights (``safetensors.torch.save_file`` of the state dict, on CPU, contiguous) and the card
    (with ``sha256`` of the written weights and ``created`` filled in) go into a temporary sibling
    folder, are fsynced, and the folder is renamed into place (:func:`models.atomic.move_dir_into_place`:
    an existing bundle is exchanged with it in one step on Linux). On any error the temporary folder is
    removed.

    Parameters
    ----------
    model : torch.nn.Module
    card : ModelCard
        ``sha256`` is replaced by the written file's; ``created`` is set to now (UTC) if empty;
        ``weights_file`` is set to ``weights.safetensors``.
    folder : path-like
        Destination bundle folder.
    overwrite : bool
        Replace an existing, different bundle at ``folder``. Without it, an existing bundle with the
        same weights is left as is (saving is idempotent) and anything else raises.

    Returns
    -------
    pathlib.Path
        The bundle folder.

    Raises
    ------
    BundleError
        When ``folder`` exists and holds something else (and ``overwrite`` is False), or the card is
        invalid for the model.
    """
    import torch
    from safetensors.torch import save_file

    dest = Path(folder)
    dest.parent.mkdir(parents=True, exist_ok=True)
    card = dataclasses.replace(card, weights_file=WEIGHTS_FILE)
    try:
        card.validate()
    except ValueError as e:
        raise BundleError(f"invalid card: {e}", dest) from e
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format).contiguous().clone()
             for k, v in model.state_dict().items()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        weights = tmp / WEIGHTS_FILE
        # One metadata key only: safetensors 0.8 keeps metadata in a hash map and writes several keys in
        # a random order, which would make the bytes (and the sha256) of identical weights differ.
        save_file(state, str(weights), metadata={"format": "pt"})
        _fsync_file(weights)
        created = card.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        card = dataclasses.replace(card, sha256=file_sha256(weights), created=created)
        card_file = tmp / CARD_FILE
        with open(card_file, "w", encoding="utf-8") as f:
            f.write(card.to_json())
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)
        if dest.exists() and not overwrite:
            if _same_bundle(dest, card.sha256):
                shutil.rmtree(tmp)
                return dest
            raise BundleError("a different bundle already exists here (pass overwrite=True to replace it)", dest)
        move_dir_into_place(tmp, dest)  # an old bundle is exchanged in one step (Linux): never absent
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _load_state_dict(weights: Path) -> dict[str, Any]:
    """Read a state dict without executing anything from the file."""
    import torch

    if weights.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(weights), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise BundleError(f"not a readable safetensors file ({_one_line(e)})", weights) from e
    try:
        # weights_only=True: torch's restricted unpickler; a global outside tensors/containers (such as
        # os.system in a payload's __reduce__) raises UnpicklingError before anything is called.
        obj = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip), EOFError, ...: all mean "refuse"
        raise BundleError(f"refused to load as a weights-only state dict ({_one_line(e)})", weights) from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise BundleError("file is not a state dict of named tensors", weights)
    return obj


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first}"[:300]


def _check_fit(model: nn.Module, state: dict[str, Any], arch: str) -> None:
    """Refuse weights that do not fit the architecture exactly, naming the first differences."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        problems.append(f"{len(wrong)} with other shapes (e.g. {wrong[0]})")
    if problems:
        raise BundleError(f"weights do not fit architecture {arch!r}: " + "; ".join(problems))


def load_bundle(path: str | os.PathLike[str], device: str | Any = "cpu") -> LoadedModel:
    """Load and verify a model bundle.

    Parameters
    ----------
    path : path-like
        A bundle folder, its ``card.json``, or a weights file (``.safetensors``, or a ``.pt`` state dict
        given explicitly) beside a ``card.json``. A weights file given explicitly overrides the card's
        ``weights_file``; its sha256 must still match the card.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    LoadedModel
        Model in eval mode on ``device``, weights channels_last for conv nets
        (:func:`models.predict.prepare_model`).

    Raises
    ------
    BundleError
        Missing/invalid card, unknown architecture, sha256 mismatch, unreadable or unsafe weights file,
        weights that do not fit the architecture.
    """
    p = Path(path)
    card = read_card(p)
    folder = _card_path(p).parent
    if p.is_file() and p.suffix != ".json":
        weights = p
    else:
        weights = folder / card.weights_file
    if not weights.is_file():
        raise BundleError(f"weights file {weights.name} is missing", folder)
    if weights.suffix not in (".safetensors", ".pt", ".pth"):
        raise BundleError("weights must be .safetensors or a .pt/.pth state dict", weights)
    actual = file_sha256(weights)
    if actual != card.sha256:
        raise BundleError(
            f"sha256 mismatch: card says {card.sha256[:12] or '(none)'}…, file is {actual[:12]}…; refusing to load",
            weights,
        )
    state = _load_state_dict(weights)

    from models.architectures import create_model

    kwargs = dict(card.arch_kwargs)
    if card.arch.startswith("vit_"):
        kwargs.setdefault("img_size", card.input_size)
    try:
        model = create_model(card.arch, in_chans=card.in_chans, num_classes=card.num_classes, **kwargs)
    except (TypeError, ValueError) as e:
        raise BundleError(f"cannot build {card.arch!r} with {kwargs}: {_one_line(e)}", folder) from e
    try:
        _check_fit(model, state, card.arch)
    except BundleError as e:
        raise BundleError(e.reason, weights) from None
    model.load_state_dict(state, strict=True)
    from models.predict import prepare_model

    prepare_model(model, device)  # on the device, channels_last for conv nets
    model.eval()
    return LoadedModel(model=model, card=card, path=folder)
