"""Labelled images from disk: a folder per class or a CSV of path,label; duplicates out; a split by patient.

Sources
-------
- **Folder per class**: ``root/<class>/…`` (any depth below the class folder). DICOM files (one item per
  frame), PNG, JPEG and TIFF images (read with SimpleITK: no Qt in the core; a multi-page TIFF gives one
  item per page).
- **CSV**: a header with ``path`` and ``label`` (optional ``patient`` and ``frame``), or header-less
  ``path,label`` rows; relative paths are relative to the CSV's folder.

What the import reports (a :class:`LabeledDataset`, frozen):

- items with their class, patient and a hash of their stored pixels;
- counts per class and an imbalance warning when the largest class outnumbers the smallest more
  than :data:`IMBALANCE_RATIO` times;
- duplicates dropped: the same DICOM instance (SOPInstanceUID + frame) or the same pixels (sha256 of
  the stored values, shape and type) met a second time, with the item kept; when the copies carry
  different labels neither is used (which one is right is unknown) and both are listed;
- unreadable or unsupported files skipped, each with its reason.

Patients: PatientID for DICOM (StudyInstanceUID when empty); for plain images the CSV's ``patient``
column, else the image's parent folder name; an image lying directly in its class folder is its own
patient (with a warning, as slices of one patient could then land in two splits).

:func:`split_by_patient` assigns whole patients to train / validation / test (seeded, stratified by
class as far as whole patients allow) and refuses, before any training, data that cannot give every
split both classes or training :data:`MIN_TRAIN_PER_CLASS` images per class.

Torch- and Qt-free. Pixels are read once here (to hash and to prove they decode) and again when the
training set is made (``viewer.ai.finetune``); nothing is kept in memory in between.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from viewer.base.errors import Cancelled, RadviewError
from viewer.core.decode import decode_frames
from viewer.core.errors import DicomFileError
from viewer.core.header import FileHeader, NotDicom, read_header
from viewer.core.scan import Skipped

__all__ = [
    "IMAGE_SUFFIXES",
    "IMBALANCE_RATIO",
    "MIN_TRAIN_PER_CLASS",
    "DataSplit",
    "Dropped",
    "LabeledDataError",
    "LabeledDataset",
    "LabeledItem",
    "import_csv",
    "import_folder",
    "import_labeled",
    "read_image",
    "split_by_patient",
]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
#: Largest class / smallest class above this gets a warning.
IMBALANCE_RATIO = 3.0
#: Fewest training images per class a split must leave.
MIN_TRAIN_PER_CLASS = 5

Progress = Callable[[int, int], None]


class LabeledDataError(RadviewError):
    """Labelled data that cannot be used as asked (too few images or patients, a bad CSV): one line."""


@dataclass(frozen=True)
class LabeledItem:
    """One labelled image.

    Attributes
    ----------
    path : Path
    frame : int
        Frame of a multi-frame DICOM or page of a multi-page TIFF (0 otherwise).
    label : str
        Class name.
    patient : str
        Who the image belongs to (splits never share a patient).
    kind : {"dicom", "image"}
    pixel_hash : str
        sha256 of the stored pixels ("" when not computed, e.g. items from the label store).
    series_uid, sop_uid, study_uid, modality : str
        DICOM only.
    """

    path: Path
    frame: int
    label: str
    patient: str
    kind: Literal["dicom", "image"]
    pixel_hash: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    study_uid: str = ""
    modality: str = ""

    @property
    def name(self) -> str:
        """``path`` or ``path#frame``: how reports name the image."""
        return f"{self.path}#{self.frame}" if self.frame else str(self.path)


@dataclass(frozen=True)
class Dropped:
    """A duplicate left out: which image, which one was kept instead, and why."""

    path: Path
    frame: int
    kept: Path
    reason: str


@dataclass(frozen=True, eq=False)
class LabeledDataset:
    """What an import found (see the module notes)."""

    items: tuple[LabeledItem, ...]
    classes: tuple[str, ...]
    source: str
    skipped: tuple[Skipped, ...] = ()
    duplicates: tuple[Dropped, ...] = ()
    warnings: tuple[str, ...] = ()
    #: SeriesInstanceUID -> every file of that series known to this dataset (2.5D neighbours).
    context_files: dict[str, tuple[Path, ...]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(it.label for it in self.items)
        return {name: c.get(name, 0) for name in self.classes}

    @property
    def patients(self) -> tuple[str, ...]:
        return tuple(sorted({it.patient for it in self.items}))

    @property
    def patients_per_class(self) -> dict[str, int]:
        """How many patients have images of each class."""
        return {name: len({it.patient for it in self.items if it.label == name}) for name in self.classes}

    @property
    def imbalance_warning(self) -> str | None:
        counts = {k: v for k, v in self.counts.items()}
        if len(counts) < 2:
            return None
        big = max(counts, key=lambda k: counts[k])
        small = min(counts, key=lambda k: counts[k])
        if counts[small] == 0:
            return f"no image of class {small!r}"
        ratio = counts[big] / counts[small]
        if ratio > IMBALANCE_RATIO:
            return (f"imbalanced classes: {counts[big]} {big!r} vs {counts[small]} {small!r} ({ratio:.1f}:1); "
                    f"class weighting is advised")
        return None

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts, patients, duplicates, skipped files and warnings."""
        warnings = list(self.warnings)
        if self.imbalance_warning:
            warnings.append(self.imbalance_warning)
        return {
            "source": self.source,
            "counts": self.counts,
            "patients": len(self.patients),
            "duplicates_dropped": [{"path": str(d.path), "frame": d.frame, "kept": str(d.kept), "reason": d.reason}
                                   for d in self.duplicates],
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in self.skipped],
            "warnings": warnings,
        }

# --- reading pixels ------------------------------------------------------------------------------


def _sitk():
    import SimpleITK as sitk

    return sitk


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """A PNG / JPEG / TIFF as stored values ``(frames, rows, cols)`` in the file's own integer or float
    type (colour converted to grey with the ITU-R BT.601 luma weights, rounded back to that type).

    Raises
    ------
    ValueError
        Unreadable or not a 2-D image (the reason is one line).
    """
    return _read_image(path)[0]


def _read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, bool]:
    sitk = _sitk()
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        text = str(e)
        lines = [ln for ln in text.splitlines() if "ERROR" in ln] or text.splitlines()[:1] or [""]
        reason = lines[0].split("ERROR:")[-1].strip()
        raise ValueError(f"not a readable image ({reason})") from None
    arr = sitk.GetArrayFromImage(img)
    comps = img.GetNumberOfComponentsPerPixel()
    colour = comps > 1
    if colour:
        if comps not in (3, 4):
            raise ValueError(f"unsupported image with {comps} channels")
        rgb = arr[..., :3].astype(np.float32)
        luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        arr = np.rint(luma).astype(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else luma
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape[1:]) < 8:
        raise ValueError(f"not a 2-D image of at least 8x8 pixels (shape {arr.shape})")
    return arr, colour


def _pixel_hash(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


# --- import ---------------------------------------------------------------------------------------


@dataclass
class _Collector:
    """Builds a dataset: dedupes as items arrive, collects skipped files and warnings."""

    source: str
    items: list[LabeledItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[Dropped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    own_patient: int = 0
    colour: int = 0
    by_sop: dict[tuple[str, int], LabeledItem] = field(default_factory=dict)
    by_hash: dict[str, LabeledItem] = field(default_factory=dict)
    series_files: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))
    context_sops: set[str] = field(default_factory=set)

    def add(self, item: LabeledItem) -> None:
        if item.label not in self.classes:
            self.classes.append(item.label)
        first = None
        why = ""
        if item.sop_uid and (item.sop_uid, item.frame) in self.by_sop:
            first, why = self.by_sop[(item.sop_uid, item.frame)], "same DICOM instance (SOPInstanceUID)"
        elif item.pixel_hash and item.pixel_hash in self.by_hash:
            first, why = self.by_hash[item.pixel_hash], "same pixels"
        if first is not None:
            if first.label != item.label:
                # Which label is right is unknown: neither image is used, and both are reported.
                note = f"{why} labelled {{}} but {{}} there: conflicting labels, both left out (check them)"
                self.duplicates.append(Dropped(item.path, item.frame, first.path,
                                               note.format(repr(item.label), repr(first.label))))
                if first in self.items:
                    self.items.remove(first)
                    self.duplicates.append(Dropped(first.path, first.frame, item.path,
                                                   note.format(repr(first.label), repr(item.label))))
                return
            self.duplicates.append(Dropped(item.path, item.frame, first.path, why))
            return
        if item.sop_uid:
            self.by_sop[(item.sop_uid, item.frame)] = item
        if item.pixel_hash:
            self.by_hash[item.pixel_hash] = item
        self.items.append(item)

    def dicom(self, header: FileHeader, label: str, frames: Sequence[int] | None) -> None:
        if header.layout.is_color:
            self.skipped.append(Skipped(header.path, "colour DICOM image (the models read greyscale)"))
            return
        try:
            arr = decode_frames(header)
        except DicomFileError as e:
            self.skipped.append(Skipped(header.path, e.reason))
            return
        patient = header.patient.get("PatientID", "") or (f"study {header.study_uid}" if header.study_uid else
                                                          f"folder {header.path.parent.name}")
        if header.sop_uid not in self.context_sops:  # one file per instance (a copy would repeat the slice)
            self.context_sops.add(header.sop_uid)
            self.series_files[header.series_uid].append(header.path)
        for f in frames if frames is not None else range(arr.shape[0]):
            if not 0 <= f < arr.shape[0]:
                self.skipped.append(Skipped(header.path, f"no frame {f} (the file has {arr.shape[0]})"))
                continue
            self.add(LabeledItem(header.path, int(f), label, patient, "dicom", _pixel_hash(arr[f]),
                                 header.series_uid, header.sop_uid, header.study_uid, header.modality))

    def image(self, path: Path, label: str, patient: str, frames: Sequence[int] | None) -> None:
        try:
            arr, colour = _read_image(path)
        except ValueError as e:
            self.skipped.append(Skipped(path, str(e)))
            return
        self.colour += colour
        for f in frames if frames is not None else range(arr.shape[0]):
            if not 0 <= f < arr.shape[0]:
                self.skipped.append(Skipped(path, f"no page {f} (the file has {arr.shape[0]})"))
                continue
            self.add(LabeledItem(path, int(f), label, patient, "image", _pixel_hash(arr[f])))

    def file(self, path: Path, label: str, patient: str | None, frames: Sequence[int] | None) -> None:
        """One file of any supported kind; ``patient`` overrides the image's parent-folder patient."""
        if path.suffix.lower() in IMAGE_SUFFIXES:
            self.image(path, label, patient or path.parent.name, frames)
            return
        try:
            header = read_header(path)
        except NotDicom:
            self.skipped.append(Skipped(path, "not DICOM, PNG, JPEG or TIFF"))
            return
        except DicomFileError as e:
            self.skipped.append(Skipped(path, e.reason))
            return
        self.dicom(header, label, frames)

    def dataset(self) -> LabeledDataset:
        if self.own_patient:
            self.warnings.append(
                f"{self.own_patient} image(s) lie directly in their class folder: each is taken as its own patient, "
                f"so images of one patient could land in two splits (put them in <class>/<patient>/ folders or "
                f"give a CSV 'patient' column)")
        if self.colour:
            self.warnings.append(f"{self.colour} colour image(s) converted to grey")
        return LabeledDataset(
            items=tuple(self.items),
            classes=tuple(self.classes),
            source=self.source,
            skipped=tuple(self.skipped),
            duplicates=tuple(self.duplicates),
            warnings=tuple(self.warnings),
            context_files={k: tuple(v) for k, v in self.series_files.items()},
        )


def _walk(folder: Path) -> list[Path]:
    out: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
    return out


def import_folder(root: str | os.PathLike[str], *, progress: Progress | None = None,
                  cancel: Callable[[], bool] | None = None) -> LabeledDataset:
    """Import ``root/<class>/…`` (see the module notes).

    Raises
    ------
    LabeledDataError
        ``root`` is not a folder or has no class sub-folder.
    Cancelled
        ``cancel`` returned True.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise LabeledDataError(f"{folder}: not a folder")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise LabeledDataError(f"{folder}: no class folders (expected {folder}/<class>/<images>)")
    jobs = [(d.name, p) for d in class_dirs for p in _walk(d)]
    col = _Collector(source=f"folder {folder}")
    for name in (d.name for d in class_dirs):
        col.classes.append(name)
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            col.skipped.append(Skipped(path, "not inside a class folder"))
    for i, (label, path) in enumerate(jobs):
        if cancel is not None and cancel():
            raise Cancelled("import cancelled")
        patient = None
        if path.suffix.lower() in IMAGE_SUFFIXES and path.parent == folder / label:
            patient = f"{label}/{path.stem}"
            col.own_patient += 1
        col.file(path, label, patient, None)
        if progress is not None:
            progress(i + 1, len(jobs))
    return col.dataset()


def _csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise LabeledDataError(f"{path}: empty CSV")
    head = [c.strip().lower() for c in rows[0]]
    if "path" in head and "label" in head:
        names, body, first_line = head, rows[1:], 2
    else:
        names, body, first_line = ["path", "label"], rows, 1
    out = []
    for i, row in enumerate(body):
        if not any(c.strip() for c in row):
            continue
        out.append((first_line + i, {n: (row[k].strip() if k < len(row) else "") for k, n in enumerate(names)}))
    return out


def import_csv(path: str | os.PathLike[str], *, progress: Progress | None = None,
               cancel: Callable[[], bool] | None = None) -> LabeledDataset:
    """Import a CSV of ``path,label`` (optional ``patient``, ``frame``) (see the module notes).

    A row without a frame takes every frame of the file; rows with a missing path or label, a bad frame
    or a file that does not exist are skipped with their line number.
    """
    csv_path = Path(path)
    try:
        rows = _csv_rows(csv_path)
    except (OSError, UnicodeDecodeError) as e:
        raise LabeledDataError(f"{csv_path}: cannot read the CSV ({e})") from e
    col = _Collector(source=f"csv {csv_path}")
    for i, (line, row) in enumerate(rows):
        if cancel is not None and cancel():
            raise Cancelled("import cancelled")
        raw, label = row.get("path", ""), row.get("label", "")
        file = (csv_path.parent / raw) if raw and not Path(raw).is_absolute() else Path(raw)
        frame_text = row.get("frame", "")
        if not raw or not label:
            col.skipped.append(Skipped(file if raw else csv_path, f"line {line}: needs a path and a label"))
        elif frame_text and not frame_text.isdigit():
            col.skipped.append(Skipped(file, f"line {line}: frame must be an integer >= 0, got {frame_text!r}"))
        elif not file.is_file():
            col.skipped.append(Skipped(file, f"line {line}: no such file"))
        else:
            col.file(file, label, row.get("patient") or None, [int(frame_text)] if frame_text else None)
        if progress is not None:
            progress(i + 1, len(rows))
    return col.dataset()


def import_labeled(path: str | os.PathLike[str], **kwargs: Any) -> LabeledDataset:
    """A folder per class, or a ``.csv`` file."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".csv":
        return import_csv(p, **kwargs)
    if p.is_dir():
        return import_folder(p, **kwargs)
    raise LabeledDataError(f"{p}: expected a folder with a sub-folder per class, or a .csv of path,label")


# --- split by patient ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSplit:
    """Items per split; no patient in two splits."""

    train: tuple[LabeledItem, ...]
    val: tuple[LabeledItem, ...]
    test: tuple[LabeledItem, ...]
    seed: int
    shares: tuple[float, float, float]

    def split(self, name: str) -> tuple[LabeledItem, ...]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed, "shares": {k: round(v, 6) for k, v in
                                                              zip(("train", "val", "test"), self.shares)}}
        for name in ("train", "val", "test"):
            items = self.split(name)
            out[name] = {"images": len(items), "patients": len({it.patient for it in items}),
                         "counts": dict(sorted(Counter(it.label for it in items).items()))}
        return out


def split_problem(counts: dict[str, int], patients_per_class: dict[str, int], *, test: float, val: float,
                  min_train_per_class: int = MIN_TRAIN_PER_CLASS) -> str | None:
    """Why images with these counts cannot be split by patient at these shares, or None when they can.

    The checks :func:`split_by_patient` makes before it tries an assignment, from counts alone, so the
    fine-tune dialog can say so beside the field before anything is read. ``patients_per_class``: how many
    patients have images of each class.
    """
    if not (0 <= test < 1 and 0 <= val < 1 and test + val < 1):
        return f"test ({test}) and validation ({val}) shares must be in [0, 1) and leave some to train"
    splits = [s for s, v in (("train", 1.0 - test - val), ("val", val), ("test", test)) if v > 0]
    classes = sorted(c for c, n in counts.items() if n > 0)
    if len(classes) < 2:
        return f"need images of two classes, found {', '.join(classes) or 'none'}"
    need = min_train_per_class + (len(splits) - 1)
    few = [f"{counts[c]} {c!r}" for c in classes if counts[c] < need]
    if few:
        return (f"too few images per class: {', '.join(few)} (need at least {need} of each: "
                f"{min_train_per_class} to train" + (" and one for each other split)" if len(splits) > 1 else ")"))
    for c in classes:
        holders = patients_per_class.get(c, 0)
        if holders < len(splits):
            return (f"only {holders} patient(s) have {c!r} images: a split by patient needs at least {len(splits)} "
                    f"(one per split: {', '.join(splits)}); add patients or drop the validation/test share")
    return None


def default_shares(patients: int) -> tuple[float, float]:
    """(test, validation) shares a study of ``patients`` patients allows: no test split below three patients,
    and a validation share large enough to hold one patient (at most half)."""
    test = 0.2 if patients >= 3 else 0.0
    val = min(0.5, max(0.1, 1.0 / max(patients, 1)))
    return test, round(val, 2)


def split_by_patient(
    items: Sequence[LabeledItem],
    *,
    test: float = 0.2,
    val: float = 0.1,
    seed: int = 0,
    min_train_per_class: int = MIN_TRAIN_PER_CLASS,
    attempts: int = 64,
) -> DataSplit:
    """Assign whole patients to train / validation / test, stratified by class as far as patients allow.

    Parameters
    ----------
    items : labelled images (two or more classes)
    test, val : float
        Shares of the images for test and validation (the rest trains); 0 leaves that split empty.
    seed : int
        Same seed, same split.
    min_train_per_class : int
        The training split must get at least this many images of every class.
    attempts : int
        Seeded orders tried until one gives every non-empty split every class.

    Method: patients in a seeded random order, larger ones first, each going to the split with the
    largest share-weighted shortfall for the classes that patient brings (iterative stratification).

    Raises
    ------
    LabeledDataError
        Too few images of a class, too few patients with a class to put one in every split, or no
        assignment found; raised before any training, with the numbers.
    """
    per_patient: dict[str, Counter[str]] = defaultdict(Counter)
    for it in items:
        per_patient[it.patient][it.label] += 1
    totals: Counter[str] = Counter(it.label for it in items)
    holders = {c: sum(1 for p in per_patient.values() if p[c]) for c in totals}
    problem = split_problem(dict(totals), holders, test=test, val=val, min_train_per_class=min_train_per_class)
    if problem:
        raise LabeledDataError(problem)
    shares = {"train": 1.0 - test - val, "val": val, "test": test}
    splits = [s for s, v in shares.items() if v > 0]
    classes = sorted(totals)
    rng = np.random.default_rng(seed)
    patients = sorted(per_patient)
    best_problem = ""
    for _ in range(attempts):
        order = [patients[i] for i in rng.permutation(len(patients))]
        order.sort(key=lambda p: -sum(per_patient[p].values()))  # stable: random among equals
        have: dict[str, Counter[str]] = {s: Counter() for s in splits}
        assign: dict[str, str] = {}
        for p in order:
            counts = per_patient[p]

            def shortfall(s: str) -> float:
                return sum((shares[s] * totals[c] - have[s][c]) * n / totals[c] for c, n in counts.items())

            s = max(splits, key=shortfall)
            assign[p] = s
            have[s].update(counts)
        problem = ""
        for s in splits:
            floor = min_train_per_class if s == "train" else 1
            short = [c for c in classes if have[s][c] < floor]
            if short:
                problem = f"the {s} split would get {', '.join(f'{have[s][c]} {c!r}' for c in short)}"
                break
        if not problem:
            by = {s: tuple(it for it in items if assign[it.patient] == s) for s in ("train", "val", "test")
                  if s in splits}
            return DataSplit(by.get("train", ()), by.get("val", ()), by.get("test", ()), seed,
                             (shares["train"], shares["val"], shares["test"]))
        best_problem = best_problem or problem
    raise LabeledDataError(f"no split by patient gives every split both classes ({best_problem}); "
                           f"add patients or change the shares")
