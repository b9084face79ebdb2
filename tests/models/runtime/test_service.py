"""The model service (what the viewer's AI child process runs), called in-process on the real demo CT.

The child-process round trip is tested through the inference lane (tests/qt/test_ai_lane.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.runtime.analysis import SliceAnalyzer
from models.runtime.bundle import load_bundle
from models.runtime.messages import BatchAnalysis, ModelLoadFailed, ModelRef
from models.runtime.preprocess import preprocess, preprocess_stacks
from models.runtime.service import MAX_LOADED_MODELS, ModelService, heat_to_u8
from viewer.ai.analysis import context_stack, stored_slices
from viewer.ai.model_registry import find_model
from viewer.base.preprocess_config import PreprocessConfig


@pytest.fixture(scope="module")
def lung1():
    """The real lung1 demo CT (48 slices of 512²), loaded once."""
    from viewer.core.demo import ensure_demo_study
    from viewer.core.scan import scan
    from viewer.core.volume import load_volume

    (series,) = scan(ensure_demo_study().lung1).series
    return load_volume(series)


@pytest.fixture(scope="module")
def shipped():
    return find_model("demo-nodule")


def _ref(entry, path: Path | None = None) -> ModelRef:
    return ModelRef(str(path or entry.path), entry.card.sha256, "cpu")


def _copy(entry, folder: Path, name: str, **card_changes) -> Path:
    shutil.copytree(entry.path, folder)
    card = json.loads((folder / "card.json").read_text())
    card.update(name=name, **card_changes)
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def _plain(value) -> bool:
    """Only numbers, strings, numpy arrays and tuples of them: nothing that needs torch to unpickle."""
    if isinstance(value, (int, float, str, bool, np.ndarray)):
        return True
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return False


def test_stored_slices_rescale_to_exactly_the_context_stacks(lung1):
    indices = [0, 20, 21, 47]
    slices = stored_slices(lung1, indices, 1)
    assert slices.stored.dtype == lung1.stored.dtype
    assert len(slices.stored) == 8  # 0 (twice: clamped), 1, 19..22, 46, 47 (twice): each distinct slice once
    np.testing.assert_array_equal(slices.modality_values(), context_stack(lung1, indices, 1))


@pytest.mark.parametrize("config", [
    "card",  # the shipped model's recipe: lung window, 2.5-D, 256 px
    PreprocessConfig(windows=((-600.0, 1500.0), (40.0, 400.0)), context=1, size=224, clahe=True,
                     normalise="standard", mean=(0.45,), std=(0.27,)),
])
def test_each_distinct_slice_prepared_once_gives_the_stacks_preprocessing_bit_for_bit(lung1, shipped, config):
    cfg = shipped.card.preprocess_config() if config == "card" else config
    indices = [0, 20, 21, 22, 23, 47]  # clamped ends and a run of neighbours that share slices
    slices = stored_slices(lung1, indices, 1)
    assert len(slices.stored) < 3 * len(indices)
    values = slices.distinct_values()
    np.testing.assert_array_equal(values[slices.stacks], slices.modality_values())
    shared = preprocess_stacks(values, slices.stacks, cfg)
    np.testing.assert_array_equal(shared, preprocess(context_stack(lung1, indices, 1), cfg))
    with pytest.raises(ValueError, match="outside"):
        preprocess_stacks(values, slices.stacks + len(values), cfg)
    with pytest.raises(ValueError, match="needs 3 slice"):
        preprocess_stacks(values, slices.stacks[:, :2], cfg)


def test_analysis_equals_the_analyzer_and_returns_plain_data(lung1, shipped):
    service = ModelService()
    info = service.load(_ref(shipped))
    assert (info.name, info.device, info.context, info.notice) == ("demo-nodule", "cpu", 1, "")
    indices = [33, 34, 5]
    answer = service.analyze(_ref(shipped), indices, stored_slices(lung1, indices, info.context), scope="r1")
    assert isinstance(answer, BatchAnalysis) and answer.notice == ""
    direct = SliceAnalyzer(load_bundle(shipped.path)).analyze(indices, context_stack(lung1, indices, 1))
    assert answer.indices == tuple(indices)
    np.testing.assert_allclose(answer.probabilities, [r.probability for r in direct], rtol=1e-6)
    for heat, r in zip(answer.heatmaps, direct):
        assert heat.dtype == np.uint8 and heat.shape == (256, 256)
        assert np.abs(heat.astype(int) - heat_to_u8(r.heatmap).astype(int)).max() <= 1
    assert answer.peaks_rc == tuple((float(r.peak_rc[0]), float(r.peak_rc[1])) for r in direct)
    assert (
        answer.probabilities[1] > answer.probabilities[2]
    )  # the real lung1 nodule (slice 34, 0-based) over a clean apex slice
    assert all(_plain(getattr(answer, f)) for f in ("indices", "probabilities", "heatmaps", "peaks_rc", "notice"))


def test_faithfulness_uses_the_kept_heatmap_or_recomputes_the_same(lung1, shipped):
    service = ModelService()
    ref = _ref(shipped)
    service.analyze(ref, [34], stored_slices(lung1, [34], 1), scope="a")
    kept = service.faithfulness(ref, 34, stored_slices(lung1, [34], 1), scope="a")
    fresh = service.faithfulness(ref, 34, stored_slices(lung1, [34], 1), scope="other request")
    assert kept == fresh
    analyzer = SliceAnalyzer(load_bundle(shipped.path))
    hu = context_stack(lung1, [34], 1)
    direct = analyzer.faithfulness(hu, analyzer.analyze([34], hu)[0].heatmap[None])[0]
    assert kept.score == pytest.approx(direct.score, abs=1e-6) and kept.faithful == direct.faithful
    assert kept.initial_probability == pytest.approx(direct.initial_probability, abs=1e-6)


def test_at_most_two_models_stay_loaded_least_recently_used_out(shipped, tmp_path):
    service = ModelService()
    refs = [_ref(shipped, _copy(shipped, tmp_path / f"m{k}", f"copy-{k}")) for k in range(3)]
    for ref in refs:
        assert service.load(ref).name.startswith("copy-")
    assert MAX_LOADED_MODELS == 2
    assert service.loaded() == [refs[1].key, refs[2].key]
    service.load(refs[1])  # used again: now the most recent
    assert service.loaded() == [refs[2].key, refs[1].key]


def test_a_corrupt_bundle_fails_with_its_one_line_reason(shipped, tmp_path):
    bundle = _copy(shipped, tmp_path / "broken", "broken")
    weights = bundle / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelLoadFailed) as info:
        ModelService().load(_ref(shipped, bundle))
    message = str(info.value)
    assert message.startswith("sha256 mismatch: card says ") and "\n" not in message
    assert str(bundle) not in message  # the reason only; the caller names the model


def test_a_bundle_changed_since_it_was_listed_is_refused(shipped, tmp_path):
    bundle = _copy(shipped, tmp_path / "changed", "changed")
    weights = bundle / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # still loadable; the card is updated to vouch for it
    weights.write_bytes(bytes(data))
    card = json.loads((bundle / "card.json").read_text())
    card["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (bundle / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadFailed, match="changed since it was listed"):
        ModelService().load(_ref(shipped, bundle))  # the caller listed the old sha256


def test_a_model_whose_input_does_not_fit_fails_with_a_clear_reason(lung1, shipped, tmp_path):
    preprocessing = dict(shipped.card.preprocessing, size=252)  # the location map needs sides divisible by 8
    bundle = _copy(shipped, tmp_path / "odd", "odd-size", input_size=252, preprocessing=preprocessing)
    service = ModelService()
    ref = _ref(shipped, bundle)
    assert service.load(ref).name == "odd-size"  # the weights fit the architecture; the input does not
    from models.runtime.predict import ModelInputError

    with pytest.raises(ModelInputError, match=r"divisible by 8, got \(252, 252\)"):
        service.analyze(ref, [10], stored_slices(lung1, [10], 1))


def test_a_gpu_out_of_memory_on_a_batch_moves_the_model_to_the_cpu_and_says_so(lung1, shipped, monkeypatch):
    from oom_service import oom_once  # tests/oom_service.py, shared with the lane's test in a child

    monkeypatch.setattr(SliceAnalyzer, "analyze_stacks", oom_once(SliceAnalyzer.analyze_stacks))
    service = ModelService()
    answer = service.analyze(_ref(shipped), [20], stored_slices(lung1, [20], 1))
    assert answer.notice == "GPU out of memory: the AI continues on the CPU (slower)"
    assert answer.indices == (20,) and 0.0 <= answer.probabilities[0] <= 1.0
    assert service.analyze(_ref(shipped), [21], stored_slices(lung1, [21], 1)).notice == ""


def test_a_gpu_out_of_memory_while_loading_retries_on_the_cpu(shipped, monkeypatch):
    import models.runtime.bundle

    original = models.runtime.bundle.load_bundle
    devices = []

    def load_oom_off_cpu(path, device="cpu"):
        devices.append(str(device))
        if str(device) != "cpu" or len(devices) == 1:
            raise RuntimeError("CUDA out of memory while loading")
        return original(path, device=device)

    monkeypatch.setattr(models.runtime.bundle, "load_bundle", load_oom_off_cpu)
    info = ModelService().load(_ref(shipped))
    assert devices == ["cpu", "cpu"] and info.device == "cpu"
    assert info.notice == "GPU out of memory loading demo-nodule: running on the CPU"


def test_an_error_that_is_not_out_of_memory_propagates(lung1, shipped, monkeypatch):
    def broken(self, *args):
        raise RuntimeError("shape mismatch in layer 3")

    monkeypatch.setattr(SliceAnalyzer, "analyze_stacks", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        ModelService().analyze(_ref(shipped), [20], stored_slices(lung1, [20], 1))


def test_findings_use_the_kept_maps_or_compute_them_alike_and_equal_the_in_process_path(lung1, shipped):
    """The service's findings of a whole series (the window's path) equal `analyze`'s (the command line's),
    whether the sweep's maps are kept or computed for the call; the real lung1 nodule comes first."""
    from viewer.ai.findings import segmentation_head, series_findings, voxel_spacing

    n = lung1.n_slices
    everything = stored_slices(lung1, range(n), 1)
    spacing = voxel_spacing(lung1)
    swept = ModelService()
    ref = _ref(shipped)
    for start in range(0, n, 8):
        batch = list(range(start, min(n, start + 8)))
        swept.analyze(ref, batch, stored_slices(lung1, batch, 1), scope="r", series="lung1")
    head = segmentation_head()  # the shipped head, as the window sends it
    kept = swept.findings(ref, "lung1", everything, spacing, None, head).findings
    held = swept.findings(ref, "lung1", None, spacing, None, head, n_slices=n).findings  # its own slices
    cold = ModelService().findings(ref, "lung1", everything, spacing, None, head).findings
    direct = series_findings(lung1, SliceAnalyzer(load_bundle(shipped.path)).analyze(
        list(range(n)), context_stack(lung1, list(range(n)), 1)), shipped.card.threshold)
    for other in (held, cold, direct):
        assert [f.box for f in other.findings] == [f.box for f in kept.findings]
        assert [round(f.probability, 3) for f in other.findings] == [round(f.probability, 3) for f in kept.findings]
    # a slice more than the service holds, or none of them: it asks for the slices
    assert swept.findings(ref, "lung1", None, spacing, None, head, n_slices=n + 1).findings is None
    assert ModelService().findings(ref, "lung1", None, spacing, None, head, n_slices=n).findings is None
    first = kept.findings[0]
    assert 12 <= first.centre[0] <= 15 and first.kind == "solid"  # the nodule, on images 33-36
    assert kept.midline_col is not None and first.centre[2] < kept.midline_col  # the patient's right
