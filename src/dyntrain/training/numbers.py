"""The number target's training stages (regression): values as floats, K-fold evaluation, R²
selection under the one-standard-error rule, the training mean as baseline.

The one training run (:mod:`dyntrain.training.pipeline`) calls these through
:data:`NUMBER_STAGES`; the class target's counterparts are in :mod:`dyntrain.training.classes`.

* **Labels** are the targets as canonical number text (see :func:`dyntrain.codecs.tables.target_text`),
  so a dataset version's (content hash, label) pairs are exact.
* **Evaluation**: the holdout is chosen by content hash as for classification, and used when
  it holds at least ``2 × min_holdout_per_class`` rows (a two-class problem's minimum);
  otherwise nested K-fold cross-validation on every row (selection re-run inside each outer
  training part, so no scored row chose the model), and the final model trains on all. The
  shown R² and MAE come with 95% bootstrap intervals (``metrics["interval"]``).
* **Selection** cross-validates every candidate on the same K folds of the training part and
  keeps the best pooled out-of-fold R² under the one-standard-error rule (a linear model
  within one standard error of the fold R² of the best wins over trees; ties: the earlier,
  cheaper one). The first three
  candidates always run; later ones only while the time budget lasts (recorded in ``cut_at``).
* **Baseline**: always predicting the training mean, scored the same way — the first model
  must beat it.
* **Comparison**: the production model's configuration is re-fitted and scored on exactly the
  same rows and folds, for the gate.
* **Data recipes**: none (augmentation and balancing are about classes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..kernel.entities import VersionItem
from ..kernel.errors import Invalid
from ..learners import selection
from ..learners.metrics import INTERVAL_LEVEL, bootstrap_interval
from ..learners.metrics import regression_metrics
from .augmentation import NO_RECIPE, Recipe
from .spec import Prepared, TrainingSpec
from .split import is_holdout

__all__ = ["NUMBER_STAGES", "NumberStages", "evaluate_regression", "nested_regression", "select_regression",
           "MIN_ROWS"]

#: Fewest rows a regression run accepts (also what the target histogram needs to look trainable).
MIN_ROWS = 4


class NumberStages:
    """What a run of a number target does differently (see the pipeline's module docstring)."""

    recipes = False  # augmentation and balancing are about classes

    def encode(self, items: list[VersionItem], spec: TrainingSpec) -> tuple[list[VersionItem], list[str], np.ndarray,
                                                                              dict[str, int]]:
        """(items, no classes, the targets as floats, nothing waiting); refuses data with nothing to learn."""
        y = []
        for i in items:
            try:
                y.append(float(i.label))
            except ValueError:
                raise Invalid(f"sample {i.sample_id} has target {i.label!r}, which is not a number") from None
        y = np.asarray(y, np.float64)
        if len(y) < MIN_ROWS:
            raise Invalid(f"regression needs at least {MIN_ROWS} rows; dataset version {spec.dataset_version} has "
                          f"{len(y)}. Add more rows.")
        if len(np.unique(y)) < 2:
            raise Invalid(f"every row has the same target ({items[0].label}): there is nothing to learn. "
                          "Add rows with other target values.")
        return items, [], y, {}

    def plan(self, items: list[VersionItem], spec: TrainingSpec) -> dict[str, Any]:
        return _plan([i.content_hash for i in items], spec.holdout_fraction, spec.min_holdout_per_class)

    def describe(self, data: Prepared) -> str:
        columns = next((len(x.dtype.names) for x in data.X.values() if x.dtype.names), None)  # a table's
        return f"{len(data.y)} rows" + (f", {columns} columns" if columns is not None else "")

    def select(self, candidates: list[selection.Candidate], data: Prepared, train_idx: np.ndarray,
               spec: TrainingSpec, budget: float | None, report: Callable[..., None]):
        """(chosen, candidates that ran, the record for result["selection"], the record again)."""
        sel = select_regression(candidates, {k: v[train_idx] for k, v in data.X.items()}, data.y[train_idx],
                                seed=spec.seed, n_splits=spec.n_splits, time_budget_s=budget, progress=report)
        return (selection.Candidate.from_dict(sel["chosen"]),
                [selection.Candidate.from_dict(s["candidate"]) for s in sel["scores"]], sel, sel)

    def select_recipe(self, *args, **kwargs) -> tuple[Recipe, None]:
        return NO_RECIPE, None

    def evaluate(self, candidate: selection.Candidate | None, data: Prepared, spec: TrainingSpec,
                 progress: Callable[[float], None] | None = None, **_class_only) -> dict[str, Any]:
        return evaluate_regression(candidate, data, spec, progress)

    def nested(self, ran: list[selection.Candidate], data: Prepared, spec: TrainingSpec, *, budget_s=None,
               progress=None, **_class_only) -> dict[str, Any]:
        return nested_regression(ran, data, spec, budget_s=budget_s, progress=progress)

    def baseline(self, data: Prepared, train_idx: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
        """Always predicting the training part's mean, scored the run's way."""
        return {k: v for k, v in evaluate_regression(None, data, spec).items()
                if k not in ("predictions", "points")}

    def fit(self, learner, X, y, weights, data: Prepared, progress: Callable[[float], None]) -> None:
        learner.fit(X, y, progress=progress)

    def outputs(self, learner, X) -> np.ndarray:
        return np.asarray(learner.predict(X)).reshape(-1, 1)

    def agrees(self, served: np.ndarray, trained: np.ndarray) -> float | None:
        """The largest disagreement if the exported file's values are off (relative to their size), else None."""
        diff = float(np.abs(np.asarray(served).reshape(-1) - trained.reshape(-1)).max()) if len(trained) else 0.0
        return diff if diff > 1e-4 * max(1.0, float(np.abs(trained).max(initial=0.0))) else None

    def result_fields(self, data: Prepared, spec: TrainingSpec) -> dict[str, Any]:
        return {"labels": [], "task": spec.task, "target": _target_stats(data.y), "counts": {"rows": int(len(data.y))}}

    def card_fields(self, data: Prepared, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"labels": [], "output": {"name": "value", "shape": [None, 1]},
                "metrics": {k: metrics[k] for k in ("r2", "mae", "rmse", "interval")}, "target": _target_stats(data.y)}


NUMBER_STAGES = NumberStages()


def _target_stats(y: np.ndarray) -> dict[str, float]:
    return {"min": float(y.min()), "max": float(y.max()), "mean": round(float(y.mean()), 6),
            "sd": round(float(y.std()), 6)}


def _plan(hashes: list[str], fraction: float, min_per_class: int) -> dict[str, Any]:
    holdout = [is_holdout(h, fraction) for h in hashes]
    need = 2 * min_per_class
    n_out = sum(holdout)
    if n_out >= need and len(hashes) - n_out >= MIN_ROWS:
        return {"mode": "holdout", "holdout": holdout,
                "reason": f"{n_out} holdout rows (about {fraction:.0%}, chosen by content hash) never seen in training"}
    return {"mode": "cv", "holdout": [False] * len(hashes),
            "reason": f"too few holdout rows for a reliable holdout score ({n_out}; need {need}): measured by "
                      "repeated cross-validation on all rows, final model trained on all"}


def _folds(n: int, n_splits: int, seed: int, repeats: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, RepeatedKFold

    k = max(2, min(int(n_splits), n))
    splitter = (KFold(n_splits=k, shuffle=True, random_state=int(seed)) if repeats == 1
                else RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=int(seed)))
    return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros(n))]


def _fit_predict(candidate: selection.Candidate, X: dict[str, np.ndarray], y: np.ndarray, tr: np.ndarray,
                 te: np.ndarray) -> np.ndarray:
    learner, X = candidate.build(), X[candidate.kind]
    learner.fit(X[tr], y[tr])
    return learner.predict(X[te])


def _score(candidate: selection.Candidate, index: int, X: dict[str, np.ndarray], y: np.ndarray,
           folds: list[tuple[np.ndarray, np.ndarray]], progress: Callable[[float], None] | None) -> dict[str, Any]:
    """Pooled out-of-fold R², MAE and RMSE, plus the spread of R² over folds."""
    start = time.perf_counter()
    pred = np.zeros(len(y))
    fold_r2 = []
    for k, (tr, te) in enumerate(folds):
        pred[te] = _fit_predict(candidate, X, y, tr, te)
        if len(te) >= 2:
            fold_r2.append(regression_metrics(y[te], pred[te], max_points=0)["r2"])
        if progress is not None:
            progress((k + 1) / len(folds))
    m = regression_metrics(y, pred, max_points=0)
    return {"index": index, "candidate": candidate.to_dict(), "label": candidate.label, "r2": m["r2"],
            "mae": m["mae"], "rmse": m["rmse"], "r2_sd": round(float(np.std(fold_r2)), 4) if fold_r2 else None,
            "fold_r2": fold_r2, "seconds": round(time.perf_counter() - start, 3), "error": None}


def select_regression(candidates: list[selection.Candidate], X: dict[str, np.ndarray], y: np.ndarray, *, seed: int,
                      n_splits: int, time_budget_s: float | None,
                      progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Cross-validate ``candidates`` on the same folds; the best pooled R² wins."""
    from ..kernel.errors import Cancelled

    folds = _folds(len(y), n_splits, seed)
    start = time.perf_counter()
    scores, cut_at = [], None
    for i, cand in enumerate(candidates):
        if i >= selection.MIN_CANDIDATES and time_budget_s is not None and time.perf_counter() - start >= time_budget_s:
            cut_at = i
            break
        report = None if progress is None else (lambda f, i=i, c=cand: progress((i + f) / len(candidates), c.label))
        try:
            scores.append(_score(cand, i, X, y, folds, report))
        except Cancelled:
            raise
        except Exception as exc:  # one broken candidate must not sink the run
            scores.append({"index": i, "candidate": cand.to_dict(), "label": cand.label, "r2": None, "mae": None,
                           "rmse": None, "r2_sd": None, "fold_r2": [], "seconds": 0.0,
                           "error": f"{type(exc).__name__}: {exc}"})
    ok = [s for s in scores if s["error"] is None and s["r2"] is not None]
    if not ok:
        raise Invalid("every candidate failed: " + "; ".join(f"{s['label']}: {s['error']}" for s in scores))
    chosen = selection.choose_one_se([(s["index"], selection.Candidate.from_dict(s["candidate"]), s["r2"],
                                       s["fold_r2"]) for s in ok])
    best = next(s for s in scores if s["index"] == chosen)
    return {"chosen_index": best["index"], "chosen": best["candidate"], "cut_at": cut_at, "rule": "one_se",
            "n_candidates": len(candidates), "n_splits": len(folds), "splitter": "KFold", "seed": int(seed),
            "metric": "r2", "seconds": round(time.perf_counter() - start, 3), "scores": scores}


def _splits(data: Prepared, spec) -> list[tuple[np.ndarray, np.ndarray]]:
    if data.plan["mode"] == "holdout":
        test = np.array(data.plan["holdout"])
        return [(np.flatnonzero(~test), np.flatnonzero(test))]
    return _folds(len(data.y), spec.n_splits, spec.seed, spec.cv_repeats)


def evaluate_regression(candidate: selection.Candidate | None, data: Prepared, spec,
                        progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Score one configuration the run's way (holdout, or out-of-fold over repeated folds).
    ``candidate`` None scores the baseline: always predicting the training part's mean."""
    splits = _splits(data, spec)
    y_true, y_pred, idx = [], [], []
    for k, (tr, te) in enumerate(splits):
        pred = (np.full(len(te), data.y[tr].mean()) if candidate is None
                else _fit_predict(candidate, data.X, data.y, tr, te))
        y_true.append(data.y[te])
        y_pred.append(pred)
        idx.append(te)
        if progress is not None:
            progress((k + 1) / len(splits))
    y_true, y_pred, idx = np.concatenate(y_true), np.concatenate(y_pred), np.concatenate(idx)
    metrics = regression_metrics(y_true, y_pred)
    first = len(splits[0][1]) if data.plan["mode"] == "holdout" else len(data.y)  # one prediction per row
    _add_predictions(metrics, data, idx[:first], y_true[:first], y_pred[:first])
    metrics["repeats"] = 1 if data.plan["mode"] == "holdout" else spec.cv_repeats
    how = (f"holdout: {first} rows chosen by content hash, never used to fit or to choose the model"
           if data.plan["mode"] == "holdout" else
           f"cross-validation of this one configuration over {spec.cv_repeats} repeats (no choice made on these folds)")
    metrics["estimate"] = {"method": data.plan["mode"], "description": how, **_INTERVAL_METHODS}
    return metrics


_INTERVAL_METHODS = {"level": INTERVAL_LEVEL, "interval": {"r2": "percentile bootstrap over rows",
                                                           "mae": "percentile bootstrap over rows"}}


def _add_predictions(metrics: dict[str, Any], data: Prepared, idx: np.ndarray, y_true: np.ndarray,
                     y_pred: np.ndarray) -> None:
    """One prediction per evaluated row, and the 95% intervals of R² and MAE from them."""
    metrics["predictions"] = [
        {"sample_id": data.sample_ids[i], "content_hash": data.hashes[i], "true": float(t), "predicted": float(p),
         "error": float(p - t)}
        for i, t, p in zip(np.asarray(idx).tolist(), y_true, y_pred)
    ]
    metrics["evaluated_on"] = int(len(set(np.asarray(idx).tolist())))
    metrics["interval"] = {
        "r2": bootstrap_interval(lambda t, p: regression_metrics(t, p, max_points=0)["r2"], y_true, y_pred),
        "mae": bootstrap_interval(lambda t, p: float(np.mean(np.abs(t - p))), y_true, y_pred)}


def nested_regression(ran: list[selection.Candidate], data: Prepared, spec, *, budget_s: float | None = None,
                      progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Nested K-fold estimate while rows are few (see classes.nested_estimate): selection re-runs
    inside each outer training part and its winner predicts the hidden part."""
    outer = _folds(len(data.y), spec.n_splits, spec.seed + 1)
    pred = np.zeros(len(data.y))
    winners: list[str] = []
    start = time.perf_counter()
    for k, (tr, te) in enumerate(outer):
        left = None if budget_s is None else max(0.0, budget_s - (time.perf_counter() - start)) / (len(outer) - k)
        sel = select_regression(ran, {k: v[tr] for k, v in data.X.items()}, data.y[tr], seed=spec.seed, n_splits=spec.n_splits, time_budget_s=left)
        cand = selection.Candidate.from_dict(sel["chosen"])
        pred[te] = _fit_predict(cand, data.X, data.y, tr, te)
        winners.append(cand.label)
        if progress is not None:
            progress((k + 1) / len(outer))
    metrics = regression_metrics(data.y, pred)
    _add_predictions(metrics, data, np.arange(len(data.y)), data.y, pred)
    metrics["repeats"] = 1
    metrics["estimate"] = {
        "method": "nested_cv",
        "description": (f"nested cross-validation: {len(outer)} outer folds; the model was chosen again inside each "
                        "fold's training part, so no scored row was used to choose or fit it"),
        "outer_folds": len(outer), "chosen_per_fold": winners, **_INTERVAL_METHODS}
    return metrics
