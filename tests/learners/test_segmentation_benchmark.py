"""The segmentation benchmark's sentences follow its measurements (made-up rows, no training)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import segmentation as bench  # noqa: E402


def row(n, miou, seconds, singles, selected="decoder/4"):
    return {"n": n, "selected": selected, "selected_miou": miou, "selected_s": seconds, "singles": singles}


def test_target_verdict_is_computed():
    singles = {"decoder/8": 0.78, "decoder/4": 0.83}
    assert "**met**" in bench.verdict([row(20, 0.83, 50.0, singles)])[0]
    assert "**NOT met**" in bench.verdict([row(20, 0.79, 50.0, singles)])[0]
    assert "**NOT met**" in bench.verdict([row(20, 0.85, 61.0, singles)])[0]
    assert "not measured" in bench.verdict([row(8, 0.85, 10.0, singles)])[0]


def test_selection_against_the_best_single_candidate():
    lines = bench.verdict([row(10, 0.70, 30.0, {"decoder/8": 0.75, "decoder/4": 0.72}, selected="decoder/4")])
    assert "-0.050 against the best single candidate (decoder/8, 0.750) — selection cost accuracy here." in lines[1]
    lines = bench.verdict([row(10, 0.75, 30.0, {"decoder/8": 0.75, "decoder/4": 0.72}, selected="decoder/8")])
    assert lines[1].endswith("+0.000 against the best single candidate (decoder/8, 0.750).")
