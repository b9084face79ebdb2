"""CI-size fuzz run (issue 6): a few hundred mutated real DICOM files through the viewer's loading path.

Same harness as ``make fuzz`` (:mod:`tests.hardening.fuzz`), fewer examples and a fixed seed, so CI sees
the same files every run. No crash, no hang, no exception escaping the loader, no example slower than
2 s (twice), no absurd allocation, and every skipped file or failed slice has a one-line reason.
"""

from __future__ import annotations

from .fuzz import run_fuzz

CI_EXAMPLES = 200


def test_mutated_dicom_never_crashes_hangs_or_escapes_the_loader(tmp_path):
    stats = run_fuzz(CI_EXAMPLES, rng_seed=20261122, failures_dir=tmp_path)
    summary = stats.summary()
    print({k: v for k, v in summary.items() if k not in ("reasons", "failures", "operations")})
    assert stats.ok, summary["failures"]
    assert stats.examples == CI_EXAMPLES and stats.files >= CI_EXAMPLES
    # the mutations reach every stage: files skipped at the header, slices failing in a decoder, and
    # series still loaded around them
    assert stats.skipped > 0 and stats.loaded_series > 0 and stats.failed_slices + stats.refused_series > 0
    assert len(stats.reasons) >= 10
