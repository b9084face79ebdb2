"""How slices become model input: the recipe a model card carries (torch-free, numpy-free).

A model only works on input prepared exactly as during its training, so the recipe lives in the card and
both the training engine and the inference service read it from there (:mod:`models.runtime.preprocess` applies
it). It lives on the floor under the viewer and the models because the viewer's dialogs read and edit it
without loading torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

__all__ = ["Kind", "Normalise", "PreprocessConfig", "Presentation", "in_channels"]

Normalise = Literal["unit", "standard"]
Kind = Literal["ct", "radiograph"]


@dataclass(frozen=True)
class Presentation:
    """How an image's values are meant to be seen, as its file says: what a radiograph's preprocessing
    needs besides its pixels (a CT's HU windows are the model's own).

    Parameters
    ----------
    invert : bool
        MONOCHROME1: low values are white (PS3.3 C.7.6.3.1.2).
    window : (center, width) or None
        The file's VOI window in modality units (None: it has none that means anything).
    """

    invert: bool = False
    window: tuple[float, float] | None = None


@dataclass(frozen=True)
class PreprocessConfig:
    """How slices become model input; stored in the model card.

    Parameters
    ----------
    kind : {"ct", "radiograph"}
        ``"ct"``: modality values (HU) through ``windows``. ``"radiograph"``: the file's own VOI window
        (when ``use_voi`` and the file has one), then a per-image percentile stretch (``percentiles``)
        to 0..1, then MONOCHROME1 inverted (:class:`Presentation`), so a MONOCHROME1 and a MONOCHROME2
        file of the same anatomy give the same input; ``windows`` and ``context`` are unused (one channel).
    windows : tuple of (center, width)
        HU windows, one output channel each (e.g. lung ``(-600, 1500)`` and mediastinum ``(40, 400)``).
    context : int
        0: the slice alone; 1: 2.5D, slices z−1, z, z+1 as channels (the design notes' direct fix for dome
        and vessel false positives). Channels are window-major: ``c = window_index * (2*context+1) + k``.
    clahe : bool
        Contrast-limited adaptive histogram equalisation after windowing and resizing.
    clahe_clip : float
        CLAHE clip limit as a fraction of a tile's pixels per bin (skimage's convention; 0.01 default).
    clahe_tiles : int
        CLAHE tiles per side.
    size : int
        Output is ``size``×``size`` (square resize, antialiased bilinear).
    normalise : {"unit", "standard"}
        ``"unit"``: windowed values in 0..1; ``"standard"``: ``(v - mean[c]) / std[c]``.
    mean, std : tuple of float
        Per-channel constants for ``"standard"``; length 1 (all channels) or :func:`in_channels`.
    percentiles : (low, high)
        Radiographs: the percentiles of the image stretched to 0 and 1.
    use_voi : bool
        Radiographs: apply the file's VOI window before the stretch.
    """

    kind: Kind = "ct"
    windows: tuple[tuple[float, float], ...] = ((-600.0, 1500.0),)
    context: int = 0
    clahe: bool = False
    clahe_clip: float = 0.01
    clahe_tiles: int = 8
    size: int = 256
    normalise: Normalise = "unit"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    percentiles: tuple[float, float] = (1.0, 99.0)
    use_voi: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("ct", "radiograph"):
            raise ValueError(f"kind must be 'ct' or 'radiograph', got {self.kind!r}")
        lo, hi = (float(v) for v in self.percentiles)
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must be 0 <= low < high <= 100, got {self.percentiles}")
        object.__setattr__(self, "percentiles", (lo, hi))
        if self.kind == "radiograph" and (len(self.windows) != 1 or self.context != 0):
            raise ValueError("a radiograph is one image and one channel: one window entry and context 0")
        windows = tuple((float(c), float(w)) for c, w in self.windows)
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if not windows:
            raise ValueError("PreprocessConfig needs at least one (center, width) window")
        if any(w <= 0 for _, w in windows):
            raise ValueError(f"window widths must be > 0, got {windows}")
        if self.context not in (0, 1):
            raise ValueError(f"context must be 0 (single slice) or 1 (2.5D), got {self.context}")
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")
        if self.normalise not in ("unit", "standard"):
            raise ValueError(f"normalise must be 'unit' or 'standard', got {self.normalise!r}")
        n = in_channels(self)
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, n):
                raise ValueError(f"{name} needs 1 or {n} values, got {len(values)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0, got {self.std}")
        if not 0 < self.clahe_clip <= 1 or self.clahe_tiles < 1:
            raise ValueError(f"bad CLAHE settings clip={self.clahe_clip} tiles={self.clahe_tiles}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["windows"] = [list(w) for w in self.windows]
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["percentiles"] = list(self.percentiles)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`.

        Unknown keys are refused rather than ignored: silently skipping a preprocessing step a newer
        card asks for would feed the model input it was never trained on.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {', '.join(sorted(unknown))}")
        kw = dict(d)
        if "windows" in kw:
            kw["windows"] = tuple(tuple(w) for w in kw["windows"])
        for key in ("mean", "std", "percentiles"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


def in_channels(cfg: PreprocessConfig) -> int:
    """Model input channels a config produces: windows × context slices."""
    return len(cfg.windows) * (2 * cfg.context + 1)
