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
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viewer.base.atomic import fsync_dir, move_dir_into_place
from viewer.base.model_card import CARD_FILE, WEIGHTS_FILE, BundleError, ModelCard, card_path, file_sha256, read_card

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

@dataclass(frozen=True)
class LoadedModel:
    """A verified model, in eval mode on its device, with its card and the bundle it came from."""

    model: nn.Module
    card: ModelCard
    path: Path


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


def write_weights(model: nn.Module, path: Path) -> None:
    """The model's state dict as safetensors (on CPU, contiguous), byte for byte the same for the same weights."""
    import torch
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format).contiguous().clone()
             for k, v in model.state_dict().items()}
    # One metadata key only: safetensors 0.8 keeps metadata in a hash map and writes several keys in
    # a random order, which would make the bytes (and the sha256) of identical weights differ.
    save_file(state, str(path), metadata={"format": "pt"})


def save_bundle(
    model: nn.Module, card: ModelCard, folder: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write a model bundle atomically: a complete bundle appears at ``folder`` or nothing does.

    The weights (``safetensors.torch.save_file`` of the state dict, on CPU, contiguous) and the card
    (with ``sha256`` of the written weights and ``created`` filled in) go into a temporary sibling
    folder, are fsynced, and the folder is renamed into place (:func:`viewer.base.atomic.move_dir_into_place`:
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

    dest = Path(folder)
    dest.parent.mkdir(parents=True, exist_ok=True)
    card = dataclasses.replace(card, weights_file=WEIGHTS_FILE)
    try:
        card.validate()
    except ValueError as e:
        raise BundleError(f"invalid card: {e}", dest) from e
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        weights = tmp / WEIGHTS_FILE
        write_weights(model, weights)
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


def read_state_dict(weights: Path) -> dict[str, Any]:
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
        (:func:`models.runtime.predict.prepare_model`).

    Raises
    ------
    BundleError
        Missing/invalid card, unknown architecture, sha256 mismatch, unreadable or unsafe weights file,
        weights that do not fit the architecture.
    """
    p = Path(path)
    card = read_card(p)
    folder = card_path(p).parent
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
    state = read_state_dict(weights)

    from models.runtime.architectures import create_model

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
    from models.runtime.predict import prepare_model

    prepare_model(model, device)  # on the device, channels_last for conv nets
    model.eval()
    return LoadedModel(model=model, card=card, path=folder)
