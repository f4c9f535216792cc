"""benchmarks/recommendation.py states what its run measured: verdicts computed from the figures."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import recommendation as bench  # noqa: E402


def _run(selected: float, singles: dict[str, float]) -> dict:
    rows = {"selected": {"ndcg": selected, "chosen": "item_knn(K=100)"}}
    rows.update({name: {"ndcg": v} for name, v in singles.items()})
    return {"rows": rows}


def test_selection_verdict_follows_the_gap():
    runs = {"MovieLens": [_run(0.0700, {"popularity": 0.04, "item_knn(K=100)": 0.07, "als(factors=32)": 0.0795}),
                          _run(0.0633, {"popularity": 0.04, "item_knn(K=100)": 0.0633, "als(factors=32)": 0.0764})]}
    rows, met, total = bench.verdict_rows(runs)
    assert (met, total) == (1, 2)
    assert rows[0][5] == "-0.95" and rows[0][6] == "yes" and rows[0][4] == "als(factors=32) (7.95)"
    assert rows[1][5] == "-1.31" and rows[1][6] == "**NO**"
    assert rows[1][7] == "+2.33"


def _retrain(total_s: float) -> dict:
    return {"learner": "als", "selected": True, "warm_total_s": total_s, "warm_final_s": 2.0,
            "full_total_s": 40.0, "full_final_s": 18.0, "warm_ndcg": 0.05, "full_ndcg": 0.051}


def test_retrain_verdict_follows_the_time_and_scale():
    assert "**met**" in bench.retrain_sentence([_retrain(12.0)], at_scale=True)
    missed = bench.retrain_sentence([_retrain(31.0)], at_scale=True)
    assert "**MISSED**" in missed and "31.0 s" in missed
    assert "warm-started" in bench.retrain_sentence([_retrain(12.0)], at_scale=True)
    knn = dict(_retrain(12.0), learner="item_knn")
    assert "from scratch" in bench.retrain_sentence([knn], at_scale=True)
    small = bench.retrain_sentence([_retrain(1.0)], at_scale=False)
    assert "**met**" not in small and "not judged" in small
