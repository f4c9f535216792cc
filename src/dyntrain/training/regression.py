"""A regression training run (``tabular-regression``): the stages and records of
:func:`dyntrain.training.pipeline.train`, scored by R², MAE and RMSE instead of classes.

* **Labels** are the targets as canonical number text (see :func:`dyntrain.tables.target_text`),
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

>>> outcome = train_regression(items, TrainingSpec(1, task="tabular-regression"), load_image=blobs.get,
...                            work_dir=Path("run"))  # doctest: +SKIP
>>> outcome.result["metrics"]["r2"], outcome.card["output"]  # doctest: +SKIP
(0.47, {'name': 'value', 'shape': [None, 1]})
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..entities import VersionItem
from ..errors import Invalid
from ..learners import selection
from ..learners.metrics import INTERVAL_LEVEL, bootstrap_interval
from ..learners.tabular import regression_metrics
from .augmentation import NO_RECIPE
from .featurize import default_candidates, row_features
from .split import is_holdout

__all__ = ["train_regression", "RegressionData", "prepare_regression", "evaluate_regression", "MIN_ROWS"]

#: Fewest rows a regression run accepts (also what the target histogram needs to look trainable).
MIN_ROWS = 4


@dataclass
class RegressionData:
    y: np.ndarray  # float64 targets
    sample_ids: list[int]
    hashes: list[str]
    X: np.ndarray  # table.rows structured array
    plan: dict[str, Any]


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


def prepare_regression(items: list[VersionItem], spec, *, load_image: Callable[[str], bytes],
                       progress: Callable[[float], None] | None = None) -> RegressionData:
    """Check the targets, plan the evaluation and build the feature array."""
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
    hashes = [i.content_hash for i in items]
    plan = _plan(hashes, spec.holdout_fraction, spec.min_holdout_per_class)
    X = row_features(hashes, load_image, progress)
    return RegressionData(y, [i.sample_id for i in items], hashes, X, plan)


def _folds(n: int, n_splits: int, seed: int, repeats: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, RepeatedKFold

    k = max(2, min(int(n_splits), n))
    splitter = (KFold(n_splits=k, shuffle=True, random_state=int(seed)) if repeats == 1
                else RepeatedKFold(n_splits=k, n_repeats=repeats, random_state=int(seed)))
    return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros(n))]


def _fit_predict(candidate: selection.Candidate, X: np.ndarray, y: np.ndarray, tr: np.ndarray,
                 te: np.ndarray) -> np.ndarray:
    learner = candidate.build()
    learner.fit(X[tr], y[tr])
    return learner.predict(X[te])


def _score(candidate: selection.Candidate, index: int, X: np.ndarray, y: np.ndarray,
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


def select_regression(candidates: list[selection.Candidate], X: np.ndarray, y: np.ndarray, *, seed: int,
                      n_splits: int, time_budget_s: float | None,
                      progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Cross-validate ``candidates`` on the same folds; the best pooled R² wins."""
    from ..errors import Cancelled

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


def _splits(data: RegressionData, spec) -> list[tuple[np.ndarray, np.ndarray]]:
    if data.plan["mode"] == "holdout":
        test = np.array(data.plan["holdout"])
        return [(np.flatnonzero(~test), np.flatnonzero(test))]
    return _folds(len(data.y), spec.n_splits, spec.seed, spec.cv_repeats)


def evaluate_regression(candidate: selection.Candidate | None, data: RegressionData, spec,
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


def _add_predictions(metrics: dict[str, Any], data: RegressionData, idx: np.ndarray, y_true: np.ndarray,
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


def nested_regression(ran: list[selection.Candidate], data: RegressionData, spec, *, budget_s: float | None = None,
                      progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """Nested K-fold estimate while rows are few (see pipeline.nested_estimate): selection re-runs
    inside each outer training part and its winner predicts the hidden part."""
    outer = _folds(len(data.y), spec.n_splits, spec.seed + 1)
    pred = np.zeros(len(data.y))
    winners: list[str] = []
    start = time.perf_counter()
    for k, (tr, te) in enumerate(outer):
        left = None if budget_s is None else max(0.0, budget_s - (time.perf_counter() - start)) / (len(outer) - k)
        sel = select_regression(ran, data.X[tr], data.y[tr], seed=spec.seed, n_splits=spec.n_splits, time_budget_s=left)
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


def _stage(progress, stage: str) -> Callable[..., None]:
    def report(fraction: float, candidate: str | None = None) -> None:
        if progress is not None:
            progress(stage, min(1.0, max(0.0, float(fraction))), candidate)
    return report


def train_regression(items: list[VersionItem], spec, *, load_image: Callable[[str], bytes], work_dir: Path,
                     progress=None, compare_with: selection.Candidate | None = None):
    """One regression run: features → selection → evaluation → final fit → ONNX + card.

    Returns a :class:`~dyntrain.training.pipeline.TrainingOutcome` shaped like a
    classification run's (``labels`` empty, ``metrics`` with r2/mae/rmse and the
    predicted-vs-actual ``points``; the card's output is ``value`` [N, 1])."""
    from .pipeline import TrainingOutcome, _input_contract, code_version

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    log: list[str] = []
    if spec.candidates is not None:
        candidates = [selection.Candidate(c["learner"], dict(c["params"])) for c in spec.candidates]
    else:
        candidates = [c for c in default_candidates(spec.task, len(items), 0, spec.time_budget_s)
                      if spec.learners is None or c.learner in spec.learners]
        if not candidates:
            raise Invalid(f"none of the allowed learners ({', '.join(spec.learners or ())}) is a candidate for "
                          "this data; allow more in the project's 'learners' setting")
    for c in candidates + ([compare_with] if compare_with else []):
        if getattr(c.learner_class, "task", None) != "regression":
            raise Invalid(f"{c.learner} is not a regression learner; choose tabular.ridge or tabular.hgb_regressor")

    mark = time.perf_counter()
    data = prepare_regression(items, spec, load_image=load_image, progress=_stage(progress, "features"))
    timings["features"] = time.perf_counter() - mark
    log.append(f"{len(items)} rows, {len(data.X.dtype.names)} columns; evaluation: {data.plan['reason']}")
    train_idx = np.flatnonzero(~np.array(data.plan["holdout"]))

    mark = time.perf_counter()
    if len(candidates) == 1:
        chosen, tried, sel = candidates[0], candidates, None
        log.append(f"reusing {chosen.learner} {chosen.params} without selection")
    else:
        budget = None if spec.candidates is not None else spec.time_budget_s
        sel = select_regression(candidates, data.X[train_idx], data.y[train_idx], seed=spec.seed,
                                n_splits=spec.n_splits, time_budget_s=budget, progress=_stage(progress, "selection"))
        chosen = selection.Candidate.from_dict(sel["chosen"])
        tried = [selection.Candidate.from_dict(s["candidate"]) for s in sel["scores"]]
        log.append(f"selection tried {len(tried)} of {len(candidates)} candidates; chose {chosen.learner}")
    timings["selection"] = time.perf_counter() - mark
    timings["augmentation"] = 0.0

    mark = time.perf_counter()
    if data.plan["mode"] == "cv" and sel is not None:  # the folds chose the model: they cannot also score it
        metrics = nested_regression(tried, data, spec, budget_s=None if spec.candidates is not None
                                    else spec.time_budget_s, progress=_stage(progress, "evaluation"))
    else:
        metrics = evaluate_regression(chosen, data, spec, progress=_stage(progress, "evaluation"))
    comparison = None
    if compare_with is not None:
        prod = evaluate_regression(compare_with, data, spec)
        comparison = {"candidate": compare_with.to_dict(), "recipe": NO_RECIPE.to_dict(),
                      "metrics": {k: v for k, v in prod.items() if k not in ("predictions", "points")}}
        log.append(f"production configuration {compare_with.label} re-fitted on the same data for comparison")
    baseline = evaluate_regression(None, data, spec)
    baseline = {k: v for k, v in baseline.items() if k not in ("predictions", "points")}
    timings["evaluation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    learner = chosen.build()
    learner.fit(data.X[train_idx], data.y[train_idx], progress=lambda f: _stage(progress, "fit")(f, chosen.learner))
    timings["fit"] = time.perf_counter() - mark

    mark = time.perf_counter()
    _stage(progress, "export")(0.0)
    work_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = learner.export_onnx(work_dir / "model.onnx")
    _verify(onnx_path, learner, data.X[train_idx[:16]], [data.hashes[i] for i in train_idx[:16]], load_image)
    timings["export"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - t0

    y = data.y
    target = {"min": float(y.min()), "max": float(y.max()), "mean": round(float(y.mean()), 6),
              "sd": round(float(y.std()), 6)}
    replay = spec.to_dict() | {"candidates": [c.to_dict() for c in tried]}
    result = {
        "labels": [],
        "task": spec.task,
        "target": target,
        "counts": {"rows": int(len(y))},
        "evaluation": {"mode": data.plan["mode"], "reason": data.plan["reason"],
                       "train_size": int(len(train_idx)), "holdout_size": int(np.sum(data.plan["holdout"]))},
        "chosen": chosen.to_dict(),
        "selection": sel,
        "data_recipe": {"chosen": NO_RECIPE.to_dict(), "selection": None, "balance": {},
                        "training_rows": int(len(train_idx)), "augmented_copies": 0},
        "metrics": metrics,
        "baseline": baseline,
        "comparison": comparison,
        "curves": [],
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seconds": round(timings["total"], 3),
        "replay_spec": replay,
        "code": code_version(),
    }
    card = {
        "labels": [], "learner": chosen.learner, "params": chosen.params, "recipe": NO_RECIPE.to_dict(),
        "task": spec.task, **_input_contract(spec.task, onnx_path),
        "output": {"name": "value", "shape": [None, 1]},
        "metrics": {k: metrics[k] for k in ("r2", "mae", "rmse", "interval")}, "target": target,
        "evaluation": data.plan["mode"], "dataset_version": spec.dataset_version,
        "seed": spec.seed, "code": result["code"],
    }
    return TrainingOutcome(result, onnx_path, card, log)


def _verify(path: Path, learner, X: np.ndarray, hashes: list[str], load_image) -> None:
    """The exported file, fed stored rows the way serving feeds them, must give the trained
    model's values; never ship one that does not."""
    from ..serving.inputs import decode_content
    from ..serving.live import load_model

    model = load_model(path, 0, 0, [], threads=2, kind="row")
    served = model.predict_items([decode_content("row", load_image(h)) for h in hashes]).reshape(-1)
    expected = learner.predict(X)
    diff = float(np.abs(served - expected).max()) if len(expected) else 0.0
    if diff > 1e-4 * max(1.0, float(np.abs(expected).max(initial=0.0))):
        raise RuntimeError(f"exported ONNX model disagrees with the trained model (max diff {diff:.2e})")
