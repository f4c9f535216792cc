"""The segmentation benchmark's sentences follow its measurements (made-up rows, no training)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import segmentation as bench  # noqa: E402


def row(n, arm, miou, seconds=30.0, chosen="stride 8", interval=(0.7, 0.9), scores=2):
    """One arm's row as ``bench.arm`` returns it (only the fields the verdict reads)."""
    return {"n": n, "arm": arm, "miou": miou, "seconds": seconds, "cpu": 2 * seconds, "chosen": chosen,
            "scores": [{}] * scores, "cut_at": None, "cv_miou": 0.8, "interval": interval,
            "method": "3-fold", "how": "folds of photos"}


def arms(n, selected, s8, s4, seconds=50.0, chosen="stride 4"):
    return [row(n, "selected", selected, seconds, chosen), row(n, "stride 8 alone", s8), row(n, "stride 4 alone", s4)]


def test_target_verdict_is_computed():
    assert "**met**" in bench.verdict(arms(20, 0.83, 0.78, 0.83))[0]
    assert "**NOT met**" in bench.verdict(arms(20, 0.79, 0.78, 0.79))[0]
    assert "**NOT met**" in bench.verdict(arms(20, 0.85, 0.78, 0.85, seconds=61.0))[0]
    assert "not measured" in bench.verdict(arms(8, 0.85, 0.80, 0.85))[0]


def test_selection_against_the_best_single_candidate():
    lines = bench.verdict(arms(10, 0.70, 0.75, 0.72))
    assert "-0.050 against the best single candidate run (stride 8 alone, 0.750): worse than it" in lines[1]
    lines = bench.verdict(arms(10, 0.75, 0.75, 0.72, chosen="stride 8"))
    assert "+0.000 against the best single candidate run (stride 8 alone, 0.750): the same as" in lines[1]


def test_estimate_range_is_judged_against_the_held_out_score():
    lines = bench.verdict(arms(10, 0.95, 0.75, 0.72))
    assert "(above the range)" in lines[-1]
    lines = bench.verdict(arms(10, 0.80, 0.75, 0.72))
    assert "(inside the range)" in lines[-1]
