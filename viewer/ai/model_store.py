"""Managing the user's models: rename, delete, export and import bundles (Qt-free, torch-free).

The model manager's operations on ``<data dir>/models`` (:func:`viewer.ai.model_registry.user_models_dir`):

- the shipped models are never renamed or deleted, and the model the viewer is using is neither renamed
  nor deleted (switch to another one first): callers pass it as ``active``;
- every change is atomic: a rename is one ``os.replace`` of the folder after its card was rewritten
  atomically; a delete first renames the folder to a hidden sibling, so the model disappears whole, then
  removes it; an export or import is built under a temporary name and renamed into place;
- an import is verified before anything appears: only ``card.json`` and a ``.safetensors`` weights file
  (a pickle-based ``.pt`` bundle is refused: loading it would run the unpickler), no path outside the
  bundle in a zip, a valid card, a weights file whose sha256 is the card's and whose safetensors header
  is well formed. The full check that the weights fit the architecture happens when the model is loaded
  (:func:`models.runtime.bundle.load_bundle`), which refuses it with a reason and keeps the previous model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import zipfile
from dataclasses import replace
from pathlib import Path

from viewer.ai.model_registry import ModelEntry, list_models, user_models_dir
from viewer.base.atomic import atomic_output_path, atomic_replace_dir, atomic_write_text, fsync_dir
from viewer.base.errors import RadviewError
from viewer.base.model_card import CARD_FILE, BundleError, ModelCard, file_sha256, read_card

__all__ = ["ModelStoreError", "delete_model", "export_model", "import_model", "rename_model"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Largest safetensors header accepted (bytes); real ones are a few KB.
MAX_HEADER = 16 * 2**20
#: Largest bundle file accepted from a zip (bytes).
MAX_MEMBER = 4 * 2**30


class ModelStoreError(RadviewError):
    """An operation refused or failed; the message is one line."""


def _user_entry(name: str) -> ModelEntry:
    for m in list_models():
        if m.name == name:
            if m.source != "user":
                raise ModelStoreError(f"{name} is a shipped model: it cannot be renamed or deleted")
            return m
    raise ModelStoreError(f"no user model {name!r}")


def _check_not_active(entry: ModelEntry, active: ModelEntry | None, what: str) -> None:
    if active is not None and Path(active.path).resolve() == Path(entry.path).resolve():
        raise ModelStoreError(f"{entry.name} is the active model: switch to another model before you {what} it")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise ModelStoreError(f"a model name is 1-64 letters, digits, '.', '_' or '-' (starting with a letter or "
                              f"digit), not {name!r}")
    taken = {m.name for m in list_models()} | {m.card.name for m in list_models()}
    if name in taken or (user_models_dir() / name).exists():
        raise ModelStoreError(f"a model named {name!r} exists already")
    return name


def _write_card(folder: Path, card: ModelCard) -> None:
    atomic_write_text(folder / CARD_FILE, card.to_json())


def rename_model(name: str, new_name: str, *, active: ModelEntry | None = None) -> Path:
    """Rename a user model (its folder and the card's name); returns the new folder."""
    entry = _user_entry(name)
    _check_not_active(entry, active, "rename")
    _check_name(new_name)
    target = entry.path.parent / new_name
    _write_card(entry.path, replace(entry.card, name=new_name))
    try:
        os.rename(entry.path, target)  # the same folder: atomic
    except OSError as e:
        _write_card(entry.path, entry.card)
        raise ModelStoreError(f"could not rename {name}: {e.strerror or e}") from e
    fsync_dir(target.parent)
    return target


def delete_model(name: str, *, active: ModelEntry | None = None) -> None:
    """Delete a user model (never a shipped one, never the active one)."""
    entry = _user_entry(name)
    _check_not_active(entry, active, "delete")
    hidden = entry.path.with_name(f".{entry.path.name}.deleted-{os.getpid()}")
    try:
        os.rename(entry.path, hidden)  # gone whole at once; the files are removed after
    except OSError as e:
        raise ModelStoreError(f"could not delete {name}: {e.strerror or e}") from e
    fsync_dir(hidden.parent)
    shutil.rmtree(hidden, ignore_errors=True)


def export_model(entry: ModelEntry, destination: str | os.PathLike[str]) -> Path:
    """Write the bundle (card + weights) to ``destination``: a ``.zip`` file, else a folder of that name."""
    dest = Path(destination)
    card = entry.card
    files = [(entry.path / CARD_FILE, CARD_FILE), (entry.path / card.weights_file, card.weights_file)]
    if dest.suffix.lower() == ".zip":
        with atomic_output_path(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for path, arcname in files:
                z.write(path, arcname)
        return dest
    with atomic_replace_dir(dest) as tmp:
        for path, arcname in files:
            shutil.copyfile(path, tmp / arcname)
    return dest


def _check_safetensors(path: Path) -> None:
    """A well-formed safetensors header: 8-byte length, a JSON object of tensors inside the file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelStoreError("weights file is too short to be safetensors")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise ModelStoreError("weights file is not safetensors (bad header length)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelStoreError("weights file is not safetensors (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelStoreError("weights file is not safetensors (header is not an object)")
    for key, value in header.items():
        if key == "__metadata__":
            continue
        offsets = value.get("data_offsets") if isinstance(value, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(v, int) and 0 <= v <= size - 8 - n for v in offsets)):
            raise ModelStoreError(f"weights file is not safetensors (tensor {key!r} lies outside the file)")


def _verify(folder: Path) -> ModelCard:
    try:
        card = read_card(folder)
    except BundleError as e:
        raise ModelStoreError(f"not a model bundle: {e}") from e
    if not card.weights_file.endswith(".safetensors") or Path(card.weights_file).name != card.weights_file:
        raise ModelStoreError(f"refused: weights {card.weights_file!r} are not a .safetensors file (a pickle "
                              f"could run code when loaded)")
    weights = folder / card.weights_file
    if not weights.is_file():
        raise ModelStoreError(f"the bundle has no {card.weights_file}")
    if file_sha256(weights) != card.sha256:
        raise ModelStoreError("the weights' sha256 does not match the card (damaged or altered)")
    _check_safetensors(weights)
    return card


def _unzip(archive: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                name = info.filename
                if info.is_dir():
                    continue
                if "/" in name.strip("/") or "\\" in name or name.startswith(("/", "..")):
                    raise ModelStoreError(f"refused: {name!r} is not a plain file name of a bundle")
                if not (name == CARD_FILE or name.endswith(".safetensors")):
                    raise ModelStoreError(f"refused: {name!r} is neither card.json nor .safetensors weights")
                if info.file_size > MAX_MEMBER:
                    raise ModelStoreError(f"refused: {name!r} is larger than {MAX_MEMBER // 2**30} GB")
                with z.open(info) as src, open(into / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelStoreError(f"cannot read {archive.name}: {e}") from e


def import_model(source: str | os.PathLike[str], name: str | None = None) -> Path:
    """Verify a bundle (folder or ``.zip``) and install it as a user model; returns its folder.

    ``name`` defaults to the card's; a name already used gets ``-v2``, ``-v3`` … (nothing is overwritten).
    """
    src = Path(source)
    root = user_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".import-{os.getpid()}-{abs(hash(str(src))) % 10**8}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if src.is_dir():
            card = _verify(src)  # only the card and its weights are taken from a folder
            for f in (CARD_FILE, card.weights_file):
                shutil.copyfile(src / f, staging / f)
        elif src.is_file():
            _unzip(src, staging)
        else:
            raise ModelStoreError(f"no such file or folder: {src}")
        card = _verify(staging)
        base = name or card.name
        if not _NAME.fullmatch(base):
            base = "imported-model"
        taken = {m.name for m in list_models()} | {m.card.name for m in list_models()}
        chosen = next(n for n in (base if k == 1 else f"{base}-v{k}" for k in range(1, 10_000))
                      if n not in taken and not (root / n).exists())
        if chosen != card.name:
            _write_card(staging, replace(card, name=chosen))
        os.rename(staging, root / chosen)
        fsync_dir(root)
        return root / chosen
    finally:
        shutil.rmtree(staging, ignore_errors=True)
