"""The training run — one for every task: from a dataset version's items to a measured, exported model.

features → selection → data recipe → evaluation → final fit → export → check; the gate runs
after, in the job. What differs between tasks is asked of the task (:mod:`dyntrain.tasks`): its
modality gives the candidate learners, the features and the model file's input contract; its
target gives the training stages (:mod:`.classes`, :mod:`.numbers`, …), an object with:

* ``encode(items, spec)`` → (items trained on, classes, y, classes waiting) — and refuses data
  with nothing to learn; optionally ``load_labels(y, classes, load_blob)`` → y with labels kept
  as blobs read (a mask's PNG); ``plan(items, spec)`` → the evaluation plan (holdout or cv);
* ``select(candidates, data, train_idx, spec, budget, report)`` → (chosen, ran, record, raw);
* ``recipes`` and ``select_recipe(…)`` — data recipes (augmentation, balancing) where they apply;
* ``evaluate(candidate, data, spec, …)`` and ``nested(ran, data, spec, …)`` → the shown metrics
  with their intervals and one prediction per evaluated sample (what the gate re-scores);
* ``baseline(data, train_idx, spec)``, ``fit(learner, X, y, weights, data, progress)``,
  ``outputs(learner, X)`` and ``agrees(served, trained)`` (the export check);
* ``describe(data)``, ``result_fields(data, spec)`` and ``card_fields(data, metrics)``;
* optionally, for a target whose examples are not samples (recommendation's interactions):
  ``sizes(items)`` → (examples, labels) the candidate list is sized by, ``prepare(items, spec,
  served, progress)`` → its own :class:`Prepared` in place of labels + features (``served``
  loads the model in service, which a learner may continue from), and ``served_items(data,
  rows)`` → what the exported file is asked in the export check.

Pure of the database: the job glue (:mod:`dyntrain.scheduler.jobs`) gives it items, a way to
load contents and a progress callback, and stores what it returns. So the same function
replays a recorded spec in a fresh process (see ``tests/training``); runs recorded before the
stages were one run keep their result keys (a regression run's ``target`` and ``counts.rows``).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, tasks
from ..kernel.entities import VersionItem
from ..kernel.errors import Invalid
from ..learners import selection
from ..learners.features import FeatureExtractor
from .augmentation import Copies, Recipe, make_copies, training_arrays
from .featurize import default_candidates, featurize
from .spec import Prepared, Progress, TrainingOutcome, TrainingSpec, stage

__all__ = ["TrainingSpec", "TrainingOutcome", "Progress", "train", "prepare", "Prepared", "code_version"]


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


def prepare(items: list[VersionItem], spec: TrainingSpec, kinds: list[str], *, load_image: Callable[[str], bytes],
            extractor: FeatureExtractor, progress: Progress | None = None) -> Prepared:
    """Check the data, plan the evaluation and compute (cached) features of every needed kind:
    the target encodes the labels (a class target leaves classes still waiting for examples
    out), the modality computes the features."""
    stages = _stages(spec.task)
    items, labels, y, waiting = stages.encode(items, spec)
    load_labels = getattr(stages, "load_labels", None)  # labels kept as blobs (masks) are read here
    if load_labels is not None:
        y = load_labels(y, labels, load_image)
    hashes = [i.content_hash for i in items]
    X = featurize(spec.task, kinds, hashes, load_image, extractor, progress=stage(progress, "features"))
    return Prepared(labels, y, [i.sample_id for i in items], hashes, X, stages.plan(items, spec), waiting)


def _stages(task: str):
    """The training stages of the task's target (classes.CLASS_STAGES, numbers.NUMBER_STAGES, …)."""
    return tasks.get(task).target.training_stages()


def train(items: list[VersionItem], spec: TrainingSpec, *, load_image: Callable[[str], bytes],
          extractor: FeatureExtractor, work_dir: Path, progress: Progress | None = None,
          compare_with: selection.Candidate | None = None, compare_recipe: dict | None = None,
          served: Callable[[], Any] | None = None) -> TrainingOutcome:
    """Run one training (see :func:`_train`) with BLAS held to one thread
    (:mod:`dyntrain.learners.threads` says why)."""
    from ..learners.threads import one_thread

    with one_thread("blas"):
        return _train(items, spec, load_image=load_image, extractor=extractor, work_dir=work_dir,
                      progress=progress, compare_with=compare_with, compare_recipe=compare_recipe, served=served)


def _train(items: list[VersionItem], spec: TrainingSpec, *, load_image: Callable[[str], bytes],
           extractor: FeatureExtractor, work_dir: Path, progress: Progress | None = None,
           compare_with: selection.Candidate | None = None, compare_recipe: dict | None = None,
           served: Callable[[], Any] | None = None) -> TrainingOutcome:
    """Run one training: features → selection → data recipe → evaluation → final fit → ONNX + card.

    The same straight line for every task: what differs is asked of the task — candidates,
    features and the model's input contract of its modality, and of its target the training
    stages (:mod:`.classes`, :mod:`.numbers`): label encoding, evaluation plan, selection rule,
    data recipes, scoring, baseline and what the result and card record.

    ``compare_with`` is the production model's configuration: it is re-fitted and scored on
    exactly the same training data and holdout (or folds) as the new model — the fair
    comparison the promotion gate reads from ``result["comparison"]``.
    """
    task, stages = tasks.get(spec.task), _stages(spec.task)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    log: list[str] = []
    candidates = ([selection.Candidate(c["learner"], dict(c["params"])) for c in spec.candidates]
                  if spec.candidates is not None else None)
    if candidates is None:
        n_items, n_labels = (stages.sizes(items) if hasattr(stages, "sizes")
                             else (len(items), len({i.label for i in items})))
        candidates = [c for c in default_candidates(spec.task, n_items, n_labels, spec.time_budget_s)
                      if spec.learners is None or c.learner in spec.learners]
        if not candidates:
            raise Invalid(f"none of the allowed learners ({', '.join(spec.learners or ())}) is a candidate for "
                          "this data; allow more in the project's 'learners' setting")
    for c in candidates + ([compare_with] if compare_with else []):
        if c.learner_class.contract != task.target.contract:  # e.g. a classifier for a number
            raise Invalid(f"{c.learner} is not a {task.target.contract} learner, which a {spec.task} project needs")
    kinds = selection.required_kinds(candidates + ([compare_with] if compare_with else []))

    mark = time.perf_counter()
    if hasattr(stages, "prepare"):  # examples that are not samples: the target prepares them itself
        data = stages.prepare(items, spec, served=served, progress=progress, extractor=extractor,
                              load_image=load_image)
    else:
        data = prepare(items, spec, kinds, load_image=load_image, extractor=extractor, progress=progress)
    timings["features"] = time.perf_counter() - mark
    log.append(f"{stages.describe(data)}; evaluation: {data.plan['reason']}")
    train_idx = np.flatnonzero(~np.array(data.plan["holdout"]))

    mark = time.perf_counter()
    if len(candidates) == 1:
        chosen, tried, sel_record, sel = candidates[0], candidates, None, None
        log.append(f"reusing {chosen.learner} {chosen.params} without selection")
    else:
        # An explicit candidate list is a replay: it runs whole, the budget already cut it once.
        budget = None if spec.candidates is not None else spec.time_budget_s
        chosen, tried, sel_record, sel = stages.select(candidates, data, train_idx, spec, budget,
                                                       stage(progress, "selection"))
        log.append(f"selection tried {len(tried)} of {len(candidates)} candidates; chose {chosen.label}"
                   + (f" ({sel.reason})" if getattr(sel, "reason", "") else ""))
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
                                    progress=lambda f: stage(progress, "augmentation")(f, recipe.name))
        return made[key]

    if spec.recipe is not None or sel is None or not stages.recipes:
        recipe, recipe_record = Recipe.from_dict(spec.recipe), None
    else:
        left = None if spec.candidates is not None else spec.time_budget_s - timings["selection"]
        recipe, recipe_record = stages.select_recipe(chosen, sel, data, train_idx, spec, copies_for, left)
        log.append(f"data recipe: {recipe.name} (tried {len(recipe_record['tried']) - 1} augmentation/balancing "
                   "candidates)")
    copies = copies_for(recipe)
    timings["augmentation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    nested = data.plan["mode"] == "cv" and sel is not None  # the folds chose the model: they cannot also score it
    if nested:
        metrics = stages.nested(tried, data, spec, chosen=chosen, recipe=recipe, copies=copies,
                                budget_s=None if spec.candidates is not None else spec.time_budget_s,
                                progress=stage(progress, "evaluation"))
    else:
        metrics = stages.evaluate(chosen, data, spec, progress=stage(progress, "evaluation"), recipe=recipe,
                                  copies=copies)
    comparison = None
    if compare_with is not None:
        prod_recipe = Recipe.from_dict(compare_recipe)
        # Scored the way the new model was: on the same outer folds when its score is nested (a fixed
        # configuration's nested score is its plain score on those folds), else on the same holdout/folds.
        score = (partial(stages.nested, [compare_with], chosen=compare_with) if nested
                 else partial(stages.evaluate, compare_with))
        if not nested and compare_with == chosen and prod_recipe == recipe:
            # A quick retrain refits the configuration in service: its refit on these folds is the very
            # computation that just scored the new model (same folds, same seed), so it is not run twice.
            refit = metrics
        else:
            refit = score(data, spec, recipe=prod_recipe, copies=copies_for(prod_recipe))
        comparison = {"candidate": compare_with.to_dict(), "recipe": prod_recipe.to_dict(),
                      "metrics": _without_predictions(refit)}
        log.append(f"production configuration {compare_with.label} re-fitted on the same data for comparison")
    baseline = stages.baseline(data, train_idx, spec)
    timings["evaluation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    learner = chosen.build()
    X = data.X[chosen.kind]
    X_fit, y_fit, weights = training_arrays(train_idx, X, data.y, chosen.kind, recipe, copies)
    stages.fit(learner, X_fit, y_fit, weights, data, lambda f: stage(progress, "fit")(f, chosen.learner))
    timings["fit"] = time.perf_counter() - mark

    mark = time.perf_counter()
    stage(progress, "export")(0.0)
    work_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = learner.export(work_dir, backbone_dir=extractor.cache_dir)
    _verify_onnx(onnx_path, learner, X[train_idx[:8]], data, train_idx[:8], load_image, spec.task, stages)
    timings["export"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - t0

    replay = spec.to_dict() | {"candidates": [c.to_dict() for c in tried]}
    if recipe_record is not None:
        replay["recipe_limit"] = len(recipe_record["tried"]) - 1
    result = {
        **stages.result_fields(data, spec),
        "evaluation": {"mode": data.plan["mode"], "reason": data.plan["reason"],
                       "train_size": int(data.plan.get("train_size", len(train_idx))),
                       "holdout_size": int(data.plan.get("holdout_size", np.sum(data.plan["holdout"])))},
        "chosen": chosen.to_dict(),
        "selection": sel_record,
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
    fields = stages.card_fields(data, metrics)
    card = {
        "labels": fields.pop("labels"), "learner": chosen.learner, "params": chosen.params, "model": chosen.label,
        "recipe": recipe.to_dict(),
        "task": spec.task, **task.modality.input_contract(onnx_path), **fields,
        "evaluation": result["evaluation"]["mode"], "dataset_version": spec.dataset_version,
        "seed": spec.seed, "code": result["code"],
    }
    return TrainingOutcome(result, onnx_path, card, log)


def _without_predictions(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "predictions"}


def _verify_onnx(path: Path, learner, X: np.ndarray, data: Prepared, rows: np.ndarray, load_image, task: str,
                 stages) -> None:
    """The exported file, fed stored contents the way serving feeds them, must give the trained
    model's outputs (the target says how close is close enough); never ship one that does not."""
    from ..serving.live import load_model

    model = load_model(path, 0, 0, ["?"] * getattr(learner, "n_classes_", 0), threads=2, task=task)
    items = (stages.served_items(data, rows) if hasattr(stages, "served_items")
             else [tasks.get(task).modality.decode(load_image(data.hashes[i])) for i in rows])
    served = model.predict_items(items)
    diff = stages.agrees(served, stages.outputs(learner, X))
    if diff is not None:
        raise RuntimeError(f"exported ONNX model disagrees with the trained model (max diff {diff:.2e})")
