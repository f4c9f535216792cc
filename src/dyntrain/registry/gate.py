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

import itertools
from collections.abc import Callable
from typing import Any


from .. import tasks
from ..kernel.project_settings import ProjectSettings

__all__ = ["decide", "measure_served", "summary", "estimate_sentence", "MIN_UNSEEN", "fmt", "score_text"]

#: Fewest never-seen samples a served-file comparison needs; also the fewest of one class
#: before that class's recall is compared (one or two examples make any recall 0 or 1).
MIN_UNSEEN = 5
#: Most samples the served file is run on per gate (images go through the whole backbone): the
#: ones with the smallest content hashes, a fixed pseudo-random pick that stays put across runs.
MAX_SCORED = 1000


def measure_served(predictions: list[dict[str, Any]], trained_hashes: set[str], served_labels: list[str],
                   task: str, run_served: Callable[[list[dict[str, Any]]], list], *,
                   version: int, load_blob: Callable[[str], bytes] | None = None) -> dict[str, Any]:
    """Score the served model file and the new model on the same never-seen samples.

    ``predictions`` are the new model's, one per evaluated sample (``content_hash``, ``true``,
    ``predicted``); samples whose content is in ``trained_hashes`` are left out (the served
    model would look better than it is on them), and so are classes it does not know.
    ``run_served`` returns the served file's output for the samples kept (probabilities over
    ``served_labels``, or values for regression), in order; the task's target scores it (with
    its truth read by ``load_blob`` where it is a blob: a mask).
    """
    target = tasks.get(task).target
    unseen = [p for p in predictions if p["content_hash"] not in trained_hashes]
    samples = target.comparable(unseen, served_labels)
    record: dict[str, Any] = {"version": version, "n": len(samples), "enough": False, "note": None,
                              "left_out_seen": len(predictions) - len(unseen),
                              "left_out_unknown_class": len(unseen) - len(samples), "metrics": None, "new": None}
    if len(samples) > MAX_SCORED:
        samples = _capped(samples, target.has_classes)
        record["n"], record["not_scored"] = len(samples), record["n"] - len(samples)
    if samples:
        if load_blob is not None:
            samples = target.attach_blobs(samples, load_blob)
        record["metrics"] = target.score_output(samples, run_served(samples), served_labels)
        record["new"] = target.score_predicted(samples)
    if len(samples) < MIN_UNSEEN:
        noun = target.estimate_words()[1]  # examples, images, rows, people
        record["note"] = (f"the model in service could be scored on only {len(samples)} of the evaluation {noun} "
                          f"(those it never trained on; at least {MIN_UNSEEN} needed)")
    else:
        record["note"] = target.served_note(samples, predictions, served_labels)
        record["enough"] = record["note"] is None
    return record


def _capped(samples: list[dict[str, Any]], by_class: bool) -> list[dict[str, Any]]:
    """At most MAX_SCORED samples, the same ones each run (by content hash). With classes, taken in
    turn from each class, so a rare class is never cut away (its recall is what the gate checks);
    both models are scored on the same subset, so the comparison stays fair."""
    ordered = sorted(samples, key=lambda p: p["content_hash"])
    if not by_class:
        return ordered[:MAX_SCORED]
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in ordered:
        groups.setdefault(p["true"], []).append(p)
    in_turn = [p for row in itertools.zip_longest(*groups.values()) for p in row if p is not None]
    return in_turn[:MAX_SCORED]


def decide(new: dict[str, Any], refit: dict[str, Any] | None, baseline: dict[str, Any],
           settings: ProjectSettings, *, task: str, served: dict[str, Any] | None = None) -> tuple[bool, str]:
    """(promote?, why) for the new model's metrics ``new``.

    ``refit``: the production configuration's metrics, re-fitted and measured on the same data
    (None when there is none). ``served``: :func:`measure_served`'s record of the model file in
    service (None when nothing serves). Neither: the first model must beat the ``baseline``
    (always guessing the largest class; for regression always predicting the training mean).
    ``task`` is the project's: its target reads ``gate_metric`` (e.g. r2 or mae for numbers) and
    says what "worse" means.

    >>> s = ProjectSettings()
    >>> decide({"macro_f1": .9, "per_class": {}}, None, {"macro_f1": .3}, s, task="image-classification")[0]
    True
    >>> decide({"r2": .6, "mae": 3.0}, {"r2": .7, "mae": 2.5}, {}, ProjectSettings(gate_metric="r2"),
    ...        task="tabular-regression")[0]
    False
    """
    target = tasks.get(task).target
    metric = target.gate_metric(settings.gate_metric)
    if refit is None and served is None:
        return _first_model(new, baseline, metric, target)
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
        worse = _worse(cand, old, metric, settings, target, min_support)
        if worse:
            return False, "; ".join([f"{worse} against {what}", *notes]) + "; the model in service stays"
        passed.append(f"{metric} {score_text(old.get(metric))} → {score_text(cand.get(metric))} against {what}")
    return True, "; ".join(passed + notes + target.promoted_tail())


def _first_model(new: dict[str, Any], baseline: dict[str, Any], metric: str, target) -> tuple[bool, str]:
    score = new.get(metric)
    if score is None:
        return False, f"{metric} could not be measured (too few examples); nothing goes into service yet"
    return target.first_model(float(score), baseline.get(metric), metric)


def _worse(new: dict[str, Any], old: dict[str, Any], metric: str, settings: ProjectSettings, target,
           min_support: int) -> str | None:
    """Why ``new`` is worse than ``old`` beyond the tolerances, or None; the target's rule
    (per-class recall, for classes with at least ``min_support`` examples, is a class target's)."""
    if old.get(metric) is None:
        return None  # nothing to lose on that score
    if new.get(metric) is None:
        return f"{metric} could not be measured for the new model"
    return target.worse(new, old, metric, settings, min_support)


def fmt(x: float) -> str:
    return f"{x:.4g}"


def score_text(x: float | None) -> str:
    return "—" if x is None else f"{float(x):.3f}" if abs(float(x)) <= 1 else fmt(float(x))


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
    return tasks.get(task).target.served_summary(served["metrics"], served["new"], served["n"], outcome)


def estimate_sentence(served: dict[str, Any] | None, task: str) -> str | None:
    """How the served model's training-time estimate held up on examples it never saw.

    >>> estimate_sentence({"enough": True, "n": 40, "metrics": {"accuracy": .82},
    ...                    "estimate": {"accuracy": .85, "interval": [.7, .95]}}, "image-classification")
    'estimated 85% (70-95%), measured later 82% on 40 new examples'
    """
    if not served or not served.get("enough") or not served.get("estimate"):
        return None
    target = tasks.get(task).target
    metric = target.headline
    guess, measured = served["estimate"].get(metric), (served.get("metrics") or {}).get(metric)
    if guess is None or measured is None:
        return None
    show = target.show_score
    interval = served["estimate"].get("interval")
    # "70-95%": the unit once, after the upper end
    spread = f" ({show(interval[0]).rstrip('%')}-{show(interval[1])})" if interval else ""
    what, items = target.estimate_words()
    return f"estimated {what}{show(guess)}{spread}, measured later {what}{show(measured)} on {served['n']} new {items}"
