"""The run page's per-class view: precision, recall and F1 of each class at every confidence
threshold, and the new model beside the one in service, class by class, in words.

Both read only what a run records: one held-out (or out-of-fold) prediction per evaluated
example with its confidence (``metrics["predictions"]``), and the gate's per-class scores and
confusion matrices of both models on the same examples. The slider's figures are all computed
here, once, so the page's script only shows them and cannot disagree with the server.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["threshold_table", "step_of", "compare_classes", "STEPS"]

#: Thresholds the slider offers: 0%, 1%, … 99% (serving answers "not sure" below the threshold).
STEPS = 100


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return round(2 * p * r / (p + r), 4) if p + r else 0.0


def step_of(threshold: float) -> int:
    """The slider step a threshold falls on (thresholds are kept to whole percents)."""
    return max(0, min(STEPS - 1, round(float(threshold) * 100)))


def threshold_table(predictions: list[dict[str, Any]], labels: list[str]) -> dict[str, Any]:
    """What each threshold would do, from one prediction per evaluated example.

    At threshold ``t`` the model answers an example when its confidence is at least ``t`` (as
    serving does) and says "not sure" otherwise. For each step: how many it answers and how many
    of those are right, and per class (in ``labels`` order) precision among its answers, recall
    (right answers over all examples of the class: a "not sure" counts as missed) and F1.

    >>> preds = [{"true": "a", "predicted": "a", "confidence": 0.9},
    ...          {"true": "a", "predicted": "b", "confidence": 0.55},
    ...          {"true": "b", "predicted": "b", "confidence": 0.8},
    ...          {"true": "b", "predicted": "b", "confidence": 0.4}]
    >>> t = threshold_table(preds, ["a", "b"])
    >>> t["n"], t["steps"][0]["answered"], t["steps"][0]["right"]
    (4, 4, 3)
    >>> s = t["steps"][60]  # at 60%: the 0.55 mistake and the 0.4 right answer become "not sure"
    >>> s["answered"], s["right"], s["classes"][1]
    (2, 2, {'precision': 1.0, 'recall': 0.5, 'f1': 0.6667, 'answered': 1, 'examples': 2})
    """
    index = {label: k for k, label in enumerate(labels)}
    kept = [p for p in predictions if p.get("true") in index and p.get("predicted") in index]
    conf = np.array([float(p.get("confidence") or 0.0) for p in kept])
    true = np.array([index[p["true"]] for p in kept], dtype=np.int64)
    said_as = np.array([index[p["predicted"]] for p in kept], dtype=np.int64)
    n, width = len(kept), len(labels)
    support = np.bincount(true, minlength=width)
    right_ones = said_as == true
    all_right = int(right_ones.sum())
    steps = []
    for k in range(STEPS):
        cut = k / 100
        answered_ones = conf + 1e-9 >= cut  # 4-decimal confidences against whole percents: no rounding decides
        said = np.bincount(said_as[answered_ones], minlength=width)
        hit = np.bincount(said_as[answered_ones & right_ones], minlength=width)
        classes = []
        for c in range(width):
            precision, recall = _ratio(int(hit[c]), int(said[c])), _ratio(int(hit[c]), int(support[c]))
            classes.append({"precision": precision, "recall": recall, "f1": _f1(precision, recall),
                            "answered": int(said[c]), "examples": int(support[c])})
        answered, right = int(said.sum()), int(hit.sum())
        steps.append({"threshold": cut, "answered": answered, "right": right, "coverage": _ratio(answered, n),
                      "accuracy": _ratio(right, answered), "classes": classes,
                      "words": _words(k, n, answered, right, all_right)})
    return {"n": n, "labels": list(labels), "steps": steps}


def _words(percent: int, n: int, answered: int, right: int, all_right: int) -> str:
    """What a threshold does, in a sentence.

    >>> _words(70, 50, 42, 41, 44)
    'At 70%: the model answers 42 of 50 examples (84%) and is right on 98% of those. 5 of its 6 mistakes become “not sure”, and so do 3 right answers.'
    """
    if answered == n:
        return (f"At {percent}%: the model answers all {n} examples and is right on {_pct(right / n)} of them."
                if n else "There are no examples to measure on.")
    if not answered:
        return f"At {percent}%: the model answers none of the {n} examples: it would always say “not sure”."
    wrong_all, wrong_now = n - all_right, answered - right
    text = (f"At {percent}%: the model answers {answered} of {n} examples ({_pct(answered / n)}) and is right on "
            f"{_pct(right / answered)} of those.")
    held, lost = wrong_all - wrong_now, all_right - right
    if wrong_all:
        text += f" {held} of its {wrong_all} mistake{'' if wrong_all == 1 else 's'} become “not sure”"
        text += f", and so do {lost} right answer{'' if lost == 1 else 's'}." if lost else "."
    else:
        text += f" It made no mistakes; {lost} right answer{'' if lost == 1 else 's'} become “not sure”."
    return text


def _mixups(metrics: dict[str, Any]) -> dict[frozenset, tuple[int, int]] | None:
    """Per pair of classes: (times one was taken for the other, examples of the two)."""
    labels, cm = metrics.get("labels"), metrics.get("confusion_matrix")
    if not labels or not cm:
        return None
    out = {}
    for i, a in enumerate(labels):
        for j in range(i + 1, len(labels)):
            out[frozenset((a, labels[j]))] = (cm[i][j] + cm[j][i], sum(cm[i]) + sum(cm[j]))
    return out


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def compare_classes(old: dict[str, Any] | None, new: dict[str, Any] | None, version: int | None,
                    *, min_change: float = 0.05) -> list[dict[str, Any]]:
    """The new model against the one in service, class by class, in words: which pairs of
    classes it tells apart better or worse (from both confusion matrices on the same examples),
    then which classes it recognises more or less often. Changes under ``min_change`` (a share
    of the examples) are left out: on a few dozen examples they are one example either way.

    >>> old = {"labels": ["cat", "dog"], "confusion_matrix": [[6, 4], [1, 9]],
    ...        "per_class": {"cat": {"recall": 0.6}, "dog": {"recall": 0.9}}}
    >>> new = {"labels": ["cat", "dog"], "confusion_matrix": [[9, 1], [1, 9]],
    ...        "per_class": {"cat": {"recall": 0.9}, "dog": {"recall": 0.9}}}
    >>> [s["sentence"] for s in compare_classes(old, new, 3)]  # doctest: +NORMALIZE_WHITESPACE
    ['Better at telling “cat” from “dog”: mixes them up in 10% of their examples instead of 25%.',
     'Recognises “cat” correctly 90% of the time instead of 60%.']
    """
    if not old or not new or version is None:
        return []
    out: list[dict[str, Any]] = []
    before, after = _mixups(old), _mixups(new)
    if before and after:
        for pair in sorted(before.keys() & after.keys(), key=lambda p: sorted(p)):
            (b, nb), (a, na) = before[pair], after[pair]
            if not nb or not na:
                continue
            rb, ra = b / nb, a / na
            if abs(ra - rb) < min_change:
                continue
            x, y = sorted(pair)
            word = "Better" if ra < rb else "Worse"
            out.append({"level": "good" if ra < rb else "bad", "change": rb - ra,
                        "sentence": f"{word} at telling “{x}” from “{y}”: mixes them up in {_pct(ra)} of their "
                                    f"examples instead of {_pct(rb)}."})
    out.sort(key=lambda s: -abs(s["change"]))
    classes: list[dict[str, Any]] = []
    old_pc, new_pc = old.get("per_class") or {}, new.get("per_class") or {}
    for label in sorted(old_pc.keys() & new_pc.keys()):
        rb, ra = old_pc[label].get("recall"), new_pc[label].get("recall")
        if rb is None or ra is None or abs(ra - rb) < min_change:
            continue
        classes.append({"level": "good" if ra > rb else "bad", "change": ra - rb,
                    "sentence": f"Recognises “{label}” correctly {_pct(ra)} of the time instead of {_pct(rb)}."})
    classes.sort(key=lambda s: -abs(s["change"]))
    for label in sorted(new_pc.keys() - old_pc.keys()):
        classes.append({"level": "info", "change": 0.0,
                        "sentence": f"Knows “{label}”, which version {version} could not be scored on."})
    return out + classes
