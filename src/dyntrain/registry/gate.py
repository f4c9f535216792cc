"""The promotion gate: a new model replaces the one in service only if it is not worse.

It compares on the same samples, twice:

* **served** — the model file in service, run by ONNX Runtime as it serves, scored on the
  new run's evaluation samples it never trained on, against the new model's predictions on
  exactly those samples. Only this catches a quick retrain that got worse: it reuses the
  production configuration, so the refit below compares that configuration with itself.
* **refit** — the production model's configuration re-fitted on the new run's training data
  and scored on the same holdout or folds (none for a model uploaded from elsewhere).

The new model must be not worse than each comparison that could be made. Too few unseen
samples (fewer than :data:`MIN_UNSEEN`, or a class without any) say nothing about the
served file; the reason says so and the refit decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..entities import REGRESSION_TASKS
from ..project_settings import ProjectSettings

__all__ = ["decide", "measure_served", "summary", "estimate_sentence", "MIN_UNSEEN"]

#: Fewest never-seen samples a served-file comparison needs; also the fewest of one class
#: before that class's recall is compared (one or two examples make any recall 0 or 1).
MIN_UNSEEN = 5
#: Most samples the served file is run on per gate (images go through the whole backbone): the
#: ones with the smallest content hashes, a fixed pseudo-random pick that stays put across runs.
MAX_SCORED = 1000
_KEPT = {"accuracy", "macro_f1", "per_class", "r2", "mae", "rmse", "n_samples"}


def measure_served(predictions: list[dict[str, Any]], trained_hashes: set[str], served_labels: list[str],
                   task: str, run_served: Callable[[list[dict[str, Any]]], np.ndarray], *,
                   version: int) -> dict[str, Any]:
    """Score the served model file and the new model on the same never-seen samples.

    ``predictions`` are the new model's, one per evaluated sample (``content_hash``, ``true``,
    ``predicted``); samples whose content is in ``trained_hashes`` are left out (the served
    model would look better than it is on them), and so are classes it does not know.
    ``run_served`` returns the served file's output for the samples kept (probabilities over
    ``served_labels``, or values for regression), in order.
    """
    regression = task in REGRESSION_TASKS
    known = set(served_labels)
    unseen = [p for p in predictions if p["content_hash"] not in trained_hashes]
    samples = unseen if regression else [p for p in unseen if p["true"] in known]
    record: dict[str, Any] = {"version": version, "n": len(samples), "enough": False, "note": None,
                              "left_out_seen": len(predictions) - len(unseen),
                              "left_out_unknown_class": len(unseen) - len(samples), "metrics": None, "new": None}
    if len(samples) > MAX_SCORED:
        samples = sorted(samples, key=lambda p: p["content_hash"])[:MAX_SCORED]
        record["n"], record["not_scored"] = len(samples), record["n"] - len(samples)
    if samples:
        output = np.asarray(run_served(samples))
        if regression:
            record["metrics"] = _regression_scores(samples, output.reshape(-1))
            record["new"] = _regression_scores(samples, [p["predicted"] for p in samples])
        else:
            said = [served_labels[int(k)] for k in output.argmax(axis=1)]
            record["metrics"] = _class_scores(samples, said)
            record["new"] = _class_scores(samples, [p["predicted"] for p in samples])
    missing = sorted({p["true"] for p in predictions if p["true"] in known} - {p["true"] for p in samples})
    if len(samples) < MIN_UNSEEN:
        record["note"] = (f"only {len(samples)} evaluation examples the model in service never trained on "
                          f"(at least {MIN_UNSEEN} needed)")
    elif not regression and missing:
        record["note"] = f"no evaluation example it never trained on for: {', '.join(missing)}"
    elif regression and len({p["true"] for p in samples}) < 2:
        record["note"] = "the never-seen rows all have the same target, so R² says nothing"
    else:
        record["enough"] = True
    return record


def _class_scores(samples: list[dict[str, Any]], said: list[str]) -> dict[str, Any]:
    from ..learners.metrics import classification_metrics

    labels = sorted({p["true"] for p in samples} | set(said))
    index = {label: k for k, label in enumerate(labels)}
    y = [index[p["true"]] for p in samples]
    onehot = np.eye(len(labels))[[index[s] for s in said]]  # only the chosen class counts here
    m = classification_metrics(y, onehot, labels)
    m["per_class"] = {k: v for k, v in m["per_class"].items() if v["support"]}
    return {k: v for k, v in m.items() if k in _KEPT}


def _regression_scores(samples: list[dict[str, Any]], predicted) -> dict[str, Any]:
    from ..learners.tabular import regression_metrics

    m = regression_metrics([float(p["true"]) for p in samples], np.asarray(predicted, np.float64), max_points=0)
    return {k: v for k, v in m.items() if k in _KEPT}


def decide(new: dict[str, Any], refit: dict[str, Any] | None, baseline: dict[str, Any],
           settings: ProjectSettings, *, task: str, served: dict[str, Any] | None = None) -> tuple[bool, str]:
    """(promote?, why) for the new model's metrics ``new``.

    ``refit``: the production configuration's metrics, re-fitted and measured on the same data
    (None when there is none). ``served``: :func:`measure_served`'s record of the model file in
    service (None when nothing serves). Neither: the first model must beat the ``baseline``
    (always guessing the largest class; for regression always predicting the training mean).
    ``task`` is the project's: regression reads ``gate_metric`` r2 or mae.

    >>> s = ProjectSettings()
    >>> decide({"macro_f1": .9, "per_class": {}}, None, {"macro_f1": .3}, s, task="image-classification")[0]
    True
    >>> decide({"r2": .6, "mae": 3.0}, {"r2": .7, "mae": 2.5}, {}, ProjectSettings(gate_metric="r2"),
    ...        task="tabular-regression")[0]
    False
    """
    regression = task in REGRESSION_TASKS
    metric = (settings.gate_metric if settings.gate_metric in ("r2", "mae") else "r2") if regression \
        else settings.gate_metric
    if refit is None and served is None:
        return _first_model(new, baseline, metric, regression)
    comparisons, notes = [], []
    if served is not None and served.get("enough"):
        comparisons.append((f"the model in service (version {served['version']}) on {served['n']} examples it "
                            "never trained on", served["metrics"], served["new"], MIN_UNSEEN))
    elif served is not None:
        notes.append(f"not compared with the model in service itself: {served.get('note') or 'not measured'}")
    if refit is not None:
        comparisons.append(("its configuration re-trained on the same data", refit, new, 0))
    if not comparisons:
        return False, "; ".join(notes + ["no fair comparison was possible, so the model in service stays "
                                         "(put the new version into service by hand if you trust it)"])
    passed = []
    for what, old, cand, min_support in comparisons:
        worse = _worse(cand, old, metric, settings, regression, min_support)
        if worse:
            return False, "; ".join([f"{worse} against {what}", *notes]) + "; the model in service stays"
        passed.append(f"{metric} {_score_text(old.get(metric))} → {_score_text(cand.get(metric))} against {what}")
    tail = [] if regression else ["no class got worse beyond tolerance"]
    return True, "; ".join(passed + notes + tail)


def _first_model(new: dict[str, Any], baseline: dict[str, Any], metric: str, regression: bool) -> tuple[bool, str]:
    score = new.get(metric)
    if score is None:
        return False, f"{metric} could not be measured (too few examples); nothing goes into service yet"
    score, floor = float(score), baseline.get(metric)
    if regression:
        if floor is None:
            return True, f"first model: {metric} {_fmt(score)}"
        floor = float(floor)
        if (score > floor) if metric == "r2" else (score < floor):
            return True, (f"first model: {metric} {_fmt(score)} beats always predicting the average "
                          f"({_fmt(floor)})")
        return False, (f"{metric} {_fmt(score)} is no better than always predicting the average ({_fmt(floor)}); "
                       "add more rows or more informative columns")
    floor = float(floor or 0.0)
    if score > floor:
        return True, f"first model: {metric} {score:.3f} beats always guessing the largest class ({floor:.3f})"
    return False, (f"{metric} {score:.3f} is no better than always guessing the largest class ({floor:.3f}); "
                   "add more or clearer examples")


def _worse(new: dict[str, Any], old: dict[str, Any], metric: str, settings: ProjectSettings, regression: bool,
           min_support: int) -> str | None:
    """Why ``new`` is worse than ``old`` beyond the tolerances, or None. Per-class recall is
    compared for classes with at least ``min_support`` examples."""
    score, before = new.get(metric), old.get(metric)
    if before is None:
        return None  # nothing to lose on that score
    if score is None:
        return f"{metric} could not be measured for the new model"
    score, before = float(score), float(before)
    tol = settings.gate_tolerance
    if regression and metric == "mae":
        if score > before * (1 + tol):
            return f"mae would rise from {_fmt(before)} to {_fmt(score)} (more than the allowed {tol:.1%})"
        return None
    if score < before - tol:
        return f"{metric} would drop from {_score_text(before)} to {_score_text(score)} (more than the allowed {tol:.3f})"
    if regression:
        return None
    drops = []
    for label, stats in (old.get("per_class") or {}).items():
        after = (new.get("per_class") or {}).get(label)
        if after is None or stats.get("support", min_support) < min_support:
            continue
        if float(after["recall"]) < float(stats["recall"]) - settings.gate_class_recall_tolerance:
            drops.append(f"{label} {float(stats['recall']):.2f}→{float(after['recall']):.2f}")
    if drops:
        return (f"recall would drop too much for: {', '.join(drops)} (allowed "
                f"{settings.gate_class_recall_tolerance:.2f})")
    return None


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _score_text(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.3f}" if abs(float(x)) <= 1 else _fmt(float(x))


def summary(gate_record: dict[str, Any] | None, task: str) -> str | None:
    """The served-file comparison in plain words (None for runs recorded before it existed).

    >>> summary({"promoted": False, "served": {"enough": True, "n": 25, "metrics": {"accuracy": .96},
    ...          "new": {"accuracy": .92}}}, "image-classification")
    'The model in service was right 96% of the time on 25 examples it had never seen; the new one 92%: kept the one in service.'
    """
    served = (gate_record or {}).get("served")
    if not served:
        return None
    outcome = "put the new one into service" if gate_record.get("promoted") else "kept the one in service"
    if not served.get("enough"):
        decided = ("the comparison with its re-trained configuration decided" if gate_record.get("refit")
                   else "nothing else was fair to compare with")
        return (f"The model in service could not be measured fairly ({served.get('note') or 'not measured'}); "
                f"{decided}: {outcome}.")
    old, new, n = served["metrics"], served["new"], served["n"]
    if task in REGRESSION_TASKS:
        return (f"The model in service had R² {_score_text(old.get('r2'))} (mean error {_score_text(old.get('mae'))}) "
                f"on {n} rows it had never seen; the new one R² {_score_text(new.get('r2'))} (mean error "
                f"{_score_text(new.get('mae'))}): {outcome}.")
    return (f"The model in service was right {_pct(old.get('accuracy'))} of the time on {n} examples it had never "
            f"seen; the new one {_pct(new.get('accuracy'))}: {outcome}.")


def estimate_sentence(served: dict[str, Any] | None, task: str) -> str | None:
    """How the served model's training-time estimate held up on examples it never saw.

    >>> estimate_sentence({"enough": True, "n": 40, "metrics": {"accuracy": .82},
    ...                    "estimate": {"accuracy": .85, "interval": [.7, .95]}}, "image-classification")
    'estimated 85% (70-95%), measured later 82% on 40 new examples'
    """
    if not served or not served.get("enough") or not served.get("estimate"):
        return None
    metric = "r2" if task in REGRESSION_TASKS else "accuracy"
    guess, measured = served["estimate"].get(metric), (served.get("metrics") or {}).get(metric)
    if guess is None or measured is None:
        return None
    show = _score_text if metric == "r2" else _pct
    interval = served["estimate"].get("interval")
    # "70-95%": the unit once, after the upper end
    spread = f" ({show(interval[0]).rstrip('%')}-{show(interval[1])})" if interval else ""
    what = "R² " if metric == "r2" else ""
    return (f"estimated {what}{show(guess)}{spread}, measured later {what}{show(measured)} on {served['n']} new "
            f"{'rows' if metric == 'r2' else 'examples'}")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.0%}"
