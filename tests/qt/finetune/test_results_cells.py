"""The fine-tune results' honesty on small samples: 95 % Wilson intervals in the table, and a warning."""

from __future__ import annotations

import numpy as np

from viewer.ai.finetune_service import PreparedSummary, binary_metrics
from viewer.qt.finetune.dialog import small_sample_note
from viewer.qt.finetune.results_page import cell_text


def test_perfect_scores_on_ten_images_carry_a_wide_interval() -> None:
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.95, 0.7, 0.85, 0.1, 0.2, 0.05, 0.3, 0.15])
    m = binary_metrics(y, p, 0.5)
    assert cell_text(m, "accuracy") == "1.000 (0.72–1.00)"  # Wilson, 10 of 10
    assert cell_text(m, "sensitivity") == "1.000 (0.57–1.00)"  # 5 of 5
    assert cell_text(m, "auc") == "1.000"  # not a proportion: no interval


def test_a_split_of_one_patient_gets_the_small_sample_warning() -> None:
    small = PreparedSummary(splits={"train": (60, 20, 5), "val": (10, 5, 1)}, classes=("no nodule", "nodule"),
                            class_map={"no nodule": 0, "nodule": 1}, skipped=(), seconds_per_epoch=1.0)
    note = small_sample_note(small)
    assert "val 10 image(s) from 1 patient(s)" in note and "chance" in note
    large = PreparedSummary(splits={"train": (600, 200, 50), "val": (100, 50, 10), "test": (120, 40, 12)},
                            classes=("no nodule", "nodule"), class_map={"no nodule": 0, "nodule": 1}, skipped=(),
                            seconds_per_epoch=1.0)
    assert small_sample_note(large) == ""
