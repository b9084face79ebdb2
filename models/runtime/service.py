"""The model service: loaded models and their analysis, run in the viewer's AI child process.

The viewer's inference lane (:mod:`viewer.qt.ai.inference`) never imports torch: it calls this service
through :class:`viewer.base.child_process.ChildProcess` (target :data:`SERVICE_TARGET`), so importing
torch and running a model cannot hold the GUI process's GIL. Everything that crosses is plain data:

- in: a :class:`ModelRef` (bundle path, the sha256 the caller listed, device) and the slices as stored
  (:class:`StoredSlices`: integers, their rescale, and which of them each item stacks as context), a
  quarter of the bytes of float32 modality values (~2.4 ms instead of ~14 ms per 512² batch of four here);
- out: frozen dataclasses of numpy arrays and numbers (:class:`ModelInfo`, :class:`BatchAnalysis` with
  heatmaps already uint8, :class:`FaithfulnessAnswer`), never torch tensors.

This module imports torch only inside its methods, so the GUI process may import it for these types.

The service keeps at most :data:`MAX_LOADED_MODELS` models (keyed by bundle path *and* sha256, so a
corrupt copy of a good bundle is loaded, and refused, on its own); every call names its model and loads
it when needed, so a restarted child picks up where the last one stopped. A GPU that runs out of memory
(while loading or on a batch) moves that model to the CPU for good and the answer carries a ``notice``
saying so. A bundle that cannot be used raises :class:`ModelLoadFailed` with the one-line reason.

No garbage-collector handling is needed here any more: the collector's pauses over torch's objects
(~0.2 s after the import) stalled the UI thread only while torch lived in the GUI process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.runtime.messages import (
    BatchAnalysis,
    FaithfulnessAnswer,
    FindingsAnswer,
    ModelInfo,
    ModelLoadFailed,
    ModelRef,
    StoredSlices,
)

#: Loaded models kept (the active one and the previous one, for a quick switch back).
MAX_LOADED_MODELS = 2
#: Float heatmaps kept for a faithfulness test of a slice analysed recently (per scope, e.g. request).
RECENT_HEATMAPS = 16
#: Series whose per-slice maps are kept for their findings (float16, 128 KB a slice at 256²).
MAPS_KEPT_SERIES = 2
#: Series whose stored slices (as their analysis sent them) are kept for their findings, which then need
#: not send the whole series again (~0.2 s for 300 slices of 512², measured): the most recent one.
SLICES_KEPT_SERIES = 1


def heat_to_u8(heatmap: np.ndarray) -> np.ndarray:
    """A heatmap in [0, 1] as uint8 0..255 (rounded): the overlay's colour table has 256 entries anyway."""
    return (np.clip(np.asarray(heatmap, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _reason(e: BaseException) -> str:
    from viewer.base.model_card import BundleError

    if isinstance(e, BundleError):
        return e.reason
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class ModelService:
    """Loaded models and their analysis (see the module docstring).

    Parameters
    ----------
    cancel_event : threading.Event-like, optional
        The :class:`~viewer.base.child_process.ChildProcess` cancel event. Every analysis call is one short
        batch (~0.1 s), so the lane cancels between calls; :meth:`findings` (seconds) polls it.
    batch_size : int
        Slices per forward inside one call.
    """

    def __init__(self, cancel_event: Any = None, *, batch_size: int = 4) -> None:
        self.cancel_event = cancel_event if cancel_event is not None else threading.Event()
        self.batch_size = batch_size
        self._models: OrderedDict[tuple[str, str], Any] = OrderedDict()  # key -> SliceAnalyzer
        self._recent: OrderedDict[tuple[str, tuple[str, str], int], np.ndarray] = OrderedDict()
        self._maps: OrderedDict[tuple[str, tuple[str, str]], dict[int, np.ndarray]] = OrderedDict()
        self._slices: OrderedDict[str, tuple[tuple[float, float], dict[int, np.ndarray]]] = OrderedDict()
        self._threads_set = False
        self._segmenters: dict[str, Any] = {}  # head folder -> Segmenter

    # -- models --------------------------------------------------------------------------------------------

    def load(self, ref: ModelRef) -> ModelInfo:
        """Load and verify ``ref`` unless loaded; raises :class:`ModelLoadFailed` with a one-line reason."""
        analyzer, notice = self._analyzer(ref)
        return self._info(analyzer, notice)

    def loaded(self) -> list[tuple[str, str]]:
        """Keys (path, sha256) of the loaded models, least recently used first."""
        return list(self._models)

    def _info(self, analyzer: Any, notice: str = "") -> ModelInfo:
        from models.runtime.predict import model_device

        return ModelInfo(analyzer.card.name, str(model_device(analyzer.loaded.model)), analyzer.context, notice)

    def _analyzer(self, ref: ModelRef) -> tuple[Any, str]:
        key = ref.key
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key], ""
        try:
            loaded, notice = self._load_bundle(ref)
            if loaded.card.sha256 != ref.sha256:
                raise ModelLoadFailed(f"the bundle changed since it was listed (its card now says sha256 "
                                      f"{loaded.card.sha256[:12]}…, expected {ref.sha256[:12]}…)")
        except ModelLoadFailed:
            raise
        except Exception as e:
            raise ModelLoadFailed(_reason(e)) from e
        from models.runtime.analysis import SliceAnalyzer

        analyzer = SliceAnalyzer(loaded, batch_size=self.batch_size)
        self._models[key] = analyzer
        while len(self._models) > MAX_LOADED_MODELS:
            old, _ = self._models.popitem(last=False)
            for k in [k for k in self._recent if k[1] == old]:
                del self._recent[k]
        return analyzer, notice

    def _load_bundle(self, ref: ModelRef) -> tuple[Any, str]:
        """Load on the chosen device; a GPU out of memory while loading retries on the CPU."""
        from models.runtime.bundle import load_bundle
        from models.runtime.device import configure_threads, is_oom, pick_device

        if not self._threads_set:
            configure_threads()  # one core left to the UI process on a small machine
            self._threads_set = True
        try:
            return load_bundle(ref.path, device=pick_device(ref.device)), ""
        except Exception as e:
            if not is_oom(e):
                raise
        # Retried outside the except block, so the GPU tensors of the traceback are freed first.
        self._empty_gpu_cache()
        loaded = load_bundle(ref.path, device="cpu")
        return loaded, f"GPU out of memory loading {loaded.card.name}: running on the CPU"

    @staticmethod
    def _empty_gpu_cache() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _with_oom_fallback(self, analyzer: Any, fn: Any) -> tuple[Any, str]:
        """Run ``fn()``; if the GPU runs out of memory, move the model to the CPU (for good) and retry."""
        from models.runtime.device import is_oom

        try:
            return fn(), ""
        except Exception as e:
            if not is_oom(e):
                raise
        analyzer.loaded.model.to("cpu")
        self._empty_gpu_cache()
        return fn(), "GPU out of memory: the AI continues on the CPU (slower)"

    # -- analysis ------------------------------------------------------------------------------------------

    def analyze(self, ref: ModelRef, indices: tuple[int, ...] | list[int], slices: StoredSlices,
                scope: str = "", series: str = "") -> BatchAnalysis:
        """Probability, uint8 heatmap and heatmap peak of each slice in ``indices``.

        ``slices`` holds their context stacks. The float heatmaps are kept for a faithfulness test under
        ``scope`` (the caller's request), the :data:`RECENT_HEATMAPS` most recent ones; the maps the
        findings start from under ``series`` (see :meth:`findings`).
        """
        analyzer, notice = self._analyzer(ref)
        stacks = np.asarray(slices.stacks)
        if stacks.ndim != 2 or stacks.shape[1] != 2 * analyzer.context + 1 or len(indices) != len(stacks):
            raise ValueError(f"model {analyzer.card.name} takes {2 * analyzer.context + 1} slice(s) per item; "
                             f"got stacks of shape {stacks.shape} for {len(indices)} item(s)")
        values = slices.distinct_values()
        results, oom_notice = self._with_oom_fallback(
            analyzer, lambda: analyzer.analyze_stacks(list(indices), values, stacks, slices.presentation))
        for r in results:
            key = (scope, ref.key, r.index)
            self._recent[key] = r.heatmap
            self._recent.move_to_end(key)
        while len(self._recent) > RECENT_HEATMAPS:
            self._recent.popitem(last=False)
        if series:
            self._keep_maps(series, ref, results)
            self._keep_slices(series, indices, slices, analyzer.context)
        return BatchAnalysis(
            indices=tuple(int(r.index) for r in results),
            probabilities=tuple(float(r.probability) for r in results),
            heatmaps=tuple(heat_to_u8(r.heatmap) for r in results),
            peaks_rc=tuple((float(r.peak_rc[0]), float(r.peak_rc[1])) for r in results),
            notice=notice or oom_notice,
        )

    def faithfulness(self, ref: ModelRef, index: int, slices: StoredSlices, scope: str = "") -> FaithfulnessAnswer:
        """Deletion faithfulness of slice ``index`` (``slices``: its one context stack).

        Uses the float heatmap kept by :meth:`analyze` under the same ``scope``; one more forward
        computes it otherwise.
        """
        analyzer, notice = self._analyzer(ref)
        hu = slices.modality_values()
        heat = self._recent.get((scope, ref.key, int(index)))
        notices = [notice]
        if heat is None:
            results, n = self._with_oom_fallback(analyzer, lambda: analyzer.analyze([int(index)], hu,
                                                                                     slices.presentation))
            heat = results[0].heatmap
            notices.append(n)
        result, n = self._with_oom_fallback(
            analyzer, lambda: analyzer.faithfulness(hu, heat[None], slices.presentation)[0])
        notices.append(n)
        return FaithfulnessAnswer(int(index), float(result.score), bool(result.faithful),
                                  float(result.initial_probability), next((t for t in notices if t), ""))

    def _keep_maps(self, series: str, ref: ModelRef, results: list[Any]) -> dict[int, np.ndarray]:
        key = (series, ref.key)
        maps = self._maps.setdefault(key, {})
        self._maps.move_to_end(key)
        while len(self._maps) > MAPS_KEPT_SERIES:
            self._maps.popitem(last=False)
        for r in results:
            m = r.location_map if r.location_map is not None else r.heatmap
            maps[int(r.index)] = np.asarray(m, dtype=np.float16)
        return maps

    def _keep_slices(self, series: str, indices: Sequence[int], slices: StoredSlices, context: int) -> None:
        """Keep a copy of each analysed slice of ``series`` (its stack's middle row), for :meth:`findings`."""
        rescale = (float(slices.slope), float(slices.intercept))
        if series not in self._slices or self._slices[series][0] != rescale:
            self._slices[series] = (rescale, {})
        self._slices.move_to_end(series)
        while len(self._slices) > SLICES_KEPT_SERIES:
            self._slices.popitem(last=False)
        kept = self._slices[series][1]
        middle = np.asarray(slices.stacks)[:, context]
        for i, row in zip(indices, middle, strict=True):
            kept[int(i)] = np.array(slices.stored[int(row)])  # a copy: the batch's buffer is freed

    def _kept_slices(self, series: str, n: int) -> StoredSlices | None:
        """The slices 0..n-1 of ``series`` kept from its analysis, each its own stack (None unless all of
        them are kept)."""
        if series not in self._slices:
            return None
        (slope, intercept), kept = self._slices[series]
        if any(i not in kept for i in range(n)):
            return None
        return StoredSlices(np.stack([kept[i] for i in range(n)]), slope, intercept,
                            np.arange(n, dtype=np.int32)[:, None])

    def _segmenter(self, head: str) -> Any:
        """The segmentation of the head in folder ``head`` (region growing unless it won; loaded once)."""
        from models.runtime.findings.find import REGION_GROWING
        from models.runtime.findings.learned import segmenter_for

        if head not in self._segmenters:
            self._segmenters[head] = segmenter_for(head or None, REGION_GROWING)
        return self._segmenters[head]

    def findings(self, ref: ModelRef, series: str, slices: StoredSlices | None,
                 spacing: tuple[float, float, float], analysable: np.ndarray | None = None, head: str = "",
                 n_slices: int = 0) -> FindingsAnswer:
        """The nodules of a whole series (:func:`models.runtime.findings.find.series_findings`).

        ``slices`` is the whole series (its stored slices in display order, each slice's context stack), or
        None for the ``n_slices`` slices :meth:`analyze` kept of ``series``: then, unless all of them are
        kept with a map for each slice ``analysable`` marks, the answer's ``findings`` is None and the caller
        sends the slices. The maps :meth:`analyze` kept under ``series`` are used, the missing ones computed
        here first, for the slices ``analysable`` marks (default all; the others have no map, so no
        finding). ``head`` is the folder of the learned segmentation head
        (:func:`models.runtime.findings.learned.segmenter_for`).
        """
        from models.runtime.findings.find import RescaledVolume, series_findings

        analyzer, notice = self._analyzer(ref)
        n = len(slices.stacks) if slices is not None else int(n_slices)
        ok = np.ones(n, bool) if analysable is None else np.asarray(analysable, bool)
        maps = self._maps.get((series, ref.key), {})
        missing = [i for i in range(n) if ok[i] and i not in maps]
        if slices is None:
            slices = self._kept_slices(series, n)
            if slices is None or missing:
                return FindingsAnswer(None, notice)
        elif len(slices.stored) != n:
            raise ValueError(f"findings need the whole series: {len(slices.stored)} slices for {n} stacks")
        volume = RescaledVolume(slices.stored, slices.slope, slices.intercept)
        notices = [notice]
        for start in range(0, len(missing), self.batch_size):  # none missing without the slices
            if self.cancel_event.is_set():
                break
            batch = missing[start:start + self.batch_size]
            part = slices.subset(batch)
            results, n_ = self._with_oom_fallback(
                analyzer, lambda b=batch, p=part: analyzer.analyze_stacks(b, p.distinct_values(), p.stacks,
                                                                          p.presentation))
            maps = self._keep_maps(series, ref, results)
            notices.append(n_)
        shape = next(iter(maps.values())).shape if maps else (1, 1)
        stack = np.stack([np.asarray(maps[i], np.float32) if i in maps else np.zeros(shape, np.float32)
                          for i in range(n)])
        found = series_findings(volume, spacing, stack, analyzer.card.threshold, self.cancel_event.is_set,
                                self._segmenter(head))
        return FindingsAnswer(found, next((t for t in notices if t), ""))

    def close(self) -> None:
        """Drop every model (the child calls this on its way out)."""
        self._models.clear()
        self._recent.clear()
        self._maps.clear()
        self._slices.clear()
        self._segmenters.clear()


def create(cancel_event: Any) -> ModelService:
    """The :class:`~viewer.base.child_process.ChildProcess` factory (:data:`SERVICE_TARGET`).

    The process exists to run models, so it keeps freed tensor memory for the next batch
    (:func:`models.runtime.allocator.keep_freed_memory_for_reuse`).
    """
    from models.runtime.allocator import keep_freed_memory_for_reuse

    keep_freed_memory_for_reuse()
    return ModelService(cancel_event)


__all__ = [
    "MAX_LOADED_MODELS", "BatchAnalysis", "FaithfulnessAnswer", "ModelInfo", "ModelLoadFailed",
    "ModelRef", "ModelService", "StoredSlices", "create", "heat_to_u8",
]
