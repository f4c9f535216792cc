"""The promotion gate's rules, one by one (registry/gate.py), and its doctests."""

from __future__ import annotations

import doctest

import numpy as np

from dyntrain.kernel.project_settings import ProjectSettings
from dyntrain.registry import gate
from dyntrain.registry.gate import MIN_UNSEEN, decide, estimate_sentence, measure_served, summary

IMG, REG = "image-classification", "tabular-regression"
S = ProjectSettings()  # macro_f1, tolerance 0.01, class recall tolerance 0.05


def cls(f1, **recall):
    return {"macro_f1": f1, "accuracy": f1, "per_class": {k: {"recall": v, "support": 10} for k, v in recall.items()}}


def served(old, new, n=20, enough=True, note=None):
    return {"version": 1, "n": n, "enough": enough, "note": note, "metrics": old, "new": new}


def test_doctests_of_the_gate_pass():
    assert doctest.testmod(gate).failed == 0


def test_first_model_must_beat_always_guessing_the_largest_class():
    ok, why = decide(cls(0.6), None, {"macro_f1": 0.3}, S, task=IMG)
    assert ok and "first model" in why
    ok, why = decide(cls(0.3), None, {"macro_f1": 0.3}, S, task=IMG)
    assert not ok and "largest class" in why


def test_metric_drop_beyond_tolerance_keeps_back_within_passes():
    assert decide(cls(0.895, a=1.0), cls(0.90, a=1.0), {}, S, task=IMG)[0]
    ok, why = decide(cls(0.88, a=1.0), cls(0.90, a=1.0), {}, S, task=IMG)
    assert not ok and "macro_f1 would drop from 0.900 to 0.880" in why and "stays" in why


def test_per_class_recall_drop_keeps_back():
    ok, why = decide(cls(0.90, a=1.0, b=0.8), cls(0.90, a=1.0, b=0.9), {}, S, task=IMG)
    assert not ok and "b 0.90→0.80" in why
    assert decide(cls(0.90, a=1.0, b=0.87), cls(0.90, a=1.0, b=0.9), {}, S, task=IMG)[0]


def test_regression_r2_and_mae_rules_read_the_task_not_the_keys():
    r2, mae = ProjectSettings(gate_metric="r2"), ProjectSettings(gate_metric="mae", gate_tolerance=0.05)
    assert not decide({"r2": 0.6, "mae": 3}, {"r2": 0.7, "mae": 3}, {}, r2, task=REG)[0]
    assert decide({"r2": 0.695, "mae": 3}, {"r2": 0.7, "mae": 3}, {}, r2, task=REG)[0]
    assert not decide({"r2": 0.9, "mae": 10.6}, {"r2": 0.2, "mae": 10.0}, {}, mae, task=REG)[0]
    assert decide({"r2": 0.1, "mae": 10.4}, {"r2": 0.2, "mae": 10.0}, {}, mae, task=REG)[0]
    ok, why = decide({"r2": -0.2, "mae": 7}, None, {"r2": -0.01, "mae": 6}, r2, task=REG)
    assert not ok and "average" in why
    # a classification project whose metrics happen to carry "r2" is still judged as classification
    ok, why = decide({"r2": 0.9, **cls(0.5)}, cls(0.9), {}, S, task=IMG)
    assert not ok and "macro_f1" in why


def test_worse_than_the_served_file_keeps_back_even_when_the_refit_is_equal():
    same = cls(0.95, a=1.0, b=0.9)  # a quick retrain's refit: its own configuration, same data
    ok, why = decide(same, same, {}, S, task=IMG, served=served(cls(0.96), cls(0.80)))
    assert not ok and "model in service (version 1) on 20 examples it never trained on" in why and "stays" in why


def test_worse_than_the_refit_keeps_back_even_when_better_than_the_served_file():
    ok, why = decide(cls(0.80), cls(0.95), {}, S, task=IMG, served=served(cls(0.70), cls(0.90)))
    assert not ok and "re-trained on the same data" in why


def test_not_worse_than_both_promotes_and_names_both():
    ok, why = decide(cls(0.95), cls(0.94), {}, S, task=IMG, served=served(cls(0.90), cls(0.92)))
    assert ok and "model in service" in why and "re-trained" in why


def test_too_few_unseen_samples_decide_on_the_refit_and_say_so():
    few = served(cls(1.0), cls(0.0), n=3, enough=False, note="only 3 evaluation examples …")
    ok, why = decide(cls(0.95), cls(0.94), {}, S, task=IMG, served=few)
    assert ok and "not compared with the model in service itself: only 3" in why
    # no refit either (an uploaded model in service): nothing fair to compare with, keep it
    ok, why = decide(cls(0.95), None, {}, S, task=IMG, served=few)
    assert not ok and "no fair comparison" in why


def test_served_comparison_recall_needs_enough_examples_of_the_class():
    old = {"macro_f1": 0.9, "per_class": {"a": {"recall": 1.0, "support": 2}, "b": {"recall": 0.9, "support": 10}}}
    new = {"macro_f1": 0.9, "per_class": {"a": {"recall": 0.5, "support": 2}, "b": {"recall": 0.9, "support": 10}}}
    assert decide(new, None, {}, S, task=IMG, served=served(old, new))[0]  # 2 examples of a: noise
    assert not decide(new, old, {}, S, task=IMG)[0]  # the refit compares on the full holdout


def _predictions(truth, said, prefix="h"):
    return [{"sample_id": i, "content_hash": f"{prefix}{i}", "true": t, "predicted": p, "confidence": 0.9}
            for i, (t, p) in enumerate(zip(truth, said))]


def test_measure_served_scores_only_unseen_samples_of_known_classes():
    truth = ["a", "b"] * 6 + ["c"]
    preds = _predictions(truth, ["a"] * 13)  # the new model always says a
    asked = []

    def run_served(samples):
        asked.extend(p["content_hash"] for p in samples)
        return np.array([[1.0, 0.0] if p["true"] == "a" else [0.0, 1.0] for p in samples])  # always right

    record = measure_served(preds, {"h0", "h1"}, ["a", "b"], IMG, run_served, version=4)
    assert asked == [f"h{i}" for i in range(2, 12)]  # trained-on h0/h1 and unknown class c left out
    assert record["n"] == 10 and record["enough"] and record["left_out_seen"] == 2
    assert record["left_out_unknown_class"] == 1
    assert record["metrics"]["accuracy"] == 1.0 and record["new"]["accuracy"] == 0.5
    assert record["new"]["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 5}


def test_measure_served_says_when_too_few_or_a_class_is_missing():
    right = lambda samples: np.eye(2)[[0 if p["true"] == "a" else 1 for p in samples]]  # noqa: E731
    few = measure_served(_predictions(["a", "b", "a"], ["a", "b", "a"]), set(), ["a", "b"], IMG, right, version=1)
    assert not few["enough"] and f"at least {MIN_UNSEEN} needed" in few["note"]
    assert "only 3 of the evaluation examples" in few["note"]  # the target's own word for its samples
    preds = _predictions(["a"] * 6 + ["b"] * 3, ["a"] * 9)
    seen_b = {p["content_hash"] for p in preds if p["true"] == "b"}
    missing = measure_served(preds, seen_b, ["a", "b"], IMG, right, version=1)
    assert not missing["enough"] and "for: b" in missing["note"]


def test_measure_served_regression():
    preds = [{"sample_id": i, "content_hash": f"r{i}", "true": float(i), "predicted": float(i) + 2, "error": 2.0}
             for i in range(8)]
    record = measure_served(preds, {"r0"}, [], REG, lambda s: np.array([[p["true"]] for p in s]), version=2)
    assert record["n"] == 7 and record["enough"]
    assert record["metrics"]["r2"] == 1.0 and record["metrics"]["mae"] == 0.0 and record["new"]["mae"] == 2.0
    ok, why = decide({"r2": 0.9, "mae": 2.0}, {"r2": 0.9, "mae": 2.0}, {}, ProjectSettings(gate_metric="r2"),
                     task=REG, served=record)
    assert not ok and "r2 would drop from 1.000" in why


def test_plain_words_for_history():
    kept = {"promoted": False, "served": served({"accuracy": 0.96}, {"accuracy": 0.92}, n=25)}
    assert summary(kept, IMG) == ("The model in service was right 96% of the time on 25 examples it had never seen; "
                                  "the new one 92%: kept the one in service.")
    assert summary({"promoted": True, "reason": "…"}, IMG) is None  # a run recorded before the served comparison
    few = served(None, None, n=2, enough=False, note="only 2 evaluation examples …")
    assert summary({"promoted": True, "served": few, "refit": cls(0.9)}, IMG).endswith(
        "re-trained configuration decided: put the new one into service.")
    assert "nothing else was fair" in summary({"promoted": False, "served": few, "refit": None}, IMG)
    reg = {"promoted": True, "served": served({"r2": 0.81, "mae": 3.2}, {"r2": 0.85, "mae": 3.0}, n=30)}
    assert "R² 0.810 (mean error 3.2" in summary(reg, REG) and "put the new one into service" in summary(reg, REG)
    s = served({"accuracy": 0.82}, {"accuracy": 0.9}, n=40) | {"estimate": {"accuracy": 0.85, "interval": [0.7, 0.95]}}
    assert estimate_sentence(s, IMG) == "estimated 85% (70-95%), measured later 82% on 40 new examples"
    assert estimate_sentence(s | {"estimate": {"accuracy": 0.85}}, IMG) == \
        "estimated 85%, measured later 82% on 40 new examples"


def test_measure_served_runs_the_file_on_at_most_max_scored_samples(monkeypatch):
    monkeypatch.setattr(gate, "MAX_SCORED", 6)
    preds = _predictions(["a", "b"] * 5, ["a", "b"] * 5)
    record = measure_served(preds, set(), ["a", "b"], IMG, lambda s: np.eye(2)[[int(p["true"] == "b") for p in s]],
                            version=1)
    assert record["n"] == 6 and record["not_scored"] == 4 and record["metrics"]["n_samples"] == 6


def test_capping_keeps_a_rare_class(monkeypatch):
    """1000 common samples and 5 of a rare class: the capped subset still holds every rare one, so the
    served-file comparison (and its per-class recall check) is not switched off by the cap."""
    monkeypatch.setattr(gate, "MAX_SCORED", 20)
    preds = _predictions(["a"] * 200 + ["b"] * 5, ["a"] * 200 + ["b"] * 5)
    record = measure_served(preds, set(), ["a", "b"], IMG, lambda s: np.eye(2)[[int(p["true"] == "b") for p in s]],
                            version=1)
    assert record["n"] == 20 and record["metrics"]["per_class"]["b"]["support"] == 5


def test_measure_served_regression_needs_different_targets():
    preds = [{"sample_id": i, "content_hash": f"r{i}", "true": 3.0, "predicted": 3.0, "error": 0.0} for i in range(6)]
    record = measure_served(preds, set(), [], REG, lambda s: np.full((len(s), 1), 3.0), version=1)
    assert not record["enough"] and "same target" in record["note"]
