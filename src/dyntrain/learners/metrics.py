"""Classification metrics a non-technical user can read, as plain JSON-ready dicts.

>>> import numpy as np
>>> m = classification_metrics([0, 1, 1], np.array([[.9, .1], [.2, .8], [.6, .4]]), ["cat", "dog"])
>>> m["accuracy"], m["per_class"]["dog"]["recall"], m["confusion_matrix"]
(0.6667, 0.5, [[1, 0], [1, 1]])
>>> m["most_confused"]
[{'true': 'dog', 'predicted': 'cat', 'count': 1}]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..kernel.errors import Invalid

__all__ = ["classification_metrics", "macro_f1", "majority_baseline", "wilson_interval", "bootstrap_interval",
           "classification_intervals", "INTERVAL_LEVEL", "regression_metrics"]

#: Confidence level of the intervals shown with every estimate.
INTERVAL_LEVEL = 0.95

_DIGITS = 4  # rounded: these numbers are shown to people and stored in run records


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> float:
    """Mean F1 over the classes present in ``y_true``.

    Classes absent from ``y_true`` are left out (an absent class has no recall to measure;
    counting it as 0 would punish a CV fold for what it happens not to contain), but wrong
    predictions *of* such a class still lower the recall of the true class.

    >>> macro_f1([0, 0, 1], [0, 1, 1], 3)
    0.6667
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0:
        return 0.0
    _, _, f1, support = _prf(_confusion(y_true, y_pred, n_classes))
    return round(float(f1[support > 0].mean()), _DIGITS)


def classification_metrics(
    y_true: Sequence[int],
    proba: np.ndarray,
    labels: Sequence[str],
    *,
    top_confused: int = 5,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix (rows =
    true, columns = predicted), the most confused (true, predicted) pairs, and per-sample
    predicted index and confidence. ``proba`` is (n, len(labels)); ``y_true`` holds indices.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    labels = [str(label) for label in labels]
    n = len(labels)
    if proba.ndim != 2 or proba.shape != (len(y_true), n):
        raise Invalid(f"proba must have shape ({len(y_true)}, {n}), got {proba.shape}")
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= n):
        raise Invalid(f"y_true must hold indices into labels (0..{n - 1})")
    y_pred = proba.argmax(axis=1) if len(proba) else np.zeros(0, np.int64)
    confidence = proba.max(axis=1) if len(proba) else np.zeros(0)
    cm = _confusion(y_true, y_pred, n)
    precision, recall, f1, support = _prf(cm)
    off = [(int(cm[i, j]), i, j) for i in range(n) for j in range(n) if i != j and cm[i, j] > 0]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return {
        "n_samples": int(len(y_true)),
        "accuracy": round(float((y_pred == y_true).mean()), _DIGITS) if len(y_true) else 0.0,
        "macro_f1": macro_f1(y_true, y_pred, n),
        "per_class": {
            labels[i]: {
                "precision": round(float(precision[i]), _DIGITS),
                "recall": round(float(recall[i]), _DIGITS),
                "f1": round(float(f1[i]), _DIGITS),
                "support": int(support[i]),
            }
            for i in range(n)
        },
        "labels": labels,
        "confusion_matrix": cm.tolist(),
        "most_confused": [{"true": labels[i], "predicted": labels[j], "count": c} for c, i, j in off[:top_confused]],
        "predicted": [int(p) for p in y_pred],
        "confidence": [round(float(c), _DIGITS) for c in confidence],
    }


def majority_baseline(y_train: Sequence[int], y_test: Sequence[int], n_classes: int) -> dict[str, float]:
    """Score of always predicting the most frequent training class (ties: lowest index).

    The number any model must beat; shown next to a model's scores.

    >>> majority_baseline([0, 1, 1], [1, 1, 0, 2], 3)
    {'accuracy': 0.5, 'macro_f1': 0.2222}
    """
    y_train = np.asarray(y_train, dtype=np.int64)
    y_test = np.asarray(y_test, dtype=np.int64)
    majority = int(np.bincount(y_train, minlength=n_classes).argmax())
    pred = np.full(len(y_test), majority)
    acc = round(float((pred == y_test).mean()), _DIGITS) if len(y_test) else 0.0
    return {"accuracy": acc, "macro_f1": macro_f1(y_test, pred, n_classes)}


def wilson_interval(correct: int, n: int, level: float = INTERVAL_LEVEL) -> list[float]:
    """Wilson score interval of a proportion (accuracy = correct / n): unlike mean ± 2 SE it
    stays inside [0, 1] and is not zero-width at 10/10, which few-shot scores often are.

    >>> wilson_interval(9, 10)
    [0.5958, 0.9821]
    """
    from scipy.stats import binomtest

    if n <= 0:
        return [0.0, 1.0]
    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return [round(float(ci.low), _DIGITS), round(float(ci.high), _DIGITS)]


def bootstrap_interval(statistic, *arrays: np.ndarray, level: float = INTERVAL_LEVEL, seed: int = 0,
                       n_resamples: int = 1000) -> list[float]:
    """Percentile bootstrap interval of ``statistic(*arrays)`` resampling rows (paired).

    >>> bootstrap_interval(lambda t, p: float(np.mean(t == p)), np.array([0, 1] * 10), np.array([0, 1] * 10))
    [1.0, 1.0]
    """
    from scipy.stats import bootstrap

    arrays = tuple(np.asarray(a) for a in arrays)
    if len(arrays[0]) < 2:
        value = float(statistic(*arrays)) if len(arrays[0]) else 0.0
        return [round(value, _DIGITS), round(value, _DIGITS)]
    with np.errstate(all="ignore"):
        res = bootstrap(arrays, statistic, paired=True, vectorized=False, confidence_level=level,
                        n_resamples=n_resamples, method="percentile", random_state=seed)
    lo, hi = res.confidence_interval
    return [round(float(lo), _DIGITS), round(float(hi), _DIGITS)]


def classification_intervals(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int,
                             level: float = INTERVAL_LEVEL) -> dict[str, list[float]]:
    """Intervals for an estimate made on samples no choice was made on: Wilson for accuracy,
    a paired bootstrap over samples for macro-F1 (it has no closed form).

    >>> classification_intervals([0, 0, 1, 1], [0, 0, 1, 0], 2)["accuracy"]
    [0.3006, 0.9544]
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return {"accuracy": wilson_interval(int((y_true == y_pred).sum()), len(y_true), level),
            "macro_f1": bootstrap_interval(lambda t, p: macro_f1(t, p, n_classes), y_true, y_pred, level=level)}


def _sig(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float], *, max_points: int = 200) -> dict[str, Any]:
    """MAE, RMSE, R² (scikit-learn's), ``n``, and up to ``max_points`` evenly spread
    ``{index, true, predicted}`` pairs for a predicted-vs-actual plot. Errors are in the
    target's unit, rounded to 6 significant digits; R² to 4 decimals (None if n < 2).

    >>> m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.0])
    >>> m["mae"], m["rmse"], m["r2"], m["n"], m["points"][0]
    (0.25, 0.353553, 0.9, 4, {'index': 0, 'true': 1.0, 'predicted': 1.5})
    """
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise Invalid(f"y_true has {len(t)} values but y_pred has {len(p)}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise Invalid("y_true and y_pred must be finite numbers")
    n = len(t)
    if n == 0:
        return {"mae": None, "rmse": None, "r2": None, "n": 0, "points": []}
    idx = np.unique(np.linspace(0, n - 1, min(n, max(int(max_points), 0))).round().astype(np.int64))
    return {
        "mae": _sig(mean_absolute_error(t, p)),
        "rmse": _sig(root_mean_squared_error(t, p)),
        "r2": round(float(r2_score(t, p)), 4) if n >= 2 else None,
        "n": n,
        "points": [{"index": int(i), "true": _sig(t[i]), "predicted": _sig(p[i])} for i in idx],
    }
