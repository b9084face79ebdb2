"""Anonymise DICOM series and export them: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

What each attribute becomes is the Standard's table E.1-1 (the "Basic Profile" column), taken from
``dicom-anonymizer``'s copy of it (its 2026c edition, :data:`PROFILE_EDITION`): that table is the part of
an anonymiser that must follow the Standard's editions, and that package keeps it current. Its engine is
not used: it treats top-level attributes only (an identifier nested in a sequence survives), keeps one
process-wide UID map and prints to stdout. The engine here:

- walks every nested sequence item (and the file meta information) and applies the table at every level;
- resolves the table's combined actions by the Type the Standard allows (see :data:`COMBINED`): X/Z and
  Z/D become Z (the element stays, empty: Type 2 stays valid), X/D and X/Z/D become a dummy value;
- replaces every instance UID (every UI value that is not a registered DICOM UID such as a SOP Class or a
  Transfer Syntax) through one :class:`UidMap` per export, so the series stay series, a study stays one
  study and references between files still resolve;
- removes every private element (the profile's default; no "retain safe private" option);
- flags burned-in annotation (it does not clean pixels: pixel data are copied unchanged), which is why
  Patient Identity Removed is "YES" only for files not flagged;
- records what it did: Patient Identity Removed, De-identification Method and its code sequence
  (DCM 113100, "Basic Application Confidentiality Profile").

Output files are named by position only (``S001/IM00001.dcm``: series in scan order, slices in display
order), never after the input names, which may hold a patient's name. The whole output folder is built
under a temporary name and moved into place when every file is written (:func:`atomic_replace_dir`).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from viewer.base.atomic import atomic_replace_dir
from viewer.base.errors import Cancelled
from viewer.core.errors import NothingLoadableError
from viewer.core.scan import CancelFn, ProgressFn, ScanResult, Skipped, scan

#: Edition of PS3.15 table E.1-1 used (the module of that name in ``dicom-anonymizer``).
PROFILE_EDITION = "dicomfields_2026c"
#: What the combined actions of the table become here, the most removing choice the Type allows.
COMBINED = {"Z/D": "Z", "X/Z": "Z", "X/D": "D", "X/Z/D": "Z", "X/Z/U*": "U*"}
#: The table's lists in ``dicom-anonymizer``, and the action each stands for.
_TABLE_LISTS = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}
#: DICOM's code for this profile (PS3.16 CID 7050).
PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
#: De-identification Method (0012,0063), an LO: at most 64 characters.
METHOD = "radview: PS3.15 E.1 Basic Profile"
#: Modalities whose images commonly carry burned-in text (ultrasound, secondary capture, documents...).
BURNED_IN_MODALITIES = {"US", "SC", "OT", "XC", "ES", "GM", "DOC", "SM", "IVUS"}
#: Secondary Capture SOP classes start with this root.
_SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"

@dataclass(frozen=True)
class TableRule:
    """One row of table E.1-1: a tag (or a repeating-group pattern: ``tag & mask == value & mask``)."""

    value: int
    mask: int
    action: str


@cache
def profile_rules() -> tuple[dict[int, str], tuple[TableRule, ...]]:
    """Table E.1-1 as ``{tag: action}`` for single tags and masked rules for repeating groups (50xx, 60xx).

    Actions are the table's codes (``D``, ``Z``, ``X``, ``U``, ``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``,
    ``X/Z/U*``).
    """
    import importlib

    table = importlib.import_module(f"dicomanonymizer.dicom_anonymization_databases.{PROFILE_EDITION}")
    exact: dict[int, str] = {}
    masked: list[TableRule] = []
    for name, action in _TABLE_LISTS.items():
        for entry in getattr(table, name):
            if len(entry) == 2:
                exact[(entry[0] << 16) | entry[1]] = action
            else:
                group, element, group_mask, element_mask = entry
                masked.append(TableRule((group << 16) | element, (group_mask << 16) | element_mask, action))
    return exact, tuple(masked)


def profile_action(tag: int) -> str | None:
    """The table's action for ``tag`` (``None``: not listed, kept)."""
    exact, masked = profile_rules()
    action = exact.get(int(tag))
    if action is not None:
        return action
    for rule in masked:
        if int(tag) & rule.mask == rule.value & rule.mask:
            return rule.action
    return None


class UidMap:
    """Consistent UID replacement within one export: the same input UID always gets the same new UID.

    New UIDs are ``2.25.<128-bit decimal>`` (PS3.5 B.2, a UUID-derived UID) from a keyed hash of the old
    one. The key is random per export unless ``seed`` is given, so a UID cannot be traced back by
    hashing candidate UIDs; with a seed, the same input gives the same output (reproducible exports).
    """

    def __init__(self, seed: str | bytes | None = None) -> None:
        raw = os.urandom(32) if seed is None else (seed.encode() if isinstance(seed, str) else bytes(seed))
        self._key = hashlib.sha256(raw).digest()
        self._map: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        uid = str(uid).strip("\0 ")
        if not uid or is_registered_uid(uid):
            return uid
        new = self._map.get(uid)
        if new is None:
            digest = hashlib.blake2b(uid.encode(), key=self._key, digest_size=16).digest()
            new = self._map[uid] = f"2.25.{int.from_bytes(digest, 'big')}"
        return new

    def __len__(self) -> int:
        return len(self._map)


def is_registered_uid(uid: str) -> bool:
    """True for a UID the Standard defines (SOP classes, transfer syntaxes, coding schemes...): kept.

    Class UIDs (keywords ending in ``ClassUID``) are kept by :func:`anonymise_dataset` even when not
    registered (a vendor's private SOP class names a kind of object, not a patient).
    """
    return uid in UID_dictionary


#: Dummy values for action D, by VR (the Standard asks for a non-empty value consistent with the VR).
_DUMMY_TEXT = "ANONYMISED"
_DUMMY = {
    "PN": "Anonymised", "DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000Y",
    "UR": "https://anonymised.invalid", "DS": "0", "IS": "0", "CS": "ANONYMISED",
}


def _dummy(element: DataElement) -> object:
    vr = element.VR
    if vr in _DUMMY:
        return _DUMMY[vr]
    if vr in ("FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"):
        return 0
    if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return b"\0\0"
    return _DUMMY_TEXT


def _apply(ds: Dataset, uids: UidMap) -> None:
    """Apply the profile to one dataset level, then to every item of every sequence it keeps."""
    for element in list(ds):
        tag = int(element.tag)
        if element.tag.is_private:
            continue  # removed as a whole afterwards
        action = profile_action(tag)
        action = COMBINED.get(action, action) if action else None
        if action == "X":
            del ds[tag]
            continue
        if element.VR == "SQ":
            if action == "Z":
                element.value = Sequence()
                continue
            # D, U*, or not listed: keep the items and clean them like any dataset (references stay, remapped)
            for item in element.value or ():
                _apply(item, uids)
            continue
        if action == "Z":
            element.value = None if element.VR not in ("OB", "OW", "UN") else b""
        elif action == "D":
            element.value = _dummy(element)
        elif element.VR == "UI" and element.value and not element.keyword.endswith("ClassUID"):
            # U, U*, and every other instance UID: consistently remapped, registered DICOM UIDs kept
            values = (
                element.value if isinstance(element.value, (list, pydicom.multival.MultiValue)) else [element.value]
            )
            mapped = [uids(v) for v in values]
            element.value = mapped if len(mapped) > 1 else mapped[0]


def burned_in_reason(ds: Dataset) -> str:
    """Why this image may carry burned-in identifying text (``""``: no sign of it).

    BurnedInAnnotation (0028,0301) "YES" says so; when the attribute is absent, ultrasound, secondary
    capture, document-like modalities and images typed SECONDARY commonly carry it (PS3.15 E.1.1 leaves
    cleaning the pixels to the exporter, which radview does not do).
    """
    flag = str(ds.get("BurnedInAnnotation", "") or "").upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES"
    if flag == "NO":
        return ""
    modality = str(ds.get("Modality", "") or "").upper()
    if modality in BURNED_IN_MODALITIES:
        return f"{modality} images often carry burned-in text (BurnedInAnnotation not stated)"
    if str(ds.get("SOPClassUID", "")).startswith(_SECONDARY_CAPTURE_ROOT):
        return "secondary capture (BurnedInAnnotation not stated)"
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "SECONDARY" in image_type:
        return "a SECONDARY image (BurnedInAnnotation not stated)"
    return ""


def anonymise_dataset(ds: Dataset, uids: UidMap) -> str:
    """Anonymise ``ds`` in place by the Basic Profile; returns the burned-in annotation reason (or ``""``).

    Pixel data are untouched. Private elements are removed at every nesting level; the file meta
    information's instance UID follows the new SOP Instance UID, and its source AE title is dropped.
    """
    reason = burned_in_reason(ds)
    _apply(ds, uids)
    ds.remove_private_tags()  # pydicom's walk reaches every nested item
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        if "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = uids(meta.MediaStorageSOPInstanceUID)
        for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                        "ReceivingApplicationEntityTitle", "PrivateInformation", "PrivateInformationCreatorUID"):
            if keyword in meta:
                del meta[keyword]
    ds.PatientIdentityRemoved = "NO" if reason else "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    return reason


@dataclass(frozen=True)
class ExportedFile:
    """One written file: its place in the output and whether its pixels may show identifying text."""

    out: Path
    series_index: int
    burned_in: str = ""


@dataclass(frozen=True)
class AnonymiseResult:
    """What :func:`anonymise_series_folder` wrote and what it could not use."""

    out_dir: Path
    files: tuple[ExportedFile, ...]
    n_series: int
    skipped: tuple[Skipped, ...]
    n_not_dicom: int

    @property
    def burned_in(self) -> tuple[ExportedFile, ...]:
        """Files whose pixels may carry burned-in identifying text (exported, flagged, not cleaned)."""
        return tuple(f for f in self.files if f.burned_in)


def _check_out_dir(out_dir: Path, inputs: Iterable[Path]) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"{out_dir} exists and is not an empty folder: choose a new or empty output folder")
    resolved = out_dir.resolve()
    for p in inputs:
        source = p.resolve()
        if resolved == source or source in resolved.parents:
            raise ValueError(f"the output folder {out_dir} lies inside the input {p}: choose another one")


def _serialise(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def _files_in_order(result: ScanResult) -> Iterator[tuple[int, Path]]:
    """(series number from 1, path) for every file of every series, series in scan order, slices in display order."""
    for s_index, series in enumerate(result.series, start=1):
        seen: set[Path] = set()
        for header in series.files:
            if header.path not in seen:  # a multi-frame file is listed once per series
                seen.add(header.path)
                yield s_index, header.path


def anonymise_series_folder(
    paths: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    *,
    seed: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> AnonymiseResult:
    """Scan ``paths``, anonymise every image file of every series and write them under ``out_dir``.

    Parameters
    ----------
    out_dir:
        A new or empty folder (never inside an input); written whole or not at all.
    seed:
        Makes the UID replacement reproducible (same input and seed, same output UIDs); default random.
    progress, cancel:
        ``progress(done, total)`` per file; ``cancel()`` polled per file (raises :class:`Cancelled`, and
        nothing is written).

    Raises
    ------
    NothingLoadableError
        No image series under ``paths``.
    ValueError
        ``out_dir`` is not usable (one line).
    """
    inputs = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, inputs)
    result = scan(inputs, cancel=cancel)
    if not result.series:
        raise NothingLoadableError(
            f"nothing to anonymise: {len(result.skipped)} file(s) skipped, {len(result.not_dicom)} not DICOM")
    todo = list(_files_in_order(result))
    uids = UidMap(seed)
    written: list[ExportedFile] = []
    skipped = list(result.skipped)
    counters: dict[int, int] = {}
    with atomic_replace_dir(out_dir) as tmp:
        for done, (s_index, path) in enumerate(todo):
            if cancel is not None and cancel():
                raise Cancelled("anonymisation cancelled")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(path, force=True)
                    reason = anonymise_dataset(ds, uids)
                    data = _serialise(ds)
            except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError) as e:
                skipped.append(Skipped(path, f"could not anonymise: {type(e).__name__}"))
                continue
            counters[s_index] = counters.get(s_index, 0) + 1
            rel = Path(f"S{s_index:03d}") / f"IM{counters[s_index]:05d}.dcm"
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)  # the folder as a whole is made atomic by atomic_replace_dir
            written.append(ExportedFile(out_dir / rel, s_index, reason))
            if progress is not None:
                progress(done + 1, len(todo))
    return AnonymiseResult(out_dir=out_dir, files=tuple(written), n_series=len(counters),
                           skipped=tuple(skipped), n_not_dicom=len(result.not_dicom))


__all__ = [
    "AnonymiseResult", "ExportedFile", "PROFILE_CODE", "PROFILE_EDITION", "UidMap", "anonymise_dataset",
    "anonymise_series_folder", "burned_in_reason", "is_registered_uid", "profile_action", "profile_rules",
]
