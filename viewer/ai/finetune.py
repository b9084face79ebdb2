"""From the viewer's data to the fine-tune engine and back to an installed model (Qt-free).

The one path behind ``radview finetune`` and the fine-tune dialog::

    dataset = import_data("labelled/")                       # or dataset_from_labels([study folder])
    config = FineTuneConfig(base=base_path("demo-nodule"), mode="head", epochs=5)
    data = prepare(dataset, config, test=0.2, val=0.1)       # split by patient, preprocess once
    run = start(config, data, cancel=..., progress=...)     # models.finetune.run.TrainingRun
    for report in run: ...
    path = save_model(run.result, "my-model")               # a new bundle in the user's models folder

Two sources of labelled images:

- the reader's labels (:mod:`viewer.core.labels`) on series found under folders: each labelled image's
  2.5D neighbours come from the whole series on disk, exactly as ``radview analyze`` stacks them
  (:func:`viewer.ai.analysis.context_stack`);
- a folder per class or a CSV (:mod:`viewer.core.labeled_data`): DICOM neighbours come from the other
  files of the same series in the data (the series' ends, or a gap, repeat the nearest slice); a plain
  image has no neighbours and is repeated.

Plain images (PNG, JPEG, TIFF) carry display values, not Hounsfield units. An integer image is taken as
already shown in the model's first window: value ``v`` of ``vmax`` (the type's maximum: 255 for 8-bit,
65535 for 16-bit) becomes ``center - width/2 + v / vmax * width``, so that window gives back
``v / vmax``; a floating-point TIFF is taken as modality values (HU) as they are.

A grid search (seed 004) is :func:`start_grid` in place of :func:`start`, with :func:`estimate_grid`.

torch is imported only by :func:`start`, :func:`start_grid` and the estimates (through
:mod:`models.finetune.run`) and when images are preprocessed.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# What the fine-tune dialog needs of the engine (torch-free); the window imports models only through here.
from models.finetune.config import Augmentation as Augmentation
from models.finetune.config import FineTuneConfig as FineTuneConfig
from models.finetune.grid import Grid as Grid
from models.finetune.grid import GridProgress as GridProgress
from models.finetune.grid import GridRow as GridRow
from models.finetune.grid import best_row as best_row
from models.finetune.reports import EpochReport as EpochReport
from models.finetune.reports import GanReport as GanReport
from models.finetune.reports import TrainingProgress as TrainingProgress
from viewer.ai.model_registry import find_model, list_models, user_models_dir
from viewer.base.errors import Cancelled
from viewer.core.errors import DicomFileError, SeriesLoadError
from viewer.core.header import FileHeader, NotDicom, read_header
from viewer.core.labeled_data import (
    DataSplit,
    LabeledDataError,
    LabeledDataset,
    LabeledItem,
    import_labeled,
    read_image,
    split_by_patient,
)
from viewer.core.labels import LabelFileError, LabelStore
from viewer.core.scan import Skipped, scan
from viewer.core.series import SeriesInfo, group_series

if TYPE_CHECKING:
    from models.finetune.datasets import TrainingSet
    from models.finetune.grid import GridSearch
    from models.finetune.result import FineTuneResult
    from models.finetune.run import TrainingRun
    from viewer.base.preprocess_config import PreprocessConfig, Presentation

__all__ = [
    "PreparedData",
    "base_path",
    "dataset_from_labels",
    "default_model_name",
    "estimate",
    "estimate_gan",
    "estimate_grid",
    "import_data",
    "prepare",
    "save_model",
    "start",
    "start_grid",
]

Progress = Callable[[int, int], None]


def import_data(path: str | os.PathLike[str], *, progress: Progress | None = None,
                cancel: Callable[[], bool] | None = None) -> LabeledDataset:
    """A folder per class or a CSV of path,label (:func:`viewer.core.labeled_data.import_labeled`)."""
    return import_labeled(path, progress=progress, cancel=cancel)


def dataset_from_labels(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                        root: str | os.PathLike[str] | None = None, progress: Progress | None = None,
                        cancel: Callable[[], bool] | None = None) -> LabeledDataset:
    """The reader's labels of every study found under ``paths``, as a dataset.

    Labels whose image is not under ``paths`` and studies whose labels file is corrupt are listed in
    ``skipped`` with the reason. ``root`` is the data folder of the label store (default: the user's).
    """
    # scan takes str | Path: a lone other os.PathLike would be iterated as if it were a list of paths
    targets = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    result = scan(targets, progress=progress, cancel=cancel)
    by_sop: dict[tuple[str, str], tuple[FileHeader, SeriesInfo]] = {}
    for s in result.series:
        for h in s.files:
            by_sop[(h.series_uid, h.sop_uid)] = (h, s)
    items: list[LabeledItem] = []
    skipped: list[Skipped] = list(result.skipped)
    classes: list[str] = []
    context: dict[str, tuple[Path, ...]] = {}
    studies = sorted({s.study_uid for s in result.series if s.study_uid})
    for study in studies:
        if not LabelStore.exists(study, root):
            continue
        try:
            store = LabelStore.open(study, root=root)
        except LabelFileError as e:
            skipped.append(Skipped(e.path, e.reason))
            continue
        for c in store.classes:
            if c not in classes:
                classes.append(c)
        for lab in store.all():
            found = by_sop.get((lab.series_uid, lab.sop_uid))
            if found is None:
                skipped.append(Skipped(store.path, f"labelled image {lab.sop_uid} (series {lab.series_uid}) is not "
                                                   f"under the folders given"))
                continue
            header, series = found
            if lab.frame >= header.n_frames:
                skipped.append(Skipped(header.path, f"labelled frame {lab.frame} but the file has {header.n_frames}"))
                continue
            patient = header.patient.get("PatientID", "") or f"study {header.study_uid}"
            items.append(LabeledItem(header.path, lab.frame, lab.label, patient, "dicom", "", header.series_uid,
                                     header.sop_uid, header.study_uid, header.modality))
            context[header.series_uid] = tuple(h.path for h in series.files)
    used = {it.label for it in items}
    return LabeledDataset(items=tuple(items), classes=tuple(c for c in classes if c in used),
                          source=f"labels of {len(studies)} stud{'y' if len(studies) == 1 else 'ies'}",
                          skipped=tuple(skipped), context_files=context)


def base_path(name_or_path: str) -> str:
    """A base model for :class:`models.finetune.config.FineTuneConfig`: an installed model's bundle folder by
    name, or a bundle folder / card / weights file path as given.

    Raises
    ------
    KeyError
        No such installed model (the message lists them).
    viewer.base.model_card.BundleError
        The path is not a readable bundle.
    """
    if Path(name_or_path).exists():
        from viewer.base.model_card import read_card

        read_card(name_or_path)  # refuse a folder without a valid card now, not after preparing data
        return str(name_or_path)
    return str(find_model(name_or_path).path)


def default_model_name(config: FineTuneConfig) -> str:
    """``<base name>-ft`` or ``<arch>-scratch`` (:meth:`FineTuneResult.save` adds ``-v2``… if taken)."""
    card = config.base_card()
    return f"{card.name}-ft" if card is not None else f"{config.arch}-scratch"


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Training, validation and test sets ready for the engine, and where they came from.

    ``classes`` is (negative, positive) as the model names them; ``class_map`` maps the dataset's class
    names to 0/1; ``skipped`` lists images that could not be read or do not suit the model.
    """

    train: TrainingSet
    val: TrainingSet
    test: TrainingSet | None
    dataset: LabeledDataset
    split: DataSplit
    classes: tuple[str, str]
    class_map: dict[str, int]
    skipped: tuple[Skipped, ...]

    def info(self) -> dict[str, Any]:
        """What the engine records in the result and the model card about the data: counts only, no
        file paths or patient IDs (a card travels with the model; the skipped files and duplicates are
        in ``dataset`` and ``skipped`` for the caller to show)."""
        ds = self.dataset
        warnings = list(ds.warnings) + ([ds.imbalance_warning] if ds.imbalance_warning else [])
        return {
            "source": ds.source.split(" ")[0] if not ds.source.startswith("labels") else ds.source,
            "class_map": self.class_map,
            "split": self.split.summary(),
            "imported": {"counts": ds.counts, "patients": len(ds.patients), "duplicates_dropped": len(ds.duplicates),
                         "skipped": len(ds.skipped) + len(self.skipped), "warnings": warnings},
        }


def _class_map(dataset: LabeledDataset, names: tuple[str, str], positive: str | None) -> dict[str, int]:
    present = [c for c in dataset.classes if dataset.counts.get(c)]
    neg, pos = names
    if len(present) != 2:
        raise LabeledDataError(f"fine-tuning needs exactly two classes, found {len(present)}: "
                               f"{', '.join(present) or 'none'}")
    if positive is None:
        if pos in present:
            positive = pos
        elif set(present) == {"0", "1"}:
            positive = "1"
        else:
            raise LabeledDataError(f"which class is {pos!r}? The data has {present[0]!r} and {present[1]!r} "
                                   f"(name the positive class, e.g. --positive {present[-1]!r})")
    if positive not in present:
        raise LabeledDataError(f"positive class {positive!r} is not in the data ({', '.join(present)})")
    return {c: int(c == positive) for c in present}


def _display_to_modality(arr: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Plain-image values to modality values (see the module notes); a radiograph model's as they are
    (its preprocessing stretches each image by its own percentiles)."""
    if cfg.kind == "radiograph" or not np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float32)
    vmax = float(np.iinfo(arr.dtype).max)
    center, width = cfg.windows[0]
    return (center - width / 2.0 + arr.astype(np.float32) / vmax * width).astype(np.float32)


def _load_dicom(items: Sequence[LabeledItem], dataset: LabeledDataset, context: int,
                skipped: list[Skipped], cancel: Callable[[], bool] | None,
                done: Callable[[int], None],
                presentations: dict[tuple[Path, int], Presentation] | None = None,
                ) -> dict[tuple[Path, int], np.ndarray]:
    """(path, frame) -> (2·context+1, rows, cols) modality values, series by series; ``done(n)`` after
    each series with the number of its items handled. ``presentations`` gets each image's series
    presentation (MONOCHROME1, the file's window: :func:`viewer.ai.analysis.presentation`, as the
    analysis gives a radiograph model)."""
    from viewer.ai.analysis import context_stack
    from viewer.ai.analysis import presentation as presentation_of
    from viewer.core.volume import load_volume

    out: dict[tuple[Path, int], np.ndarray] = {}
    by_series: dict[str, list[LabeledItem]] = defaultdict(list)
    for it in items:
        by_series[it.series_uid].append(it)
    for uid, its in by_series.items():
        if cancel is not None and cancel():
            raise Cancelled("preparing the images was cancelled")
        files = list(dict.fromkeys([*dataset.context_files.get(uid, ()), *(it.path for it in its)]))
        headers = []
        for f in files:
            try:
                headers.append(read_header(f))
            except (NotDicom, DicomFileError):
                continue  # an item's own unreadable file is reported below as "not found"
        where: dict[tuple[Path, int], tuple[SeriesInfo, int]] = {}
        for s in group_series([h for h in headers if h.series_uid == uid]):
            for k, (h, frame) in enumerate(s.sources):
                where[(h.path, frame)] = (s, k)
        wanted: dict[str, list[LabeledItem]] = defaultdict(list)
        series_of: dict[str, SeriesInfo] = {}
        for it in its:
            found = where.get((it.path, it.frame))
            if found is None:
                skipped.append(Skipped(it.path, "could not be read again for training"))
                continue
            wanted[found[0].key].append(it)
            series_of[found[0].key] = found[0]
        for key, group in wanted.items():
            series = series_of[key]
            try:
                volume = load_volume(series, cancel=cancel)
            except SeriesLoadError as e:
                skipped.extend(Skipped(it.path, e.reason) for it in group)
                continue
            except Cancelled:
                raise
            if volume.is_color:
                skipped.extend(Skipped(it.path, "colour image (the models read greyscale)") for it in group)
                continue
            index = {pf: k for pf, (s, k) in where.items() if s.key == key}
            good = [it for it in group if index[(it.path, it.frame)] not in volume.failed]
            for it in group:
                if index[(it.path, it.frame)] in volume.failed:
                    skipped.append(Skipped(it.path, volume.failed[index[(it.path, it.frame)]]))
            if good:
                stacks = context_stack(volume, [index[(it.path, it.frame)] for it in good], context)
                shown = presentation_of(volume)
                for it, stack in zip(good, stacks):
                    out[(it.path, it.frame)] = stack
                    if presentations is not None:
                        presentations[(it.path, it.frame)] = shown
        done(len(its))
    return out


def prepare(
    dataset: LabeledDataset,
    config: FineTuneConfig,
    *,
    test: float = 0.2,
    val: float = 0.1,
    seed: int | None = None,
    positive: str | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> PreparedData:
    """Split by patient, read every image with its 2.5D neighbours, preprocess once with the model's recipe.

    Parameters
    ----------
    dataset : LabeledDataset
    config : FineTuneConfig
        Gives the preprocessing (the base card's), class names and modalities.
    test, val : float
        Shares of the images (e.g. the dialog's 80/20 preset with a 10 % validation share: test=0.2,
        val=0.1, leaving 70 % to train).
    seed : int, optional
        Split seed (default ``config.seed``).
    positive : str, optional
        The dataset class that is the model's positive class (default: the one named like it).
    progress : callable, optional
        ``progress(done, total)`` while reading and preprocessing images.
    cancel : callable, optional
        Polled between series and chunks; raises :class:`viewer.base.errors.Cancelled`.

    Raises
    ------
    LabeledDataError
        Not two classes, too few images or patients for the split (before anything is read).
    """
    from models.finetune.datasets import TrainingSet

    cfg = config.preprocess_config()
    names = config.class_names()
    card = config.base_card()
    modalities = tuple(card.modalities) if card is not None else (config.modalities or ("CT",))
    class_map = _class_map(dataset, names, positive)
    skipped: list[Skipped] = []
    usable = []
    for it in dataset.items:
        if it.kind == "dicom" and modalities and it.modality not in modalities:
            skipped.append(Skipped(it.path, f"modality {it.modality}; the model reads {', '.join(modalities)}"))
        else:
            usable.append(it)
    split = split_by_patient(usable, test=test, val=val, seed=config.seed if seed is None else seed)
    chosen = [*split.train, *split.val, *split.test]
    count = [0]

    def done(n: int) -> None:
        count[0] += n
        if progress is not None:
            progress(count[0], len(chosen))

    shown: dict[tuple[Path, int], Presentation] = {}
    stacks = _load_dicom([it for it in chosen if it.kind == "dicom"], dataset, cfg.context, skipped, cancel, done,
                         shown)
    k = 2 * cfg.context + 1
    for it in chosen:
        if it.kind != "image":
            continue
        if cancel is not None and cancel():
            raise Cancelled("preparing the images was cancelled")
        try:
            arr = read_image(it.path)[it.frame]
        except (ValueError, IndexError) as e:
            skipped.append(Skipped(it.path, str(e) or "page missing"))
        else:
            stacks[(it.path, it.frame)] = np.repeat(_display_to_modality(arr, cfg)[None], k, axis=0)
        done(1)

    def make(items: Sequence[LabeledItem]) -> TrainingSet:
        present = [it for it in items if (it.path, it.frame) in stacks]
        return TrainingSet.from_hu([stacks[(it.path, it.frame)] for it in present],
                                   [class_map[it.label] for it in present], cfg,
                                   groups=[it.patient for it in present], names=[it.name for it in present],
                                   cancel=cancel,
                                   presentations=[shown.get((it.path, it.frame)) for it in present]
                                   if cfg.kind == "radiograph" else ())

    try:
        train_set, val_set = make(split.train), make(split.val)
        test_set = make(split.test) if split.test else None
    except InterruptedError as e:
        raise Cancelled(str(e)) from None
    return PreparedData(train_set, val_set, test_set, dataset, split, names, class_map, tuple(skipped))


def start(config: FineTuneConfig, data: PreparedData, *, cancel: Callable[[], bool] | None = None,
          progress: Callable[[TrainingProgress], None] | None = None) -> TrainingRun:
    """:func:`models.finetune.run.train` on prepared data (raises ``TrainingDataError`` before training)."""
    from models.finetune.run import train

    return train(config, data.train, data.val, data.test, cancel=cancel, progress=progress, data_info=data.info())


def estimate(config: FineTuneConfig, data: PreparedData) -> float:
    """Seconds per epoch on this machine (:func:`models.finetune.run.estimate_epoch_seconds`)."""
    from models.finetune.run import estimate_epoch_seconds

    return estimate_epoch_seconds(config, len(data.train), len(data.val))


def estimate_gan(config: FineTuneConfig) -> float:
    """Seconds GAN augmentation adds to each run here (0 when off; :func:`models.finetune.run.estimate_gan_seconds`)."""
    from models.finetune.run import estimate_gan_seconds

    return estimate_gan_seconds(config)


def start_grid(config: FineTuneConfig, grid: Grid, data: PreparedData, *, cancel: Callable[[], bool] | None = None,
               progress: Callable[[GridProgress], None] | None = None,
               estimate_seconds: float | None = None) -> GridSearch:
    """:func:`models.finetune.grid.grid_search` on prepared data: every combination of ``grid`` applied to
    ``config`` on the training split, chosen on validation, the best refit and tested once."""
    from models.finetune.grid import grid_search

    return grid_search(config, grid, data.train, data.val, data.test, cancel=cancel, progress=progress,
                       data_info=data.info(), estimate_seconds=estimate_seconds)


def estimate_grid(config: FineTuneConfig, grid: Grid, data: PreparedData, *,
                  gan_seconds: float | None = None) -> float:
    """Seconds the whole grid search takes at most here (:func:`models.finetune.grid.estimate_grid_seconds`);
    ``gan_seconds``: :func:`estimate_gan`'s figure when the caller has it (else it is timed here)."""
    from models.finetune.grid import estimate_grid_seconds
    from models.finetune.run import estimate_epoch_seconds

    return estimate_grid_seconds(grid.configs(config), len(data.train), len(data.val),
                                 lambda c: estimate_epoch_seconds(c, len(data.train), len(data.val)),
                                 estimate_gan(config) if gan_seconds is None else gan_seconds)


def save_model(result: FineTuneResult, name: str) -> Path:
    """Save as a new bundle in the user's models folder (``$RADVIEW_DATA_DIR/models``).

    Never replaces a model: a name already used by an installed model (shipped or the user's) gets the
    next free ``-v2``, ``-v3`` … suffix; the shipped folder is never written. Returns the bundle folder,
    whose name is what ``radview analyze --model`` takes.
    """
    reserved: set[str] = set()
    for entry in list_models():
        reserved.add(entry.name)
        reserved.add(entry.card.name)
    return result.save(name, user_models_dir(), reserved=sorted(reserved))
