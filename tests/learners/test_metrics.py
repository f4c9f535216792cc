from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from dyntrain.kernel.errors import Invalid
from dyntrain.learners import classification_metrics, macro_f1, majority_baseline


def test_matches_sklearn_and_is_json():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    proba = rng.random((200, 4))
    proba[np.arange(200), y] += rng.random(200)  # better than chance
    proba /= proba.sum(1, keepdims=True)
    labels = ["a", "b", "c", "d"]
    m = classification_metrics(y, proba, labels)
    pred = proba.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-4)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-4)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=[0, 1, 2, 3], zero_division=0)
    for i, label in enumerate(labels):
        assert m["per_class"][label]["precision"] == pytest.approx(p[i], abs=1e-4)
        assert m["per_class"][label]["recall"] == pytest.approx(r[i], abs=1e-4)
        assert m["per_class"][label]["f1"] == pytest.approx(f[i], abs=1e-4)
        assert m["per_class"][label]["support"] == s[i]
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == 200 and np.all(cm.sum(1) == s)  # rows = true class
    assert m["predicted"] == pred.tolist() and len(m["confidence"]) == 200
    counts = [c["count"] for c in m["most_confused"]]
    assert counts == sorted(counts, reverse=True) and counts[0] == cm[~np.eye(4, dtype=bool)].max()
    json.dumps(m)


def test_absent_class_and_errors():
    m = classification_metrics([0, 0], np.array([[0.9, 0.1, 0.0], [0.2, 0.0, 0.8]]), ["x", "y", "z"])
    assert m["per_class"]["y"]["support"] == 0 and m["macro_f1"] == macro_f1([0, 0], [0, 2], 3)
    with pytest.raises(Invalid):
        classification_metrics([0, 1], np.ones((2, 3)) / 3, ["a", "b"])
    assert classification_metrics([], np.zeros((0, 2)), ["a", "b"])["n_samples"] == 0


def test_majority_baseline():
    assert majority_baseline([1, 1, 0], [1, 0], 2) == {"accuracy": 0.5, "macro_f1": round(2 / 3 / 2, 4)}


def test_intervals_of_an_estimate_are_wilson_and_bootstrap_and_narrow_with_more_samples():
    from dyntrain.learners.metrics import bootstrap_interval, classification_intervals, wilson_interval

    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and 0.65 < lo < 0.75  # 10/10 is not "certainly 100%"
    small = classification_intervals([0, 1] * 5, [0, 1] * 4 + [1, 0], 2)
    big = classification_intervals([0, 1] * 50, [0, 1] * 40 + [1, 0] * 10, 2)
    for m in ("accuracy", "macro_f1"):
        assert small[m][0] <= 0.8 <= small[m][1] and big[m][0] <= 0.8 <= big[m][1]
        assert big[m][1] - big[m][0] < small[m][1] - small[m][0]
    assert bootstrap_interval(lambda a: float(np.mean(a)), np.array([3.0])) == [3.0, 3.0]
    assert wilson_interval(0, 0) == [0.0, 1.0]
