"""A training run: from a dataset version's items to a measured, exported model.

Pure of the database: the job glue (:mod:`dyntrain.training.jobs`) gives it items, a way to
load images and a progress callback, and stores what it returns. So the same function
replays a recorded spec in a fresh process (see ``tests/training``).
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, imaging, texts
from ..entities import REGRESSION_TASKS, TASKS, VersionItem
from ..errors import Invalid
from ..learners import selection
from ..learners.features import FeatureExtractor
from ..datasets.balance import class_weights
from ..datasets.versions import waiting_classes
from ..scheduler.queue import check_trainable
from ..learners.metrics import INTERVAL_LEVEL, classification_intervals, classification_metrics, majority_baseline
from .augmentation import NO_RECIPE, Copies, Recipe, extend_folds, make_copies, recipes_to_try, training_arrays
from ..serving.inputs import decode_content
from .featurize import default_candidates, featurize
from .split import plan_evaluation

_NO_COPIES = Copies({}, np.zeros(0, np.int64), np.zeros(0, np.int64), {})

__all__ = ["TrainingSpec", "TrainingOutcome", "Progress", "train", "evaluate_config", "prepare", "Prepared",
           "code_version"]

# progress(stage, stage_fraction, candidate) — may raise Cancelled (cooperative cancellation)
Progress = Callable[[str, float, str | None], None]


@dataclass(frozen=True)
class TrainingSpec:
    """Everything that decides a run's result; saved verbatim in the run record.

    ``candidates`` None means "the default list for this data"; a finished run records the
    candidates it actually tried, so replaying that spec reproduces it.
    """

    dataset_version: int
    task: str = "image-classification"
    seed: int = 0
    time_budget_s: float = 60.0
    min_holdout_per_class: int = 10
    holdout_fraction: float = 0.2
    n_splits: int = 5
    cv_repeats: int = 2
    mode: str = "full"  # full: select among candidates | reuse: refit the given single candidate
    candidates: tuple[dict, ...] | None = None
    learners: tuple[str, ...] | None = None  # allowed learners (project setting); None = all
    augmentation: str = "auto"
    augmentation_custom: dict | None = None
    augmentation_copies: int = 2
    balance_target_ratio: float = 1.0
    recipe: dict | None = None  # a fixed data recipe (quick retrain, replay); None = selection decides
    recipe_limit: int | None = None  # replay: how many recipes the recorded run had time to try

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidates"] = list(self.candidates) if self.candidates is not None else None
        d["learners"] = list(self.learners) if self.learners is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainingSpec":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for key in ("candidates", "learners"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass
class TrainingOutcome:
    result: dict[str, Any]
    onnx_path: Path
    card: dict[str, Any]
    log: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """A version's data, ready for learners: labels, features per kind, evaluation plan."""

    labels: list[str]
    y: np.ndarray
    sample_ids: list[int]
    hashes: list[str]
    X: dict[str, np.ndarray]
    plan: dict[str, Any]
    waiting: dict[str, int] = field(default_factory=dict)  # classes left out until they have enough examples


def code_version() -> dict[str, Any]:
    """Package and library versions (plus the git commit when running from a checkout)."""
    import subprocess

    import onnxruntime
    import sklearn

    versions = {"dyntrain": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "scikit-learn": sklearn.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
        if commit:
            versions["git_commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return versions


def _stage(progress: Progress | None, stage: str) -> Callable[..., None]:
    def report(fraction: float, candidate: str | None = None) -> None:
        if progress is not None:
            progress(stage, min(1.0, max(0.0, float(fraction))), candidate)
    return report


def prepare(items: list[VersionItem], spec: TrainingSpec, kinds: list[str], *, load_image: Callable[[str], bytes],
            extractor: FeatureExtractor, progress: Progress | None = None) -> Prepared:
    """Check the data, plan the evaluation and compute (cached) features of every needed kind.

    Classes with too few examples wait (``Prepared.waiting``): their items are left out, so a
    new class's first example does not stop the project's retrains."""
    counts = dict(Counter(i.label for i in items))
    check_trainable(counts)  # the scheduler's own rule: a job it queued is a job that can train
    waiting = waiting_classes(counts)
    items = [i for i in items if i.label not in waiting]
    labels = sorted({i.label for i in items})
    index = {lab: k for k, lab in enumerate(labels)}
    hashes = [i.content_hash for i in items]
    plan = plan_evaluation(hashes, [i.label for i in items], fraction=spec.holdout_fraction,
                           min_per_class=spec.min_holdout_per_class)

    X = featurize(spec.task, kinds, hashes, load_image, extractor, progress=_stage(progress, "features"))
    return Prepared(labels, np.array([index[i.label] for i in items]), [i.sample_id for i in items], hashes, X, plan,
                    waiting)


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
        own = cand.kind == chosen.kind and copies is not None
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


def train(items: list[VersionItem], spec: TrainingSpec, *, load_image: Callable[[str], bytes],
          extractor: FeatureExtractor, work_dir: Path, progress: Progress | None = None,
          compare_with: selection.Candidate | None = None, compare_recipe: dict | None = None) -> TrainingOutcome:
    """Run one training (see :func:`_train`) with BLAS held to one thread.

    Measured here: a 60x1024 logistic regression takes 0.1 s with one OpenBLAS thread and
    5-7 s with two when the other core is busy (serving, feature extraction) — the threads
    spin-wait for each other. Our matrices are small; one thread is the right size.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _train(items, spec, load_image=load_image, extractor=extractor, work_dir=work_dir,
                      progress=progress, compare_with=compare_with, compare_recipe=compare_recipe)


def _train(items: list[VersionItem], spec: TrainingSpec, *, load_image: Callable[[str], bytes],
           extractor: FeatureExtractor, work_dir: Path, progress: Progress | None = None,
           compare_with: selection.Candidate | None = None, compare_recipe: dict | None = None) -> TrainingOutcome:
    """Run one training: features → selection → data recipe → evaluation → final fit → ONNX + card.

    ``compare_with`` is the production model's configuration: it is re-fitted and scored on
    exactly the same training data and holdout (or folds) as the new model — the fair
    comparison the promotion gate reads from ``result["comparison"]``.
    """
    if spec.task in REGRESSION_TASKS:  # same stages, scored by R²/MAE (training/regression.py)
        from .regression import train_regression

        return train_regression(items, spec, load_image=load_image, work_dir=work_dir, progress=progress,
                                compare_with=compare_with)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    log: list[str] = []
    candidates = ([selection.Candidate(c["learner"], dict(c["params"])) for c in spec.candidates]
                  if spec.candidates is not None else None)
    if candidates is None:
        n_items = len(items)
        candidates = [c for c in default_candidates(spec.task, n_items, len({i.label for i in items}),
                                                    spec.time_budget_s)
                      if spec.learners is None or c.learner in spec.learners]
        if not candidates:
            raise Invalid(f"none of the allowed learners ({', '.join(spec.learners or ())}) is a candidate for "
                          "this data; allow more in the project's 'learners' setting")
    kinds = selection.required_kinds(candidates + ([compare_with] if compare_with else []))

    mark = time.perf_counter()
    data = prepare(items, spec, kinds, load_image=load_image, extractor=extractor, progress=progress)
    timings["features"] = time.perf_counter() - mark
    log.append(f"{len(items)} samples, {len(data.labels)} classes; evaluation: {data.plan['reason']}")
    train_idx = np.flatnonzero(~np.array(data.plan["holdout"]))

    mark = time.perf_counter()
    report = _stage(progress, "selection")
    if len(candidates) == 1:
        chosen, tried, sel = candidates[0], candidates, None
        log.append(f"reusing {chosen.learner} {chosen.params} without selection")
    else:
        # An explicit candidate list is a replay: it runs whole, the budget already cut it once.
        budget = None if spec.candidates is not None else spec.time_budget_s
        sel = selection.select(candidates, {k: v[train_idx] for k, v in data.X.items()}, data.y[train_idx],
                               n_classes=len(data.labels), seed=spec.seed, time_budget_s=budget,
                               n_splits=spec.n_splits, progress=lambda f, c: report(f, c.label))
        chosen, tried = sel.chosen, sel.ran
        log.append(f"selection tried {len(tried)} of {len(candidates)} candidates; chose {chosen.learner}")
    timings["selection"] = time.perf_counter() - mark

    # Augmentation and balancing: candidates too, kept only where cross-validation says they help.
    mark = time.perf_counter()
    copy_kinds = sorted({chosen.kind} | ({compare_with.kind} if compare_with else set()))
    made: dict[str, Copies] = {}

    def copies_for(recipe: Recipe) -> Copies:
        key = json.dumps(recipe.to_dict(), sort_keys=True)
        if key not in made:
            made[key] = make_copies(recipe, train_idx, data.y, data.hashes, copy_kinds, data.X,
                                    extractor=extractor, load_image=load_image, seed=spec.seed,
                                    progress=lambda f: _stage(progress, "augmentation")(f, recipe.name))
        return made[key]

    if spec.recipe is not None or sel is None:
        recipe, recipe_record = Recipe.from_dict(spec.recipe), None
    else:
        left = None if spec.candidates is not None else spec.time_budget_s - timings["selection"]
        recipe, recipe_record = _select_recipe(chosen, sel, data, train_idx, spec, copies_for, left)
        log.append(f"data recipe: {recipe.name} (tried {len(recipe_record['tried']) - 1} augmentation/balancing "
                   "candidates)")
    copies = copies_for(recipe)
    timings["augmentation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    if data.plan["mode"] == "cv" and sel is not None:  # the folds chose the model: they cannot also score it
        metrics = nested_estimate(tried, data, spec, chosen=chosen, recipe=recipe, copies=copies,
                                  budget_s=None if spec.candidates is not None else spec.time_budget_s,
                                  progress=_stage(progress, "evaluation"))
    else:
        metrics = evaluate_config(chosen, data, spec, progress=_stage(progress, "evaluation"), recipe=recipe,
                                  copies=copies)
    comparison = None
    if compare_with is not None:
        prod_recipe = Recipe.from_dict(compare_recipe)
        comparison = {"candidate": compare_with.to_dict(), "recipe": prod_recipe.to_dict(),
                      "metrics": _without_predictions(evaluate_config(compare_with, data, spec, recipe=prod_recipe,
                                                                      copies=copies_for(prod_recipe)))}
        log.append(f"production configuration {compare_with.label} re-fitted on the same data for comparison")
    baseline = majority_baseline(data.y[train_idx], data.y if data.plan["mode"] == "cv"
                                 else data.y[np.array(data.plan["holdout"])], len(data.labels))
    timings["evaluation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    learner = chosen.build()
    X = data.X[learner.input_kind]
    X_fit, y_fit, weights = training_arrays(train_idx, X, data.y, chosen.kind, recipe, copies)
    learner.fit(X_fit, y_fit, n_classes=len(data.labels), sample_weight=weights,
                progress=lambda f: _stage(progress, "fit")(f, chosen.learner))
    timings["fit"] = time.perf_counter() - mark

    mark = time.perf_counter()
    _stage(progress, "export")(0.0)
    work_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = learner.export_onnx(work_dir / "model.onnx", backbone_dir=extractor.cache_dir)
    _verify_onnx(onnx_path, learner, X[train_idx[:8]], [data.hashes[i] for i in train_idx[:8]], load_image,
                 TASKS[spec.task])
    timings["export"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - t0

    replay = spec.to_dict() | {"candidates": [c.to_dict() for c in tried]}
    if recipe_record is not None:
        replay["recipe_limit"] = len(recipe_record["tried"]) - 1
    result = {
        "labels": data.labels,
        "counts": {lab: int((data.y == k).sum()) for k, lab in enumerate(data.labels)},
        "waiting_classes": data.waiting,  # left out of this run until they have enough examples
        "evaluation": {"mode": data.plan["mode"], "reason": data.plan["reason"],
                       "train_size": int(len(train_idx)), "holdout_size": int(np.sum(data.plan["holdout"]))},
        "chosen": chosen.to_dict(),
        "selection": sel.to_dict() if sel is not None else None,
        "data_recipe": {"chosen": recipe.to_dict(), "selection": recipe_record, "balance": copies.report,
                        "training_rows": int(len(y_fit)), "augmented_copies": int(len(y_fit) - len(train_idx))},
        "metrics": metrics,
        "baseline": baseline,
        "comparison": comparison,
        "curves": learner.curves,
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "seconds": round(timings["total"], 3),
        "replay_spec": replay,
        "code": code_version(),
    }
    card = {
        "labels": data.labels, "learner": chosen.learner, "params": chosen.params, "recipe": recipe.to_dict(),
        "task": spec.task, **_input_contract(spec.task, onnx_path),
        "output": {"name": "probabilities", "shape": [None, len(data.labels)]},
        "metrics": {k: metrics[k] for k in ("accuracy", "macro_f1", "per_class", "interval")},
        "evaluation": result["evaluation"]["mode"], "dataset_version": spec.dataset_version,
        "seed": spec.seed, "code": result["code"],
    }
    return TrainingOutcome(result, onnx_path, card, log)


def _input_contract(task: str, onnx_path: Path) -> dict[str, Any]:
    """What the model file takes, for the card (serving reads the session's own input names)."""
    if TASKS[task] == "image":
        return {"preprocessing": imaging.PREPROCESSING,
                "input": {"name": "image", "dtype": "uint8",
                          "shape": [None, imaging.INPUT_SIZE, imaging.INPUT_SIZE, 3], "layout": "NHWC RGB"}}
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    names = [i.name for i in graph.input]
    if TASKS[task] == "row":
        columns = [{"name": i.name, "type": "numeric" if i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
                    else "categorical"} for i in graph.input]
        return {"preprocessing": "none (imputation, scaling and one-hot encoding inside the graph)",
                "input": {"name": names, "columns": columns,
                          "dtype": {"numeric": "float32 [N, 1] (NaN = missing)", "categorical": "string [N, 1]"}}}
    if names == ["text"]:
        return {"preprocessing": "none (TF-IDF inside the graph)",
                "input": {"name": "text", "dtype": "string", "shape": [None, 1]}}
    if "chunk_ids" in names:
        return {"preprocessing": texts.CHUNKED_PREPROCESSING,
                "input": {"name": names, "dtype": "int64", "shape": [None, None],
                          "tokenizer": f"all-MiniLM-L6-v2 tokenizer.json (tokenizers library), the whole text in "
                                       f"[CLS] … [SEP] chunks of {texts.CHUNK_TOKENS} tokens, side by side"}}
    return {"preprocessing": texts.TEXT_PREPROCESSING,
            "input": {"name": names, "dtype": "int64", "shape": [None, None],
                      "tokenizer": "all-MiniLM-L6-v2 tokenizer.json (tokenizers library)"}}


def _select_recipe(chosen: selection.Candidate, sel, data: Prepared, train_idx: np.ndarray, spec: TrainingSpec,
                   copies_for: Callable[[Recipe], Copies], budget_left: float | None) -> tuple[Recipe, dict]:
    """Cross-validate the chosen learner with each data recipe on the selection's own folds.

    Copies join the training side of the fold their source sample is in and are never
    validated on, so scores compare directly with "no recipe" (the selection's score).
    """
    y_tr = data.y[train_idx]
    X_tr = data.X[chosen.kind][train_idx]
    n = len(data.labels)
    images = TASKS[spec.task] == "image"  # augmented copies exist for images only
    recipes = recipes_to_try(spec.augmentation if images else "off", spec.augmentation_custom,
                             spec.augmentation_copies, spec.balance_target_ratio, y_tr, copies_possible=images)
    if spec.recipe_limit is not None:
        recipes = recipes[: spec.recipe_limit]
    base = sel.scores[sel.chosen_index]
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


def _without_predictions(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "predictions"}


def _verify_onnx(path: Path, learner, X: np.ndarray, hashes: list[str], load_image, kind: str) -> None:
    """The exported file must give the training-time probabilities; never ship one that does not."""
    from ..serving.live import load_model

    model = load_model(path, 0, 0, ["?"] * learner.n_classes_, threads=2, kind=kind)
    served = model.predict_items([decode_content(kind, load_image(h)) for h in hashes])
    diff = float(np.abs(served - learner.predict_proba(X)).max())
    if diff > 1e-3:
        raise RuntimeError(f"exported ONNX model disagrees with the trained model (max diff {diff:.2e})")
