"""The class target's training stages: labels as class indices, stratified evaluation, macro-F1
selection, data recipes (augmentation, balancing), the majority-class baseline.

The one training run (:mod:`dyntrain.training.pipeline`) calls these through
:data:`CLASS_STAGES`; the number target's counterparts are in :mod:`dyntrain.training.numbers`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import tasks
from ..datasets.balance import class_weights
from ..datasets.versions import waiting_classes
from ..kernel.entities import VersionItem
from ..learners import selection
from ..learners.metrics import INTERVAL_LEVEL, classification_intervals, classification_metrics, majority_baseline
from .augmentation import NO_RECIPE, Copies, Recipe, extend_folds, recipes_to_try, training_arrays
from .spec import Prepared, TrainingSpec
from .split import plan_evaluation

__all__ = ["CLASS_STAGES", "ClassStages", "evaluate_config", "nested_estimate", "select_recipe"]

_NO_COPIES = Copies({}, np.zeros(0, np.int64), np.zeros(0, np.int64), {})


class ClassStages:
    """What a run of a class target does differently (see the pipeline's module docstring)."""

    recipes = True  # augmentation and balancing are candidates

    def encode(self, items: list[VersionItem], spec: TrainingSpec) -> tuple[list[VersionItem], list[str], np.ndarray,
                                                                              dict[str, int]]:
        """(items trained on, classes, class index per item, classes waiting for examples).

        Classes with too few examples wait: their items are left out, so a new class's first
        example does not stop the project's retrains."""
        counts = dict(Counter(i.label for i in items))
        # the scheduler's own rule: a job it queued is a job that can train
        tasks.get(spec.task).target.check_trainable(counts)
        waiting = waiting_classes(counts)
        items = [i for i in items if i.label not in waiting]
        labels = sorted({i.label for i in items})
        index = {lab: k for k, lab in enumerate(labels)}
        return items, labels, np.array([index[i.label] for i in items]), waiting

    def plan(self, items: list[VersionItem], spec: TrainingSpec) -> dict[str, Any]:
        return plan_evaluation([i.content_hash for i in items], [i.label for i in items],
                               fraction=spec.holdout_fraction, min_per_class=spec.min_holdout_per_class)

    def describe(self, data: Prepared) -> str:
        return f"{len(data.y) + sum(data.waiting.values())} samples, {len(data.labels)} classes"

    def select(self, candidates: list[selection.Candidate], data: Prepared, train_idx: np.ndarray,
               spec: TrainingSpec, budget: float | None, report: Callable[..., None]):
        """(chosen, candidates that ran, the record for result["selection"], the raw selection)."""
        sel = selection.select(candidates, {k: v[train_idx] for k, v in data.X.items()}, data.y[train_idx],
                               n_classes=len(data.labels), seed=spec.seed, time_budget_s=budget,
                               n_splits=spec.n_splits, progress=lambda f, c: report(f, c.label))
        return sel.chosen, sel.ran, sel.to_dict(), sel

    def select_recipe(self, *args, **kwargs) -> tuple[Recipe, dict]:
        return select_recipe(*args, **kwargs)

    def evaluate(self, *args, **kwargs) -> dict[str, Any]:
        return evaluate_config(*args, **kwargs)

    def nested(self, *args, **kwargs) -> dict[str, Any]:
        return nested_estimate(*args, **kwargs)

    def baseline(self, data: Prepared, train_idx: np.ndarray, spec: TrainingSpec) -> dict[str, Any]:
        """Always guessing the training part's largest class, on what the estimate scores."""
        return majority_baseline(data.y[train_idx], data.y if data.plan["mode"] == "cv"
                                 else data.y[np.array(data.plan["holdout"])], len(data.labels))

    def fit(self, learner, X, y, weights, data: Prepared, progress: Callable[[float], None]) -> None:
        learner.fit(X, y, n_classes=len(data.labels), sample_weight=weights, progress=progress)

    def outputs(self, learner, X) -> np.ndarray:
        return learner.predict_proba(X)

    def agrees(self, served: np.ndarray, trained: np.ndarray) -> float | None:
        """The largest disagreement if the exported file's probabilities are off, else None."""
        diff = float(np.abs(np.asarray(served) - trained).max())
        return diff if diff > 1e-3 else None

    def result_fields(self, data: Prepared, spec: TrainingSpec) -> dict[str, Any]:
        return {"labels": data.labels,
                "counts": {lab: int((data.y == k).sum()) for k, lab in enumerate(data.labels)},
                "waiting_classes": data.waiting}  # left out of this run until they have enough examples

    def card_fields(self, data: Prepared, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"labels": data.labels, "output": {"name": "probabilities", "shape": [None, len(data.labels)]},
                "metrics": {k: metrics[k] for k in ("accuracy", "macro_f1", "per_class", "interval")}}


CLASS_STAGES = ClassStages()


def _cv_folds(y: np.ndarray, n_splits: int, repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import RepeatedStratifiedKFold

    k = max(2, min(n_splits, int(np.bincount(y).min())))
    return list(RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed).split(np.zeros(len(y)), y))


def evaluate_config(candidate: selection.Candidate, data: Prepared, spec: TrainingSpec,
                    progress: Callable[[float], None] | None = None, recipe: Recipe = NO_RECIPE,
                    copies: Copies | None = None) -> dict[str, Any]:
    """Score one configuration the run's way: fit on the training part, score the holdout —
    or, in ``cv`` mode, out-of-fold predictions over repeated folds. Used for the new model
    and (by the promotion gate) for the production model's configuration, on the SAME data.
    With a recipe, each fit also gets the augmented copies of its own training samples only."""
    X = data.X[candidate.kind]
    n = len(data.labels)
    if data.plan["mode"] == "holdout":
        test = np.array(data.plan["holdout"])
        splits = [(np.flatnonzero(~test), np.flatnonzero(test))]
    else:
        splits = _cv_folds(data.y, spec.n_splits, spec.cv_repeats, spec.seed)
    y_true, proba, idx = [], [], []
    for k, (tr, te) in enumerate(splits):
        learner = candidate.build()
        X_fit, y_fit, weights = training_arrays(tr, X, data.y, candidate.kind, recipe, copies or _NO_COPIES)
        learner.fit(X_fit, y_fit, n_classes=n, sample_weight=weights)
        y_true.append(data.y[te])
        proba.append(learner.predict_proba(X[te]))
        idx.append(te)
        if progress is not None:
            progress((k + 1) / len(splits))
    y_true, proba, idx = np.concatenate(y_true), np.concatenate(proba), np.concatenate(idx)
    metrics = classification_metrics(y_true, proba, data.labels)
    first = len(splits[0][1]) if data.plan["mode"] == "holdout" else len(data.y)  # one prediction per sample
    _add_predictions(metrics, data, idx[:first], y_true[:first], proba[:first])
    # In cv mode every sample is predicted once per repeat: the confusion matrix counts repeats.
    metrics["repeats"] = 1 if data.plan["mode"] == "holdout" else spec.cv_repeats
    if data.plan["mode"] == "holdout":
        how = (f"holdout: {first} samples chosen by content hash, never used to fit or to choose the model")
    else:
        how = (f"cross-validation of this one configuration over {spec.cv_repeats} repeats of "
               f"{len(splits) // spec.cv_repeats} folds (no choice was made on these folds)")
    metrics["estimate"] = {"method": data.plan["mode"], "description": how, **_INTERVAL_METHODS}
    return metrics


# How result["metrics"]["interval"] is computed (recorded next to it).
_INTERVAL_METHODS = {"level": INTERVAL_LEVEL, "interval": {"accuracy": "Wilson score interval",
                                                           "macro_f1": "percentile bootstrap over samples"}}


def _add_predictions(metrics: dict[str, Any], data: Prepared, idx: np.ndarray, y_true: np.ndarray,
                     proba: np.ndarray) -> None:
    """One prediction per evaluated sample (the gate re-scores the served model on the same
    samples) and the 95% interval of the estimate, from those predictions."""
    metrics["predictions"] = [
        {"sample_id": data.sample_ids[i], "content_hash": data.hashes[i], "true": data.labels[t],
         "predicted": data.labels[int(np.argmax(p))], "confidence": round(float(np.max(p)), 4)}
        for i, t, p in zip(idx, y_true, proba)
    ]
    metrics["evaluated_on"] = int(len(set(np.asarray(idx).tolist())))
    metrics["interval"] = classification_intervals(y_true, np.argmax(proba, axis=1), len(data.labels))


def nested_estimate(ran: list[selection.Candidate], data: Prepared, spec: TrainingSpec, *, chosen: selection.Candidate,
                    recipe: Recipe = NO_RECIPE, copies: Copies | None = None, budget_s: float | None = None,
                    progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    """The shown score while data is too small for a holdout: nested cross-validation.

    Each outer fold's test part is hidden from everything: selection re-runs on the outer
    training part alone (the candidates that ran, the same rule), its winner is fitted there and
    predicts the hidden part. So the estimate measures the whole procedure, choosing included,
    on samples the choice never saw; the winner's own CV score also counts the luck that made it
    win (on few-shot data 90-95% shown vs 62-78% on new examples, issue 12). The outer folds use
    another seed than selection's. ``budget_s`` is shared out over the outer folds (each inner
    selection still runs its first three candidates). The data recipe chosen for the run is
    applied when a fold's winner is the run's learner (re-choosing augmentation per fold would
    cost a run's augmentation again per fold).
    """
    y, n = data.y, len(data.labels)
    outer, _ = selection.make_folds(y, n_splits=spec.n_splits, seed=spec.seed + 1)
    kinds = selection.required_kinds(ran)
    proba = np.zeros((len(y), n), np.float32)
    winners: list[str] = []
    start = time.perf_counter()
    for k, (tr, te) in enumerate(outer):
        cand = ran[0]
        if len(ran) > 1:
            left = None if budget_s is None else max(0.0, budget_s - (time.perf_counter() - start)) / (len(outer) - k)
            cand = selection.select(ran, {kind: data.X[kind][tr] for kind in kinds}, y[tr], n_classes=n, seed=spec.seed,
                                    time_budget_s=left, n_splits=spec.n_splits).chosen
        own = cand == chosen and copies is not None  # the recipe was chosen for this learner
        X = data.X[cand.kind]
        X_fit, y_fit, weights = training_arrays(tr, X, y, cand.kind, recipe if own else NO_RECIPE,
                                                copies if own else _NO_COPIES)
        learner = cand.build()
        learner.fit(X_fit, y_fit, n_classes=n, sample_weight=weights)
        proba[te] = learner.predict_proba(X[te])
        winners.append(cand.label)
        if progress is not None:
            progress((k + 1) / len(outer))
    metrics = classification_metrics(y, proba, data.labels)
    _add_predictions(metrics, data, np.arange(len(y)), y, proba)
    metrics["repeats"] = 1
    metrics["estimate"] = {
        "method": "nested_cv",
        "description": (f"nested cross-validation: {len(outer)} outer folds; the model was chosen again inside each "
                        "fold's training part, so no scored sample was used to choose or fit it"),
        "outer_folds": len(outer), "chosen_per_fold": winners, "seconds": round(time.perf_counter() - start, 3),
        **_INTERVAL_METHODS}
    return metrics


def select_recipe(chosen: selection.Candidate, sel, data: Prepared, train_idx: np.ndarray, spec: TrainingSpec,
                   copies_for: Callable[[Recipe], Copies], budget_left: float | None) -> tuple[Recipe, dict]:
    """Cross-validate the chosen learner with each data recipe on the selection's own folds.

    Copies join the training side of the fold their source sample is in and are never
    validated on, so scores compare directly with "no recipe" (the selection's score).
    """
    y_tr = data.y[train_idx]
    X_tr = data.X[chosen.kind][train_idx]
    n = len(data.labels)
    images = tasks.get(spec.task).modality.augmentable  # augmented copies exist for images only
    recipes = recipes_to_try(spec.augmentation if images else "off", spec.augmentation_custom,
                             spec.augmentation_copies, spec.balance_target_ratio, y_tr, copies_possible=images)
    if spec.recipe_limit is not None:
        recipes = recipes[: spec.recipe_limit]
    base = sel.chosen_score
    tried = [{"recipe": NO_RECIPE.to_dict(), "macro_f1_mean": base.macro_f1_mean, "macro_f1_sd": base.macro_f1_sd,
              "accuracy_mean": base.accuracy_mean, "seconds": round(base.seconds, 3)}]
    best, best_score, cut_at = NO_RECIPE, base.macro_f1_mean, None
    folds, _ = selection.make_folds(y_tr, n_splits=spec.n_splits, seed=spec.seed)  # = the selection's folds
    local = {int(g): k for k, g in enumerate(train_idx)}
    start = time.perf_counter()
    for i, recipe in enumerate(recipes):
        if budget_left is not None and time.perf_counter() - start >= budget_left:
            cut_at = i
            break
        mark = time.perf_counter()
        c = copies_for(recipe)
        src = np.array([local[int(s)] for s in c.source], np.int64)
        X_ext, y_ext = np.concatenate([X_tr, c.X[chosen.kind]]), np.concatenate([y_tr, c.y])
        ext_folds = extend_folds(folds, src, len(y_tr))
        weights = class_weights(y_ext, n)[y_ext] if recipe.balance == "weights" else None
        score = selection.cross_validate(chosen, X_ext, y_ext, n_classes=n, sample_weight=weights, folds=ext_folds)
        tried.append({"recipe": recipe.to_dict(), "macro_f1_mean": score.macro_f1_mean,
                      "macro_f1_sd": score.macro_f1_sd, "accuracy_mean": score.accuracy_mean,
                      "seconds": round(time.perf_counter() - mark, 3), "error": score.error})
        if score.error is None and score.macro_f1_mean > best_score + 1e-9:
            best, best_score = recipe, score.macro_f1_mean
    return best, {"tried": tried, "chosen": best.to_dict(), "cut_at": cut_at,
                  "budget_s": None if budget_left is None else round(max(0.0, budget_left), 3)}
