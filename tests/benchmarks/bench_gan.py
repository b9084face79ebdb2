"""GAN augmentation measured honestly: the same splits and seeds with and without it (issue K, seeds 001/002).

Called by ``tests/benchmarks/run.py`` (``make bench``) as :func:`run`; also runnable alone
(``python -m tests.benchmarks.bench_gan`` prints the JSON).

Data: the demo CTs with the project's synthetic nodules (:func:`tests.finetune_sets.demo_slices`: blocks of
12 slices as patients, split train/validation/test by block, the same split for every run). Two settings
where labels are scarce, each run for seeds :data:`SEEDS` with and without ``Augmentation(gan=True)``
(the defaults: one generated positive per real one, 600 steps at 64 px):

- ``smallcnn``: the seed paper's network from scratch at 64 px, Adam 1e-3, batch 16, up to 30 epochs,
  early stopping (patience 5), on 10-20 mm nodules;
- ``demo-nodule``: the shipped model with a new head, last block + head, 8 epochs (a reader's fine-tune),
  on 4-7 mm nodules, where the base model is not at the ceiling (test AUC 0.886 before).

Reported per setting: test AUC of each seed with and without, their mean difference (``lift``), and the
seconds a run takes with and without. No target: the figure is what it is (README).
"""

from __future__ import annotations

import json
import statistics
import time

SEEDS = (0, 1, 2)


def _settings() -> dict:
    from models.finetune.config import FineTuneConfig
    from tests.finetune_sets import DEMO, SMALL

    demo_pre = FineTuneConfig(base=str(DEMO)).preprocess_config()
    scratch = dict(arch="smallcnn", preprocessing=SMALL, mode="full", epochs=30, batch_size=16, lr=1e-3, patience=5)
    finetune = dict(base=str(DEMO), mode="last", reset_head=True, epochs=8, batch_size=16, lr=1e-3, patience=0)
    return {"smallcnn": ((10.0, 20.0), SMALL, scratch), "demo-nodule": ((4.0, 7.0), demo_pre, finetune)}


def run() -> dict:
    from models.finetune.config import Augmentation, FineTuneConfig
    from models.finetune.run import train
    from tests.finetune_sets import demo_slices, sets_for

    out: dict = {"seeds": list(SEEDS), "settings": {}, "ratios": {}}
    for name, (diameters, pre, kw) in _settings().items():
        sets = sets_for(demo_slices(diameters), pre)
        rows: dict[str, list] = {"without": [], "with": []}
        seconds: dict[str, list] = {"without": [], "with": []}
        kept: dict[str, list] = {"without": [], "with": []}
        for seed in SEEDS:
            for arm, gan in (("without", False), ("with", True)):
                cfg = FineTuneConfig(**kw, seed=seed, device="cpu", augment=Augmentation(gan=gan))
                t = time.perf_counter()
                result = train(cfg, sets["train"], sets["val"], sets["test"]).run_to_end()
                seconds[arm].append(time.perf_counter() - t)
                rows[arm].append(result.metrics["test"].auc)
                kept[arm].append(result.best_epoch)
        lift = statistics.mean(w - wo for w, wo in zip(rows["with"], rows["without"], strict=True))
        out["settings"][name] = {
            "images": {k: len(v) for k, v in sets.items()},
            "positives": {k: v.n_positive for k, v in sets.items()},
            "nodule_diameter_mm": list(diameters), "test_auc": rows, "best_epoch": kept,
            "before_test_auc": result.before["test"].auc if result.before else None,
            "seconds": {k: statistics.mean(v) for k, v in seconds.items()},
            "mean_test_auc": {k: statistics.mean(v) for k, v in rows.items()}, "lift": lift,
        }
        out["ratios"][f"gan_test_auc_lift_{name}"] = lift
        print(f"{name}: test AUC without {rows['without']}, with {rows['with']}", flush=True)
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
