"""Fine-tune throughput against plain inference, measured side by side in one run (issue C's benchmark).

Called by ``tests/benchmarks/run.py`` (``make bench``) as :func:`run`; also runnable alone
(``python -m tests.benchmarks.bench_training`` prints the JSON).

resnet18, batch 16, 224 px, one channel, threads as :func:`models.runtime.device.configure_threads` sets them
for the app (one core left to the UI), measured in a child process set up as the fine-tune dialog's
(:func:`measure_in_child` says why). Throughput ratio = seconds per batch of the plain inference
forward (eval, ``torch.inference_mode()``, weights and input channels_last: the production forward) /
seconds per training batch. Targets: head only ≥ 0.85, full fine-tune ≥ 0.3.

Training runs as the engine runs it when fine-tuning a base: batch-norm statistics frozen (the
default with a base, see :class:`models.finetune.config.FineTuneConfig`) and the fused optimiser. Two ways of
measuring it, both through the engine:

- ``step``: :meth:`models.finetune.trainer.Trainer.step`, the engine's batch step, timed round-robin with the
  inference forward and with a plain training loop written out here (the floor: what any loop costs);
- ``loop``: whole epochs of :func:`models.finetune.run.train` on 64 images (uncached, so the trunk runs
  every batch), seconds per training batch taken from its own per-batch progress reports (batch
  gather, step, bookkeeping and the progress callback included), against the inference forward timed
  before the first timed epoch and after each one.

The head-only feature cache (the trunk's output computed once when nothing augments the input) makes
later head-only epochs far cheaper still; ``head_cached_step`` reports that step alone.

The window while a fine-tune runs (target: p95 slice update ≤ 1.5× idle): the real main window (AI off,
so only the fine-tune competes) on the 300-slice 512² benchmark CT, and the fine-tune dialog's own lane
(:class:`viewer.qt.finetune.lane.FineTuneLane`: a worker thread driving the niced child process) training
demo-nodule, full fine-tune, on the demo CTs with the project's synthetic nodules (folder per class, one
pseudo-patient per block of 12 slices). The reader scrolls at 50 slices/s as in ``bench_inference``;
"during" and "idle" alternate in blocks of :data:`WINDOW_BLOCK` updates within the same run: for an idle
block the child is stopped (``SIGSTOP``) and continued after it, so both sides share the machine's state.
``python -m tests.benchmarks.bench_training --window`` runs this part alone.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import time_round_robin

TARGETS = {"head_step_throughput": 0.85, "full_step_throughput": 0.3,
           "head_loop_throughput": 0.85, "full_loop_throughput": 0.3}
WINDOW_TARGETS = {"p95_slice_update_during_finetune_over_idle": 1.5}
BATCH, SIZE = 16, 224
#: Updates per alternating block (training, stopped, training, ...) and blocks of each kind.
WINDOW_BLOCK, WINDOW_BLOCKS = 20, 10


def _models():
    import torch

    from models.runtime.architectures import create_model
    from models.runtime.predict import prepare_model

    torch.manual_seed(0)
    ref = create_model("resnet18", in_chans=1)
    out = []
    for _ in range(5):
        m = create_model("resnet18", in_chans=1)
        m.load_state_dict(ref.state_dict())
        out.append(prepare_model(m, "cpu"))
    return out


def _plain_step(model: Any, params: list, opt: Any) -> Callable[[Any, Any], float]:
    """A training step written out with no engine: the floor."""
    import torch

    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step(x: Any, y: Any) -> float:
        loss = loss_fn(model(x)[:, 0], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def measure_steps(repeats: int = 7) -> dict[str, float]:
    import torch

    from models.finetune.trainer import Trainer

    infer_model, head_model, full_model, plain_head_model, plain_full_model = _models()
    x = torch.rand(BATCH, 1, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    y = (torch.arange(BATCH) % 2).float()
    infer_model.eval()
    # As the engine sets them up when fine-tuning a base (FineTuneConfig's defaults: batch-norm statistics frozen).
    head = Trainer(head_model, "resnet18", "head", freeze_bn=True)
    full = Trainer(full_model, "resnet18", "full", freeze_bn=True)
    head.train_mode()
    full.train_mode()
    # The plain loops: what a hand-written loop does (torch's default Adam, batch norm in train mode for
    # the full fine-tune), the reference the issue measured (0.88x head only, 0.31x full on its machine).
    for n, p in plain_head_model.named_parameters():
        p.requires_grad_(n.startswith("fc."))
    plain_head_model.eval()
    plain_head_model.fc.train()
    plain_full_model.train()
    plain_head = _plain_step(plain_head_model, list(plain_head_model.fc.parameters()),
                             torch.optim.Adam(plain_head_model.fc.parameters(), lr=1e-3))
    plain_full = _plain_step(plain_full_model, list(plain_full_model.parameters()),
                             torch.optim.Adam(plain_full_model.parameters(), lr=1e-3))
    with torch.no_grad():
        feats = head_model.forward_features(x)

    def inference() -> None:
        with torch.inference_mode():
            infer_model(x)

    return time_round_robin({
        "inference": inference,
        "head_step": lambda: head.step(x, y),
        "plain_head_step": lambda: plain_head(x, y),
        "full_step": lambda: full.step(x, y),
        "plain_full_step": lambda: plain_full(x, y),
        "head_cached_step": lambda: head.step(feats, y, head_model.forward_head),
    }, repeats)


def measure_loops(n_train: int = 64) -> dict[str, float]:
    """Seconds per training batch inside real engine epochs, and the inference forward around them."""
    import numpy as np
    import torch

    from models.finetune.config import FineTuneConfig
    from models.finetune.datasets import TrainingSet
    from models.finetune.run import train
    from models.runtime.architectures import create_model
    from models.runtime.bundle import save_bundle
    from models.runtime.predict import prepare_model
    from viewer.base.model_card import ModelCard
    from viewer.base.preprocess_config import PreprocessConfig

    cfg = PreprocessConfig(size=SIZE)
    rng = np.random.default_rng(0)

    def make(n: int, tag: str) -> TrainingSet:
        return TrainingSet(rng.random((n, 1, SIZE, SIZE), dtype=np.float32), np.arange(n) % 2, cfg,
                           groups=[f"{tag}{i}" for i in range(n)])

    tr, va = make(n_train, "t"), make(2, "v")
    torch.manual_seed(0)
    base_model = create_model("resnet18", in_chans=1)
    infer_model = prepare_model(create_model("resnet18", in_chans=1), "cpu").eval()
    infer_model.load_state_dict(base_model.state_dict())
    tmp = tempfile.TemporaryDirectory(prefix="radview-bench-")
    base = save_bundle(base_model, ModelCard(name="bench-resnet18", arch="resnet18", input_size=SIZE, in_chans=1,
                                             preprocessing=cfg.to_dict()), Path(tmp.name) / "base")
    x = torch.rand(BATCH, 1, SIZE, SIZE).contiguous(memory_format=torch.channels_last)

    def inference_seconds(n: int = 3) -> float:
        times = []
        with torch.inference_mode():
            for _ in range(n):
                t = time.perf_counter()
                infer_model(x)
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    out: dict[str, float] = {}
    forwards = [inference_seconds()]  # and after each timed epoch: 5 medians of 3 forwards
    for mode in ("head", "full"):
        stamps: list[float] = []

        def on_batch(p: Any) -> None:
            if p.phase == "train":
                stamps.append(time.perf_counter())

        config = FineTuneConfig(base=str(base), mode=mode, epochs=3, batch_size=BATCH, patience=0, device="cpu",
                                feature_cache_mb=0, threads=torch.get_num_threads())
        run = train(config, tr, va, progress=on_batch)
        next(run)  # epoch 0 (scoring the start)
        next(run)  # epoch 1: warm-up
        gaps: list[float] = []
        for _ in range(2):  # epochs 2 and 3: timed, batch to batch (the validation pass in between left out)
            stamps.clear()
            t0 = time.perf_counter()
            next(run)
            gaps += list(np.diff([t0, *stamps]))
            forwards.append(inference_seconds())  # the reference, between the timed epochs
        out[f"{mode}_loop"] = float(np.median(gaps))
    out["inference"] = float(np.median(forwards))
    tmp.cleanup()
    return out


def finetune_window_updates() -> dict:
    """p95 slice update and frame (ms) in the real window while the dialog's lane trains, and while stopped."""
    import os
    import signal

    import numpy as np

    from models.finetune.config import FineTuneConfig
    from models.finetune.reports import TrainingProgress
    from tests.finetune_data import write_nodule_data
    from viewer.ai.finetune_service import DataSource
    from viewer.ai.model_registry import find_model
    from viewer.qt.finetune.lane import FineTuneLane
    from viewer.qt.main_window import MainWindow

    from .bench_inference import SCROLL_HALF_RANGE, _app, _process_until, _scroll
    from .bench_load import bench_series_dir

    app = _app()
    window = MainWindow(remember_recent=False, ai=False)
    window.resize(1280, 800)
    window.show()
    lane = FineTuneLane()
    seen: list = []
    lane.sig_item.connect(seen.append)
    failures: list = []
    lane.sig_failed.connect(lambda *a: failures.append(a))
    c = window.controller
    with tempfile.TemporaryDirectory() as tmp:
        try:
            classes = write_nodule_data(Path(tmp))["classes"]
            c.open_paths([str(bench_series_dir())])
            _process_until(lambda: c.loaded)
            config = FineTuneConfig(base=str(find_model("demo-nodule").path), mode="full", epochs=500, patience=0,
                                    batch_size=8, lr=1e-4, device="cpu")
            lane.load_data(DataSource("import", (str(classes),)))
            lane.prepare(config, 0.2, 0.1, None)
            lane.train()
            _process_until(
                lambda: failures or any(isinstance(i, TrainingProgress) and i.phase == "train" for i in seen)
            )
            if failures:
                raise RuntimeError(f"the fine-tune did not start: {failures[0]}")
            pid = lane.child.pid
            middle = c.n_slices // 2
            cycle = list(range(middle - SCROLL_HALF_RANGE, middle + SCROLL_HALF_RANGE + 1))
            cycle += cycle[-2:0:-1]
            during_u, during_f, idle_u, idle_f = [], [], [], []
            batches_at_start = sum(isinstance(i, TrainingProgress) for i in seen)
            for b in range(2 * WINDOW_BLOCKS):
                indices = [cycle[(b * WINDOW_BLOCK + k) % len(cycle)] for k in range(WINDOW_BLOCK)]
                training = b % 2 == 0
                if not training:
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(0.05)
                    app.processEvents()
                try:
                    u, f = _scroll(window, indices)
                finally:
                    if not training:
                        os.kill(pid, signal.SIGCONT)
                (during_u if training else idle_u).extend(u)
                (during_f if training else idle_f).extend(f)
            progress_items = sum(isinstance(i, TrainingProgress) for i in seen) - batches_at_start
            lane.cancel()
            _process_until(lambda: not lane.busy, timeout=120)
        finally:
            lane.shutdown()
            c.shutdown()
            window.close()
            window.deleteLater()
            app.processEvents()
    p95 = {k: float(np.percentile(v, 95)) for k, v in (("update_during", during_u), ("update_idle", idle_u),
                                                        ("frame_during", during_f), ("frame_idle", idle_f))}
    return {"updates_per_phase": len(during_u), "progress_items_while_scrolling": progress_items,
            **{f"{k.split('_')[0]}_p95_ms_{k.split('_')[1]}": v for k, v in p95.items()},
            "update_median_ms_during": float(np.median(during_u)), "update_median_ms_idle": float(np.median(idle_u))}


def window_ratios(window: dict) -> dict[str, float]:
    return {"p95_slice_update_during_finetune_over_idle": window["update_p95_ms_during"] / window["update_p95_ms_idle"],
            "p95_frame_during_finetune_over_idle": window["frame_p95_ms_during"] / window["frame_p95_ms_idle"]}


class _MeasuringChild:
    """The throughput measurements, in a process set up as the fine-tune dialog's child is."""

    def __init__(self) -> None:
        from models.runtime.allocator import keep_freed_memory_for_reuse
        from models.runtime.device import configure_threads

        keep_freed_memory_for_reuse()  # as viewer.ai.finetune_service.create does
        self.threads = configure_threads()  # as the engine does (FineTuneConfig.threads: None)

    def thread_count(self) -> int:
        return self.threads.intra_op

    def steps(self) -> dict[str, float]:
        return measure_steps()

    def loops(self) -> dict[str, float]:
        return measure_loops()


def measuring_child(cancel_event: Any) -> _MeasuringChild:
    """The :class:`~viewer.base.child_process.ChildProcess` factory of :func:`measure_in_child`."""
    return _MeasuringChild()


def measure_in_child() -> tuple[int, dict[str, float], dict[str, float]]:
    """(threads, :func:`measure_steps`, :func:`measure_loops`) in a child process like the dialog's.

    The fine-tune runs in a child process (:class:`viewer.qt.finetune.lane.FineTuneLane`: spawned, niced, in
    the idle scheduling class, allocator set by :func:`viewer.ai.finetune_service.create`), so its throughput
    is measured there, training and its inference reference alike. In the benchmark's own process both
    would run under the viewer's ``mallopt`` instead (set by any earlier benchmark that made the
    application), which maps and unmaps every block of 4 MB or more: a training step frees and allocates
    far more of those than a forward, and the ratio fell from 0.30 alone to 0.25–0.28 in whole runs.
    """
    from viewer.base.child_process import ChildProcess
    from viewer.qt.finetune.lane import NICE

    child = ChildProcess("tests.benchmarks.bench_training:measuring_child", nice=NICE, idle=True,
                         name="radview-bench-finetune")
    try:
        return child.call("thread_count"), child.call("steps"), child.call("loops")
    finally:
        child.close()


def run() -> dict:
    threads, steps, loops = measure_in_child()
    inf = steps["inference"]
    ratios = {
        "head_step_throughput": inf / steps["head_step"],
        "full_step_throughput": inf / steps["full_step"],
        "head_loop_throughput": loops["inference"] / loops["head_loop"],
        "full_loop_throughput": loops["inference"] / loops["full_loop"],
        "plain_head_loop_throughput": inf / steps["plain_head_step"],
        "plain_full_loop_throughput": inf / steps["plain_full_step"],
        "engine_over_plain_head_step": steps["head_step"] / steps["plain_head_step"],
        "engine_over_plain_full_step": steps["full_step"] / steps["plain_full_step"],
        "head_cached_step_throughput": inf / steps["head_cached_step"],
    }
    window = finetune_window_updates()
    ratios.update(window_ratios(window))
    return {
        "config": {"arch": "resnet18", "batch": BATCH, "size": SIZE, "threads": threads},
        "seconds_per_batch": {
            **{f"step_{k}": v for k, v in steps.items()},
            **{f"loop_{k}": v for k, v in loops.items()},
        },
        "window_during_finetune": window,
        "ratios": ratios,
        "targets": {**TARGETS, **WINDOW_TARGETS},
        "at_least": list(TARGETS),
    }


if __name__ == "__main__":
    import sys

    if "--window" in sys.argv:
        found = finetune_window_updates()
        print(json.dumps({"window_during_finetune": found, "ratios": window_ratios(found),
                          "targets": WINDOW_TARGETS}, indent=2))
    else:
        print(json.dumps(run(), indent=2))
