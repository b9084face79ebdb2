"""The ``radview`` command: the GUI without a subcommand, or info / convert / screenshot / demo.

Exit codes: 0 done, 2 usage error, 3 nothing loadable. Errors are one line on stderr; ``--debug``
adds the traceback. Nothing here imports Qt or torch until a subcommand needs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

EXIT_OK, EXIT_USAGE, EXIT_NOTHING = 0, 2, 3
SUBCOMMANDS = ("info", "convert", "screenshot", "demo")

log = logging.getLogger("radview")


class UsageError(Exception):
    """Bad arguments discovered after parsing (exit code 2)."""


def _progress_printer(label: str):
    """A progress callback that redraws one stderr line when stderr is a terminal."""
    interactive = sys.stderr.isatty()

    def report(done: int, total: int) -> None:
        if interactive and total:
            print(f"\r{label}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return report


def _scan(path: str):
    from .core.errors import NothingLoadableError
    from .core.scan import scan

    if not Path(path).exists():
        raise UsageError(f"no such file or folder: {path}")
    result = scan(path, progress=_progress_printer("scanning"))
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
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    print(f"{'modality':<8} {'slices':>6} {'size':>9} {'spacing (mm)':>18}  description / series")
    for s in result.series:
        ps = s.first.pixel_spacing
        spacing = f"{ps[0]:.3g}x{ps[1]:.3g}" if ps else "-"
        if s.geometry.known and s.geometry.slice_spacing:
            spacing += f"x{s.geometry.slice_spacing:.3g}"
        print(f"{s.modality:<8} {s.n_slices:>6} {s.rows:>4}x{s.cols:<4} {spacing:>18}  {s.description or '(no description)'}")
        print(f"{'':<45}{s.key}")
        for w in s.warnings:
            print(f"{'':<45}note: {w}")
    if result.skipped:
        print(f"\n{len(result.skipped)} file(s) skipped:")
        for s in result.skipped:
            print(f"  {s.path}: {s.reason}")
    if result.not_dicom:
        print(f"\n{len(result.not_dicom)} file(s) are not DICOM and were ignored")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from .core.convert import SUFFIXES, export_volume
    from .core.volume import load_volume

    if not args.out.lower().endswith(SUFFIXES):
        raise UsageError(f"--out must end with one of {', '.join(SUFFIXES)}")
    result = _scan(args.path)
    series = _pick_series(result, args.series)
    volume = load_volume(series, progress=_progress_printer("loading"))
    out = export_volume(volume, args.out)
    print(f"wrote {out} ({volume.n_slices} slices, {volume.units or 'stored values'})")
    for index, reason in sorted(volume.failed.items())[:5]:
        print(f"warning: slice {index} unreadable: {reason}", file=sys.stderr)
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
    from .core.windowing import preset

    if args.preset:
        try:
            preset(args.preset)
        except KeyError as e:
            raise UsageError(str(e.args[0])) from None
    result = _scan(args.path)
    series = _pick_series(result, args.series) if args.series else None
    from .qt.screenshot import render_screenshot

    out = render_screenshot(
        [args.path], args.out, series=series.key if series else None, slice_index=args.slice,
        preset=args.preset, size=args.size,
    )
    print(f"wrote {out}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from .core.demo import ensure_demo_study

    def report(stage, fraction=None, *rest) -> None:
        text = stage if fraction is None else f"{stage} {fraction:.0%}"
        print(f"\r{text:<70}", end="", file=sys.stderr, flush=True)

    study = ensure_demo_study(progress=report)
    print(file=sys.stderr)
    for d in study.series_dirs:
        print(d)
    if args.open:
        from .qt.app import run_gui

        return run_gui([str(study.series_dirs[-1])])
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
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("screenshot", help="render what the viewer shows to a PNG, offscreen")
    p.add_argument("path")
    p.add_argument("--out", required=True)
    p.add_argument("--series")
    p.add_argument("--slice", type=int, help="slice index, 0-based (default: the middle)")
    p.add_argument("--preset", help="lung, mediastinum, bone, brain or abdomen")
    p.add_argument("--size", type=_parse_size, default=(1280, 800), help="WxH (default 1280x800)")
    p.set_defaults(func=cmd_screenshot)

    p = sub.add_parser("demo", help="fetch the demo chest CTs once and convert them to DICOM")
    p.add_argument("--open", action="store_true", help="then open lung2 in the viewer")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        logging.getLogger("pydicom").setLevel(logging.ERROR)  # odd values are judged by the scan itself
    if not any(a in SUBCOMMANDS for a in argv) and not any(a in ("-h", "--help", "--version") for a in argv):
        gui = argparse.ArgumentParser(prog="radview")
        gui.add_argument("--debug", action="store_true")
        gui.add_argument("paths", nargs="*", help="folders or files to open")
        args = gui.parse_args(argv)
        from .qt.app import run_gui

        return run_gui(args.paths)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_OK if e.code == 0 else EXIT_USAGE
    from .core.errors import NothingLoadableError, RadviewError

    try:
        return args.func(args)
    except UsageError as e:
        print(f"radview: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NothingLoadableError as e:
        print(f"radview: {e}", file=sys.stderr)
        return EXIT_NOTHING
    except (RadviewError, OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"radview: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
