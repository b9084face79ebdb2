"""From a loaded series to the model's input and back to patient coordinates (Qt-free).

Used by ``radview analyze`` (in-process) and the viewer's inference lane (which sends
:func:`stored_slices` to the model service in a child process). torch is imported by the model code only
when a model is loaded, never at import of this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

# One ranking of slices for `radview analyze` and the window's N / Shift+N.
from models.runtime.analysis import ranking as ranking

# The service's vocabulary, for the window's inference lane (the window imports models only through here).
from models.runtime.messages import SERVICE_TARGET as SERVICE_TARGET
from models.runtime.messages import BatchAnalysis as BatchAnalysis
from models.runtime.messages import ModelInfo as ModelInfo
from models.runtime.messages import ModelRef as ModelRef
from models.runtime.messages import StoredSlices
from viewer.ai.model_registry import ModelEntry
from viewer.base.model_card import ModelCard
from viewer.base.preprocess_config import Presentation
from viewer.core.volume import Volume

if TYPE_CHECKING:
    from models.runtime.analysis import SliceResult
    from models.runtime.bundle import LoadedModel


def model_applies(card: ModelCard, volume: Volume) -> str | None:
    """None when the model can read this series, else the reason shown instead of a number."""
    modality = volume.series.modality
    if card.modalities and modality not in card.modalities:
        return f"the model {card.name} reads {', '.join(card.modalities)}, not {modality}"
    if volume.is_color:
        return f"the model {card.name} reads greyscale images, not colour"
    return None


def along_normal(volume: Volume) -> int:
    """+1 when the display order runs along the slice normal, -1 against it (an axial stack shown from the
    head down: :func:`viewer.core.geometry.display_direction`)."""
    positions = volume.geometry.positions
    if len(positions) < 2:
        return 1
    return 1 if float((positions[-1] - positions[0]) @ volume.geometry.normal) >= 0 else -1


def context_indices(n: int, indices: Sequence[int], context: int, step: int = 1) -> np.ndarray:
    """(N, 2*context+1) slice indices of each index's context; neighbours clamp at the series ends.

    The channels run along the slice normal, as the models were trained (on volumes stored feet to head):
    ``step`` is :func:`along_normal` of the volume, so the channel order does not depend on the display order.
    """
    offsets = np.arange(-context, context + 1) * step
    return np.clip(np.asarray(indices, dtype=np.intp).reshape(-1, 1) + offsets, 0, n - 1)


def context_stack(volume: Volume, indices: Sequence[int], context: int) -> np.ndarray:
    """(N, 2*context+1, rows, cols) float32 modality values; neighbours clamp at the series ends."""
    wanted = context_indices(volume.n_slices, indices, context, along_normal(volume))
    out = np.empty((*wanted.shape, volume.stored.shape[1], volume.stored.shape[2]), np.float32)
    for i, row in enumerate(wanted):
        for k, index in enumerate(row):
            out[i, k] = volume.modality_values(int(index))
    return out


def stored_slices(volume: Volume, indices: Sequence[int], context: int) -> StoredSlices:
    """The slices a batch needs as stored integers, for the model service
    (:class:`models.runtime.messages.StoredSlices`).

    Each distinct slice crosses to the child process once (neighbours clamp at the series ends, as in
    :func:`context_stack`); the child rescales them, so its modality values equal :func:`context_stack`'s.
    """
    wanted = context_indices(volume.n_slices, indices, context, along_normal(volume))
    distinct, stacks = np.unique(wanted, return_inverse=True)
    whole = len(distinct) == volume.n_slices  # the whole series (the findings): no copy before it is sent
    stored = volume.stored if whole else np.ascontiguousarray(volume.stored[distinct])
    return StoredSlices(stored, float(volume.slope), float(volume.intercept),
                        stacks.reshape(wanted.shape).astype(np.int32), presentation(volume))


def presentation(volume: Volume) -> Presentation:
    """The series' VOI window (the file's own, when it means something) and MONOCHROME1 flag, which a
    radiograph model's preprocessing reads (:func:`models.runtime.preprocess.radiograph_plane`)."""
    w = volume.file_window()
    return Presentation(volume.invert, (float(w.center), float(w.width)) if w is not None else None)


def analysis_order(n: int, first: int) -> list[int]:
    """The current slice, then outwards (the same order the volume loads in)."""
    from viewer.core.volume import load_order

    return load_order(n, first)


def load_model(entry: ModelEntry, device: str = "auto") -> LoadedModel:
    """Load and verify a bundle on the best device (imports torch)."""
    from models.runtime.bundle import load_bundle
    from models.runtime.device import configure_threads, pick_device

    configure_threads()
    return load_bundle(entry.path, device=pick_device(device))


def slice_record(volume: Volume, result: SliceResult, sop_uid: str, faithfulness: float | None) -> dict:
    """The ``analyze`` JSON record of one slice (positions in patient LPS mm where known)."""
    geometry = volume.geometry
    r, c = result.peak_rc
    series = volume.series
    numbers = series.image_numbers
    record = {
        "index": result.index,
        # the scanner's number of the image (InstanceNumber; a multi-frame file's frame number), as reports and
        # the PACS name it; null where the files' numbers are missing, repeat or do not follow the geometry
        "instance_number": numbers[result.index] if numbers is not None else None,
        "image": series.image_label(result.index),
        "sop_instance_uid": sop_uid,
        "position_mm": [round(float(v), 3) for v in geometry.positions[result.index]] if geometry.known else None,
        "probability": round(result.probability, 6),
        "heatmap_peak_rc": [round(r, 2), round(c, 2)],
        "heatmap_peak_mm": [round(float(v), 3) for v in geometry.voxel_to_patient(result.index, r, c)]
        if geometry.known else None,
        "faithfulness": None if faithfulness is None else round(float(faithfulness), 6),
    }
    return record
