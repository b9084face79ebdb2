"""The ``radview`` command: the GUI without a subcommand, or info / convert / screenshot / analyze / models /
finetune / anonymise / pacs (:mod:`viewer.pacs_cli`) / demo.

Exit codes: 0 done, 2 usage error, 3 nothing loadable (``pacs``: nothing found), 4 a PACS refused or could
not be reached. Errors are one line on stderr; ``--debug``
adds the traceback. Nothing here imports Qt or torch until a subcommand needs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from viewer import __version__
from viewer.core.privacy import install_log_redaction
from viewer.terminal import progress_printer

EXIT_OK, EXIT_USAGE, EXIT_NOTHING = 0, 2, 3
SUBCOMMANDS = ("info", "convert", "screenshot", "demo", "analyze", "models", "finetune", "anonymise", "pacs")

log = logging.getLogger("radview")


class UsageError(Exception):
    """Bad arguments discovered after parsing (exit code 2)."""


def _scan(path: str):
    from viewer.core.errors import NothingLoadableError
    from viewer.core.scan import scan

    if not Path(path).exists():
        raise UsageError(f"no such file or folder: {path}")
    result = scan(path, progress=progress_printer("scanning"))
    if not result.series:
        raise NothingLoadableError(
            f"nothing loadable in {path}: {len(result.skipped)} file(s) skipped, {len(result.not_dicom)} not DICOM"
        )
    return result


def _pick_series(result, uid: str | None):
    if uid is None:
        return max(result.series, key=lambda s: s.n_slices)
    try:
        return result.find(uid)
    except KeyError:
        raise UsageError(f"no series {uid!r}; `radview info` lists them") from None


def series_summary(series) -> dict:
    """The ``info --json`` record of one series."""
    spacing = series.geometry.slice_spacing if series.geometry.known else None
    return {
        "series_uid": series.key,
        "modality": series.modality,
        "description": series.description,
        "n_slices": series.n_slices,
        "rows": series.rows,
        "cols": series.cols,
        "pixel_spacing": list(series.first.pixel_spacing) if series.first.pixel_spacing else None,
        "slice_spacing": round(spacing, 6) if spacing is not None else None,
        "warnings": list(series.warnings),
        "files": [str(h.path) for h in series.files],
    }


def cmd_info(args: argparse.Namespace) -> int:
    result = _scan(args.path)
    if args.json:
        doc = {
            "series": [series_summary(s) for s in result.series],
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in result.skipped],
            "not_dicom": len(result.not_dicom),
            "segmentations": [{"path": str(h.path), "description": h.description} for h in result.segmentations],
            "reports": [str(p) for p in result.reports],
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    print(f"{'modality':<8} {'slices':>6} {'size':>9} {'spacing (mm)':>18}  description / series")
    for s in result.series:
        ps = s.first.pixel_spacing
        spacing = f"{ps[0]:.3g}x{ps[1]:.3g}" if ps else "-"
        if s.geometry.known and s.geometry.slice_spacing:
            spacing += f"x{s.geometry.slice_spacing:.3g}"
        description = s.description or "(no description)"
        print(f"{s.modality:<8} {s.n_slices:>6} {s.rows:>4}x{s.cols:<4} {spacing:>18}  {description}")
        print(f"{'':<45}{s.key}")
        for w in s.warnings:
            print(f"{'':<45}note: {w}")
    if result.segmentations:
        print(f"\n{len(result.segmentations)} segmentation(s), drawn over the series they lie on:")
        for h in result.segmentations:
            print(f"  {h.path}: {h.description or '(no description)'}")
    if result.skipped:
        print(f"\n{len(result.skipped)} file(s) skipped:")
        for s in result.skipped:
            print(f"  {s.path}: {s.reason}")
    if result.not_dicom:
        print(f"\n{len(result.not_dicom)} file(s) are not DICOM and were ignored")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from viewer.core.convert import SUFFIXES, export_volume
    from viewer.core.volume import load_volume

    if not args.out.lower().endswith(SUFFIXES):
        raise UsageError(f"--out must end with one of {', '.join(SUFFIXES)}")
    result = _scan(args.path)
    series = _pick_series(result, args.series)
    volume = load_volume(series, progress=progress_printer("loading"))
    out = export_volume(volume, args.out, include_identifiers=args.with_patient_info)
    print(f"wrote {out} ({volume.n_slices} slices, {volume.units or 'stored values'})")
    return EXIT_OK


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 1280x800, not {text!r}") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise argparse.ArgumentTypeError("size must be between 64 and 8192 pixels each way")
    return w, h


def cmd_screenshot(args: argparse.Namespace) -> int:
    from viewer.core.windowing import preset

    if args.preset:
        try:
            preset(args.preset)
        except KeyError as e:
            raise UsageError(str(e.args[0])) from None
    from viewer.core.planes import MAX_SLAB_MM

    if not 0.0 <= args.slab <= MAX_SLAB_MM:
        raise UsageError(f"--slab {args.slab:g}: a slab is 0 to {MAX_SLAB_MM:g} mm thick")
    result = _scan(args.path)
    series = _pick_series(result, args.series) if args.series else None
    from viewer.qt.screenshot import render_screenshot

    out = render_screenshot(
        [args.path], args.out, series=series.key if series else None, slice_index=args.slice,
        preset=args.preset, size=args.size, ai=args.ai, identifiers=args.with_patient_info,
        plane=args.plane, slab_mm=args.slab, projection=args.projection, layout=args.layout,
        view_only=args.view_only,
    )
    print(f"wrote {out}")
    return EXIT_OK


def cmd_anonymise(args: argparse.Namespace) -> int:
    from viewer.core.anonymise import anonymise_series_folder

    result = anonymise_series_folder(args.path, args.out, seed=args.seed, progress=progress_printer("anonymising"))
    print(f"wrote {len(result.files)} anonymised file(s) in {result.n_series} series to {result.out_dir}")
    if result.burned_in:
        print(f"warning: {len(result.burned_in)} file(s) may show identifying text burned into the pixels "
              f"(not cleaned; Patient Identity Removed = NO), e.g. {result.burned_in[0].out.name}: "
              f"{result.burned_in[0].burned_in}", file=sys.stderr)
    if result.skipped:
        print(f"{len(result.skipped)} file(s) skipped", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from viewer.core.demo import ensure_demo_study

    def report(stage, fraction=None, *rest) -> None:
        text = stage if fraction is None else f"{stage} {fraction:.0%}"
        print(f"\r{text:<70}", end="", file=sys.stderr, flush=True)

    study = ensure_demo_study(progress=report)
    print(file=sys.stderr)
    for d in study.series_dirs:
        print(d)
    if args.open:
        from viewer.qt.app import run_gui

        return run_gui([str(study.series_dirs[-1])])
    return EXIT_OK


#: Faithfulness (22 forwards a slice) is computed for at most this many of the most suspicious slices.
FAITHFULNESS_TOP = 5


def _analyze_series(analyzer, volume, want_faithfulness: bool, heatmap_dir: Path | None, batch: int = 8,
                    masks_dir: Path | None = None, keep: list | None = None) -> dict:
    """Run the model over every slice of ``volume``, then find its nodules; the series' JSON record."""
    from models.runtime.analysis import ranking
    from viewer.ai.analysis import context_stack, presentation, slice_record

    n = volume.n_slices
    results = []
    shown = presentation(volume)
    report = progress_printer(f"analysing {volume.series.modality} {volume.series.description or volume.series.key}")
    for start in range(0, n, batch):
        indices = list(range(start, min(n, start + batch)))
        results.extend(analyzer.analyze(indices, context_stack(volume, indices, analyzer.context), shown))
        report(len(results), n)
    order = ranking({r.index: r.probability for r in results})
    faithfulness: dict[int, float] = {}
    if want_faithfulness:
        top = order[:FAITHFULNESS_TOP]
        scores = analyzer.faithfulness(context_stack(volume, top, analyzer.context),
                                       [results[i].heatmap for i in top], shown)
        faithfulness = {i: f.score for i, f in zip(top, scores)}
    if heatmap_dir is not None:
        _write_heatmaps(volume, results, heatmap_dir)
    record = {
        "series_uid": volume.series.key,
        "modality": volume.series.modality,
        "slices": [
            slice_record(volume, r, volume.series.frame_source(r.index)[0].sop_uid, faithfulness.get(r.index))
            for r in results
        ],
        "ranking": order,
    }
    record.update(_series_findings(volume, results, analyzer.card.threshold, masks_dir, keep))
    return record


def _write_objects(args: argparse.Namespace, entry, kept: list) -> dict:
    """``analyze --seg/--sr/--sc [--send]``: the findings of the one series analysed as DICOM SEG and SR (with
    the reader's decisions and lines on that series, where the viewer kept some) and its most suspicious slice
    with the heatmap as a Secondary Capture, sent when asked."""
    from viewer.ai.dicom_results import write_heatmap_capture, write_results
    from viewer.ai.findings import decision_key
    from viewer.core.finding_decisions import DecisionStore
    from viewer.core.measurement_store import MeasurementStore

    if len(kept) != 1:
        raise UsageError(f"--sr, --seg and --sc write the findings of one series, and {len(kept)} were analysed: "
                         "pick one with --series")
    volume, findings, results = kept[0]
    out: dict = {"seg": None, "sr": None, "sc": None, "findings": len(findings), "lines": 0}
    if args.sr or args.seg:
        study = volume.series.study_uid
        decisions = DecisionStore.open(study) if study else None
        lines = MeasurementStore.open(study).all() if study else ()

        def status(finding) -> str:
            if decisions is None:
                return "pending"
            decision = decisions.get(decision_key(volume, entry.version_key, finding))
            return decision.status if decision is not None else "pending"

        written = write_results(volume, findings, entry.card, seg_path=Path(args.seg) if args.seg else None,
                                sr_path=Path(args.sr) if args.sr else None, status=status,
                                model_key=entry.version_key, lines=lines)
        out.update(seg=str(written.seg) if written.seg else None, sr=str(written.sr) if written.sr else None,
                   lines=written.lines)
    if args.sc:
        top = max(results, key=lambda r: r.probability)
        out["sc"] = str(write_heatmap_capture(volume, top.index, top.heatmap, top.probability, entry.card,
                                              Path(args.sc)))
    made = [p for p in (out["seg"], out["sr"], out["sc"]) if p]
    print(f"wrote {', '.join(made)}: {out['findings']} finding(s), {out['lines']} line(s)", file=sys.stderr)
    if args.send:
        from viewer.core.pacs import remote
        from viewer.core.pacs.nodes import load_settings

        settings = load_settings()
        node = settings.node(args.send)
        files = [Path(p) for p in made]
        sent = remote.send(node, settings.ae_title, files)
        if sent.failed:
            from viewer.core.pacs.errors import PacsError

            raise PacsError(f"{node} refused {', '.join(f'{n} ({r})' for n, r in sent.failed)}")
        out["sent_to"] = str(node)
        print(f"sent {sent.sent} object(s) to {node}", file=sys.stderr)
    return out


def _series_findings(volume, results, threshold: float, masks_dir: Path | None, keep: list | None = None) -> dict:
    """``{"findings": [...]}`` (and where the label volume went), or ``findings_refused``: why there are none."""
    from viewer.ai.findings import FindingsRefused, finding_record, findings_labels, series_findings
    from viewer.core.convert import export_volume

    try:
        found = series_findings(volume, results, threshold)
    except FindingsRefused as e:
        return {"findings": [], "findings_refused": str(e)}
    findings = found.findings
    if keep is not None:
        keep.append((volume, findings, results))
    out: dict = {"findings": [finding_record(volume, f, found.midline_col) for f in findings]}
    if masks_dir is not None:
        path = masks_dir / f"{volume.series.key.replace('#', '_')}.nrrd"
        masks_dir.mkdir(parents=True, exist_ok=True)
        out["masks"] = str(export_volume(volume, path, values=findings_labels(volume.stored.shape, findings)))
    return out


def _write_heatmaps(volume, results, folder: Path) -> None:
    from viewer.ai.heatmap_picture import heatmap_painter
    from viewer.core.png import write_png

    folder.mkdir(parents=True, exist_ok=True)
    paint = heatmap_painter(volume)
    for r in results:
        write_png(folder / f"slice_{r.index:04d}.png", paint(r.index, r.heatmap))


def cmd_analyze(args: argparse.Namespace) -> int:
    from viewer.ai.analysis import load_model, model_applies
    from viewer.ai.model_registry import find_model, list_models, model_for
    from viewer.base.atomic import atomic_write_text
    from viewer.core.errors import NothingLoadableError
    from viewer.core.volume import load_volume

    try:
        entry = find_model(args.model)
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    result = _scan(args.path)
    chosen = [_pick_series(result, args.series)] if args.series else list(result.series)
    if args.model is None and chosen:  # the model that reads the (first) series' modality
        entry = model_for(chosen[0].modality, list_models(), entry) or entry
    from models.runtime.analysis import SliceAnalyzer

    if args.send and not (args.sr or args.seg or args.sc):
        raise UsageError("--send sends the --sr, --seg and --sc files: ask for at least one")
    loaded = load_model(entry, device=args.device)
    analyzer = SliceAnalyzer(loaded, method=args.method)
    kept: list = []  # (volume, findings, slice results) of each series with findings, for --sr / --seg / --sc
    doc = {"model": {"name": entry.card.name, "arch": entry.card.arch, "sha256": entry.card.sha256,
                     "threshold": entry.card.threshold, "method": analyzer.method,
                     "demonstration": entry.card.demonstration},
           "series": [], "not_analysed": []}
    for series in chosen:
        volume = load_volume(series)
        reason = model_applies(entry.card, volume)
        if reason:
            doc["not_analysed"].append({"series_uid": series.key, "reason": reason})
            continue
        heatmap_dir = None
        if args.heatmaps:
            heatmap_dir = Path(args.heatmaps) / (series.key if len(chosen) > 1 else "")
        doc["series"].append(_analyze_series(analyzer, volume, not args.no_faithfulness, heatmap_dir,
                                             masks_dir=Path(args.masks) if args.masks else None, keep=kept))
    if not doc["series"]:
        reasons = "; ".join(d["reason"] for d in doc["not_analysed"]) or "no series"
        raise NothingLoadableError(f"nothing to analyse: {reasons}")
    if args.sr or args.seg or args.sc:
        doc["objects"] = _write_objects(args, entry, kept)
    text = json.dumps(doc, indent=2)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    else:
        for s in doc["series"]:
            top = s["ranking"][:5]
            probs = {r["index"]: r["probability"] for r in s["slices"]}
            print(f"{s['modality']} {s['series_uid']}: most suspicious slices "
                  + ", ".join(f"{i} (p={probs[i]:.2f})" for i in top)
                  + f"; threshold {entry.card.threshold:.2f}")
            for f in s["findings"]:
                print(f"  finding {f['id']}: {f['type'].replace('_', '-')} {f['diameter_mm']:.1f} mm "
                      f"({f['long_axis_mm']:.1f} × {f['short_axis_mm']:.1f}), {f['volume_mm3']:.0f} mm³, "
                      f"{f['side'] or '?'} lung, images {f['images'][0]}–{f['images'][-1]}, "
                      f"p={f['probability']:.2f}, Lung-RADS {f['lung_rads']} (suggestion)")
    if entry.card.demonstration:
        print("note: demonstration model, not for diagnosis", file=sys.stderr)
    return EXIT_OK


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune a model on labelled images (the engine of the fine-tune dialog), save it as a new model.

    Exit codes: 0 saved; 2 bad usage; 3 data that cannot train (too few images per class or patients,
    not two classes, nothing readable); 1 training diverged (NaN or exploding loss: nothing saved).
    """
    from models.finetune.config import (
        Augmentation,
        FineTuneConfig,
        TrainingDataError,
        TrainingStopped,
        check_model_name,
    )
    from viewer.ai import finetune as ft
    from viewer.base.atomic import atomic_write_text
    from viewer.core.errors import NothingLoadableError
    from viewer.core.labeled_data import LabeledDataError

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    interactive = sys.stderr.isatty()

    def on_batch(p) -> None:  # one redrawn stderr line per batch when stderr is a terminal
        if not interactive:
            return
        where = ""
        if isinstance(p, ft.GridProgress):  # a grid search: which configuration, and the whole search's ETA
            where = "refit: " if p.index == p.total else f"configuration {p.index + 1}/{p.total}: "
            eta_s, p = p.eta_seconds, p.step
        else:
            eta_s = p.eta_seconds
        eta = "" if eta_s is None else f", about {eta_s:.0f} s left"
        end = "\n" if p.batch == p.batches and p.phase in ("final", "gan") else ""
        step = (f"GAN step {p.batch}/{p.batches}" if p.phase == "gan" else
                f"{p.phase} epoch {p.epoch}/{p.epochs}: batch {p.batch}/{p.batches}")
        print(f"\r{where}{step}{eta}    ", end=end, file=sys.stderr, flush=True)

    if not Path(args.data).exists():
        raise UsageError(f"no such file or folder: {args.data}")
    if not 0 < args.split < 1:
        raise UsageError(f"--split is the share of images for training and validation, in (0, 1), not {args.split}")
    if not 0 < args.val < args.split:
        raise UsageError(f"--val is the share of images for validation, in (0, --split), not {args.val}")
    if (args.base is None) == (args.arch is None):
        raise UsageError("give --base NAME|FILE (fine-tune a model) or --arch NAME (train from scratch)")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UsageError(f"--json: no folder {Path(args.json).parent} to write {Path(args.json).name} in")
    try:
        if args.out is not None:
            check_model_name(args.out)
        augment = Augmentation.from_names([a for a in (args.augment or "").split(",") if a])
        gan_options = {"gan_ratio": args.gan_ratio, "gan_steps": args.gan_steps}
        if augment.gan:
            augment = dataclasses.replace(augment, **{k: v for k, v in gan_options.items() if v is not None})
        elif args.gan_samples or any(v is not None for v in gan_options.values()):
            raise UsageError("--gan-ratio, --gan-steps and --gan-samples need --augment gan")
        if args.arch is not None:
            from viewer.base.preprocess_config import PreprocessConfig

            source: dict = {"arch": args.arch, "preprocessing": PreprocessConfig(size=args.size, context=args.context)}
        else:
            source = {"base": ft.base_path(args.base)}
        config = FineTuneConfig(
            **source, mode=args.mode, reset_head=args.reset_head, augment=augment, optimizer=args.optimizer,
            lr=args.lr, batch_size=args.batch, epochs=args.epochs, patience=args.patience, seed=args.seed,
            device=args.device, threshold_method="sensitivity" if args.target_sensitivity else "youden",
            target_sensitivity=args.target_sensitivity or 0.9, class_weighting=not args.no_class_weighting,
            dropout=args.dropout, weight_decay=args.weight_decay,
        )
        grid = None
        if args.grid is not None:
            grid = ft.Grid.parse(args.grid)
            grid.configs(config)  # every combination is a valid configuration, before any image is read
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        if args.from_labels:
            dataset = ft.dataset_from_labels(args.data, progress=progress_printer("scanning"))
        else:
            dataset = ft.import_data(args.data, progress=progress_printer("reading"))
        counts = ", ".join(f"{n} {c!r}" for c, n in dataset.counts.items())
        print(f"{dataset.source}: {counts} from {len(dataset.patients)} patient(s); "
              f"{len(dataset.duplicates)} duplicate(s) dropped, {len(dataset.skipped)} file(s) skipped",
              file=sys.stderr)
        for s in dataset.skipped[:5]:
            print(f"  skipped {s.path}: {s.reason}", file=sys.stderr)
        for w in (*dataset.warnings, *([dataset.imbalance_warning] if dataset.imbalance_warning else [])):
            print(f"warning: {w}", file=sys.stderr)
        data = ft.prepare(dataset, config, test=1.0 - args.split, val=args.val, seed=args.seed,
                          positive=args.positive, progress=progress_printer("preparing"))
        for name, ts in (("train", data.train), ("val", data.val), ("test", data.test)):
            if ts is not None:
                print(f"{name}: {len(ts)} images ({ts.n_positive} positive) from {len(ts.patients)} patient(s)",
                      file=sys.stderr)
        if grid is None:
            run: Any = ft.start(config, data, progress=on_batch)
        else:
            seconds = ft.estimate_grid(config, grid, data)
            print(f"grid search: {len(grid)} configurations ({grid.text()}), about {seconds / 60:.1f} min at most; "
                  f"each is chosen on validation, the best refit and tested once", file=sys.stderr)
            run = ft.start_grid(config, grid, data, progress=on_batch, estimate_seconds=seconds)
        for r in run:
            if isinstance(r, ft.GanReport):
                print(f"GAN: trained on {r.n_real} positive training image(s), {r.steps} steps in {r.seconds:.0f} s; "
                      f"{r.n_generated} generated positive(s) join the training split only", file=sys.stderr)
                if args.gan_samples:
                    from viewer.core.png import write_png

                    write_png(args.gan_samples, r.sample_grid())
                    print(f"GAN samples: {args.gan_samples}", file=sys.stderr)
                continue
            if isinstance(r, ft.GridRow):
                print(f"configuration {r.index + 1}/{len(grid or ())}: {_params_text(r.params)}: val AUC "
                      f"{fmt(r.val_auc)}, val loss {r.val_loss:.4f}, {r.epochs} epoch(s) (best {r.best_epoch}), "
                      f"{r.seconds:.1f} s", file=sys.stderr)
                continue
            train_part = "" if r.train_loss is None else f"train loss {r.train_loss:.4f}, "
            print(f"epoch {r.epoch}/{r.epochs}: {train_part}val loss {r.val_loss:.4f}, val AUC {fmt(r.val.auc)}"
                  f"{' *' if r.best else ''}{' (early stop)' if r.stopping_early else ''}", file=sys.stderr)
    except (LabeledDataError, TrainingDataError) as e:
        raise NothingLoadableError(str(e)) from None
    except TrainingStopped as e:
        print(f"radview: {e}", file=sys.stderr)
        return 1
    result = run.result
    assert result is not None
    if result.grid_best is not None:
        print(f"best: configuration {result.grid_best.index + 1} ({_params_text(result.grid_best.params)}), "
              f"chosen by validation AUC then loss; refit and tested once", file=sys.stderr)
    path = ft.save_model(result, args.out or ft.default_model_name(config))
    from viewer.base.model_card import read_card

    card = read_card(path)
    if args.json:
        doc = {"model": {"name": path.name, "path": str(path), "sha256": card.sha256, "parent": card.parent},
               **result.to_dict()}
        atomic_write_text(args.json, json.dumps(doc, indent=2) + "\n")
    print(f"saved model {path.name} ({path}); {result.summary()}")
    print(f"use it: radview analyze PATH --model {path.name}")
    return EXIT_OK


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def cmd_models(args: argparse.Namespace) -> int:
    from viewer.ai.model_registry import list_models

    entries = list_models()
    if args.json:
        print(json.dumps([{"name": m.name, "source": m.source, "path": str(m.path), "card": m.card.to_dict()}
                          for m in entries], indent=2))
        return EXIT_OK
    for m in entries:
        card = m.card
        flag = "  [demonstration, not for diagnosis]" if card.demonstration else ""
        print(f"{m.name:<24} {card.arch:<22} {','.join(card.modalities):<8} threshold {card.threshold:.3f}  "
              f"{m.source}{flag}")
    if not entries:
        print("no models installed")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radview", description="Radiology viewer with an AI second reader.")
    parser.add_argument("--version", action="version", version=f"radview {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("info", help="list the series in a folder and the files skipped, with reasons")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="export a series to NIfTI / NRRD / MHA in real-world units")
    p.add_argument("path")
    p.add_argument("--series", help="SeriesInstanceUID (default: the series with the most slices)")
    p.add_argument("--out", required=True, help="output file: .nii.gz, .nii, .nrrd or .mha")
    p.add_argument("--with-patient-info", action="store_true",
                   help="also write the patient's name, ID and birth date into the file (default: none)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("screenshot", help="render what the viewer shows to a PNG, offscreen")
    p.add_argument("path")
    p.add_argument("--out", required=True)
    p.add_argument("--series")
    p.add_argument("--slice", type=int,
                   help="image index, 0-based along the plane's own axis (coronal N is row N of an axial image, "
                        "sagittal N is column N; default: the middle)")
    p.add_argument("--plane", choices=["axial", "coronal", "sagittal"],
                   help="the plane of the first viewport (default: the plane the series was acquired in)")
    p.add_argument("--slab", type=float, default=0.0, metavar="MM", help="thick-slab thickness in mm (default: none)")
    p.add_argument("--projection", choices=["mip", "minip", "mean"], default="mip",
                   help="thick-slab projection (default: mip)")
    p.add_argument("--layout", choices=["1x1", "1x2", "2x2", "mpr"], default="1x1")
    p.add_argument("--view-only", action="store_true",
                   help="only the first viewport at --size: no docks, corner text or crosshair lines")
    p.add_argument("--preset", help="lung, mediastinum, bone, brain or abdomen")
    p.add_argument("--size", type=_parse_size, default=(1280, 800), help="WxH (default 1280x800)")
    p.add_argument("--ai", action="store_true",
                   help="with the AI second reader: wait for the analysis and show its heatmap and panels")
    p.add_argument("--with-patient-info", action="store_true",
                   help="show the patient and study lines and the tag panel (default: no identifiers)")
    p.set_defaults(func=cmd_screenshot)

    p = sub.add_parser("analyze", help="nodule probability and heatmap per slice, and the nodules found, as JSON")
    p.add_argument("path")
    p.add_argument("--series", help="SeriesInstanceUID (default: every series the model reads)")
    p.add_argument("--model", help="installed model name or bundle folder (default: the installed model that "
                                   "reads the series' modality: demo-nodule for CT, demo-cxr-nodule for CR/DX)")
    p.add_argument("--method", choices=["gradcam", "gradcampp", "rollout", "location"],
                   help="heatmap method (default: the model card's)")
    p.add_argument("--json", metavar="OUT", help="write the results here (default: a summary on stdout)")
    p.add_argument("--heatmaps", metavar="DIR", help="one PNG per slice: the image with its heatmap")
    p.add_argument("--masks", metavar="DIR",
                   help="one label volume per series (NRRD, the series' geometry; label k = the k-th finding)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    p.add_argument("--seg", metavar="FILE.dcm", help="the findings' masks as a DICOM Segmentation (one series)")
    p.add_argument("--sr", metavar="FILE.dcm", help="the findings, the reader's decisions and lines as a DICOM "
                   "SR (TID 1500 Measurement Report; one series)")
    p.add_argument("--sc", metavar="FILE.dcm", help="the most suspicious slice with its heatmap as a DICOM Secondary "
                   "Capture (derived, not for diagnosis; one series)")
    p.add_argument("--send", metavar="NODE", help="then send the --seg, --sr and --sc files to this PACS node")
    p.add_argument("--no-faithfulness", action="store_true",
                   help=f"skip the deletion faithfulness score of the {FAITHFULNESS_TOP} most suspicious slices")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("models", help="list installed models with their cards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("finetune", help="fine-tune a model on labelled images and save it as a new model")
    p.add_argument("--data", required=True, metavar="DIR|CSV",
                   help="a folder with a sub-folder per class (DICOM, PNG, JPEG, TIFF) or a CSV of path,label "
                        "(optional patient, frame columns); with --from-labels, folders whose series carry "
                        "your labels")
    p.add_argument("--from-labels", action="store_true", help="use the labels made in the viewer for the "
                   "series under --data")
    p.add_argument("--base", metavar="NAME|FILE", help="installed model name or bundle folder / weights file")
    from viewer.base.model_card import ARCHITECTURES

    p.add_argument("--arch", choices=ARCHITECTURES, help="train this architecture from scratch instead")
    p.add_argument("--size", type=int, default=256, help="input size when training from scratch (default 256)")
    p.add_argument("--context", type=int, choices=[0, 1], default=0,
                   help="from scratch: 1 for 2.5D input (slices z-1, z, z+1)")
    p.add_argument("--mode", choices=["head", "last", "full"], default="head",
                   help="train the head only, the last block and the head, or everything (default head)")
    p.add_argument("--reset-head", action="store_true", help="start from a head that knows nothing")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--split", type=float, default=0.8,
                   help="share of images for training + validation; the rest is the test split (default 0.8)")
    p.add_argument("--val", type=float, default=0.1, help="share of images for validation (default 0.1)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    p.add_argument("--dropout", type=float, help="dropout rate of the model (default: the model's own)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="weight decay (default 0)")
    p.add_argument("--grid", metavar="SPEC", help="grid search, e.g. 'lr=1e-3,3e-4;batch=16,32;dropout=0.3,0.5' "
                   "(also weight_decay, epochs, patience, mode, optimizer): every combination is trained and "
                   "scored on validation, the best refit and tested once; the other options are the defaults")
    p.add_argument("--patience", type=int, default=3, help="early stopping patience in epochs (0: off)")
    p.add_argument("--augment", metavar="LIST", help="comma-separated: flips,rotation,noise,intensity,clahe,gan "
                   "(gan: a small GAN learns the training positives and adds generated ones to the training split)")
    p.add_argument("--gan-ratio", type=float, help="with --augment gan: generated positives per real training "
                   "positive (default 1)")
    p.add_argument("--gan-steps", type=int, help="with --augment gan: GAN training steps (default 600)")
    p.add_argument("--gan-samples", metavar="PNG", help="with --augment gan: write a 4x4 grid of generated samples")
    p.add_argument("--no-class-weighting", action="store_true", help="do not weight the rarer class up")
    p.add_argument("--target-sensitivity", type=float, metavar="S",
                   help="choose the threshold for this sensitivity on validation (default: Youden's J)")
    p.add_argument("--positive", metavar="CLASS", help="which class of the data is the model's positive one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--out", metavar="NAME", help="name of the new model (default <base>-ft; never overwrites: "
                   "a taken name gets -v2, -v3, ...)")
    p.add_argument("--json", metavar="METRICS", help="write the metrics of every split and the threshold here")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("anonymise", help="anonymise every image series (DICOM PS3.15 Basic Profile) into a new folder")
    p.add_argument("path")
    p.add_argument("out", help="a new or empty folder (files named S001/IM00001.dcm ...)")
    p.add_argument("--seed", help="make the new UIDs reproducible (default: random per export)")
    p.set_defaults(func=cmd_anonymise)

    from viewer.pacs_cli import add_parser as add_pacs_parser

    add_pacs_parser(sub)

    p = sub.add_parser("demo", help="fetch the demo chest CTs once and convert them to DICOM")
    p.add_argument("--open", action="store_true", help="then open lung2 in the viewer")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen build's spawned child (the model service) runs here and exits
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_log_redaction()  # no patient name, ID or birth date in any log record (viewer.core.privacy)
    if not debug:
        logging.getLogger("pydicom").setLevel(logging.ERROR)  # odd values are judged by the scan itself
    if not any(a in SUBCOMMANDS for a in argv) and not any(a in ("-h", "--help", "--version") for a in argv):
        gui = argparse.ArgumentParser(prog="radview")
        gui.add_argument("--debug", action="store_true")
        gui.add_argument("paths", nargs="*", help="folders or files to open")
        args = gui.parse_args(argv)
        from viewer.qt.app import run_gui

        return run_gui(args.paths)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    from viewer.base.errors import RadviewError
    from viewer.base.model_card import BundleError
    from viewer.core.errors import NothingLoadableError
    from viewer.core.pacs.errors import PacsError

    try:
        return args.func(args)
    except PacsError as e:  # its own exit code: 2 usage, 3 nothing found, 4 refused or unreachable, 1 else
        print(f"radview: {e}", file=sys.stderr)
        return e.exit_code
    except UsageError as e:
        print(f"radview: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NothingLoadableError as e:
        print(f"radview: {e}", file=sys.stderr)
        return EXIT_NOTHING
    except (RadviewError, BundleError, OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"radview: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
