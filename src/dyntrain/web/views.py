"""Read-only view helpers for the UI: plain words, live state, history rows.

They only read, through the same service functions the API routes call, and turn numbers
into sentences a non-technical user can act on. No business decisions are made here.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from ..core import Core
from ..datasets import changes
from ..datasets.versions import waiting_classes, waiting_sentence
from ..entities import ClassInfo, Sample
from ..projects import project_row
from ..registry import models as registry
from ..scheduler import queue
from ..storage.rows import EventRow
from ..training import records

__all__ = [
    "LEARNERS", "STAGES", "learner_name", "percent", "waiting_notes", "can_roll_back",
    "number", "regression_sentences", "all_samples", "class_sentences",
    "overall_sentence", "evaluation_sentence", "per_example_matrix", "live_state", "latest_event_id", "history", "SETTING_LABELS",
    "SETTING_GROUPS",
]

#: What each registered learner is, in words a non-ML person can follow.
LEARNERS = {
    "image.linear_probe": "Pretrained image features + simple classifier",
    "image.pixel_logreg": "Raw pixels + simple classifier",
    "image.small_cnn": "Small neural network trained from scratch",
    "image.finetune": "Fine-tuned pretrained network",
    "text.embedding_logreg": "Pretrained sentence meaning + simple classifier",
    "text.tfidf_logreg": "Word counts + simple classifier",
    "tabular.linear": "Simple weighted sum of the columns (logistic regression)",
    "tabular.hgb": "Many small decision trees (gradient boosting)",
    "tabular.ridge": "Simple weighted sum of the columns (linear regression)",
    "tabular.hgb_regressor": "Many small decision trees (gradient boosting)",
}

#: Training stages as shown in the live panel (also used by app.js; keep in step).
STAGES = {
    "features": "Reading the examples",
    "selection": "Trying different kinds of model",
    "evaluation": "Measuring the chosen model",
    "fit": "Training the final model",
    "export": "Packaging the model",
    "gate": "Comparing with the model in service",
}


def learner_name(name: str | None) -> str:
    if not name:
        return "—"
    return LEARNERS.get(name, name)


def percent(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}%"


# -- data ----------------------------------------------------------------------------------


def all_samples(core: Core, project: str, cap: int = 5000) -> list[Sample]:
    """Every active sample (paged through the same function the samples API uses)."""
    out: list[Sample] = []
    while len(out) < cap:
        page, total = changes.list_samples(core, project, offset=len(out), limit=1000)
        out.extend(page)
        if not page or len(out) >= total:
            break
    return out



def number(x: float | None, digits: int = 4) -> str:
    """A value in the target's unit, short: 0.123457 → '0.1235', 1234567.0 → '1.235e+06'.

    >>> number(3.0), number(None), number(0.000123456)
    ('3', '—', '0.0001235')
    """
    if x is None:
        return "—"
    return f"{x:.{digits}g}"


def regression_sentences(metrics: dict[str, Any], baseline: dict[str, Any] | None) -> list[dict[str, str]]:
    """A regression run's scores in plain words.

    >>> regression_sentences({"mae": 2.0, "r2": 0.81, "n": 40}, {"mae": 5.0})[0]["sentence"]
    'On average a prediction is off by 2 (in the target’s unit), measured on 40 rows; always predicting the average would be off by 5.'
    """
    out = []
    mae, r2, n = metrics.get("mae"), metrics.get("r2"), metrics.get("n") or 0
    if mae is not None:
        text = f"On average a prediction is off by {number(mae)} (in the target’s unit)"
        text += f", measured on {n} rows" if n else ""
        if baseline and baseline.get("mae") is not None:
            text += f"; always predicting the average would be off by {number(baseline['mae'])}"
        level = "good" if baseline and baseline.get("mae") and mae < 0.6 * baseline["mae"] else "warn"
        out.append({"sentence": text + ".", "level": level})
    if r2 is not None:
        if r2 >= 0:
            text = (f"The model explains {percent(r2)} of how much the target varies (R² {r2:.2f}; "
                    "100% would be perfect, 0% is no better than the average).")
            lo, hi = ((metrics.get("interval") or {}).get("r2") or (None, None))
            if lo is not None:  # older runs have no interval
                text += f" On new data expect R² between {lo:.2f} and {hi:.2f} (95% range)."
        else:
            text = f"R² is {r2:.2f}: the model is worse than always predicting the average. Add more rows or columns."
        out.append({"sentence": text, "level": "good" if r2 >= 0.7 else "warn" if r2 >= 0.3 else "bad"})
    if metrics.get("rmse") is not None:
        out.append({"sentence": f"Large misses weigh more in the root-mean-square error: {number(metrics['rmse'])}.",
                    "level": "info"})
    return out


def can_roll_back(core: Core, project: str) -> bool:
    """Whether "roll back" has a version to go to: the registry's own rule (it walks back)."""
    with core.db.read() as s:
        return registry.rollback_target(s, project_row(s, project).id) is not None


def waiting_notes(classes: list[ClassInfo]) -> dict[str, str]:
    """Classes training leaves out until they have enough examples, each with what it needs.

    >>> waiting_notes([ClassInfo("cup", "", 4), ClassInfo("mug", "", 1)])
    {'mug': "'mug' needs 1 more example before the model can learn it"}
    """
    waiting = waiting_classes({c.label: c.count for c in classes})
    return {label: waiting_sentence(label, count) for label, count in waiting.items()}


# -- results in words ------------------------------------------------------------------------


def _q(label: str) -> str:
    return f"“{label}”"


def _join_or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def class_sentences(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One plain sentence per class, from the confusion matrix.

    Counts are per distinct example: with repeated cross-validation every example is
    predicted several times, so the matrix counts are scaled back to the examples there are.

    >>> m = {"labels": ["a", "b"], "confusion_matrix": [[19, 1], [0, 20]], "per_class": {},
    ...      "predictions": []}
    >>> class_sentences(m)[0]["sentence"]
    '“a” examples are recognised correctly 19 times out of 20; when wrong, they are taken for “b”.'
    """
    labels = metrics.get("labels") or []
    cm = metrics.get("confusion_matrix") or []
    preds = metrics.get("predictions") or []
    distinct = defaultdict(int)
    for p in preds:
        distinct[p["true"]] += 1
    out = []
    for i, label in enumerate(labels):
        row = cm[i] if i < len(cm) else []
        support = sum(row)
        correct = row[i] if i < len(row) else 0
        n = distinct.get(label) or support
        shown = round(correct / support * n) if support else 0
        about = "" if n == support else "about "
        wrong = sorted(((row[j], labels[j]) for j in range(len(row)) if j != i and row[j] > 0), reverse=True)
        predicted_as = sum(cm[k][i] for k in range(len(cm)) if i < len(cm[k]))
        precision = cm[i][i] / predicted_as if predicted_as else None
        if support == 0:
            sentence = f"There were no {_q(label)} examples to test on: add more so the model can be measured."
            level = "warn"
        elif correct == support:
            sentence = f"{_q(label)} examples are recognised correctly every time ({n} out of {n})."
            level = "good"
        else:
            taken = [_q(lab) for _, lab in wrong]
            if len(taken) > 2:
                tail = f"mostly for {taken[0]}"
            else:
                tail = _join_or(taken)
            sentence = (f"{_q(label)} examples are recognised correctly {about}{shown} times out of {n}; "
                        f"when wrong, they are taken for {tail}.")
            level = "good" if correct / support >= 0.9 else "warn" if correct / support >= 0.6 else "bad"
        if precision is not None and precision < 1:
            sentence += f" When the model says {_q(label)}, it is right {percent(precision)} of the time."
        out.append({"label": label, "sentence": sentence, "level": level, "recall": correct / support if support else None,
                     "precision": precision, "examples": n})
    return out


def per_example_matrix(metrics: dict[str, Any]) -> tuple[list[list[int]], bool]:
    """The confusion matrix with one count per example (and whether it had to be scaled).

    Repeated cross-validation predicts every example several times; people expect the
    squares to add up to the examples they gave, as the sentences do.

    >>> per_example_matrix({"confusion_matrix": [[4, 0], [2, 2]], "labels": ["a", "b"],
    ...                     "predictions": [{"true": "a"}] * 2 + [{"true": "b"}] * 2})
    ([[2, 0], [1, 1]], True)
    """
    cm = metrics.get("confusion_matrix") or []
    labels = metrics.get("labels") or []
    distinct = defaultdict(int)
    for p in metrics.get("predictions") or []:
        distinct[p["true"]] += 1
    out, scaled = [], False
    for i, row in enumerate(cm):
        support = sum(row)
        n = distinct.get(labels[i]) if i < len(labels) else None
        if not n or not support or n == support:
            out.append(list(row))
            continue
        scaled = True
        out.append([round(c * n / support) for c in row])
    return out, scaled


def overall_sentence(metrics: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    """The headline of a run, with the range to expect on new data when the run has one.

    >>> overall_sentence({"accuracy": 0.8, "n_samples": 40, "interval": {"accuracy": [0.7, 0.85]}}, None)
    'Overall the model is right 80% of the time, measured on 40 examples. Expect it to be right 70-85% of the time on new data (95% range: few examples give a wide range).'
    """
    acc = metrics.get("accuracy")
    if acc is None:
        return ""
    n = len(metrics.get("predictions") or []) or metrics.get("n_samples") or 0
    text = f"Overall the model is right {percent(acc)} of the time"
    if n:
        text += f", measured on {n} examples"
    text += "."
    lo, hi = ((metrics.get("interval") or {}).get("accuracy") or (None, None))
    if lo is not None:  # older runs have no interval
        text += (f" Expect it to be right {lo * 100:.0f}-{hi * 100:.0f}% of the time on new data "
                 "(95% range: few examples give a wide range).")
    if baseline and baseline.get("accuracy") is not None:
        text += f" Always guessing the most common class would be right {percent(baseline['accuracy'])} of the time."
    return text


def evaluation_sentence(evaluation: dict[str, Any] | None) -> str:
    if not evaluation:
        return ""
    if evaluation.get("mode") == "holdout":
        return (f"Measured on {evaluation.get('holdout_size')} examples set aside and never used for training; "
                f"trained on the other {evaluation.get('train_size')}.")
    return ("Measured by cross-validation: there are too few examples to set some aside, so each example was "
            "predicted by a model trained without it. The final model was then trained on all examples.")


# -- live state ------------------------------------------------------------------------------


def latest_event_id(core: Core, project: str) -> int:
    """The newest event id: the live panel's stream starts right after it (no replay of history)."""
    with core.db.read() as s:
        pid = project_row(s, project).id
        return int(s.scalar(select(func.max(EventRow.id)).where(EventRow.project_id == pid)) or 0)


def live_state(core: Core, project: str) -> dict[str, Any]:
    """What the training panel shows before the first event arrives (same shape app.js builds)."""
    jobs = queue.list_jobs(core, project, 1)
    if not jobs:
        return {"status": "idle"}
    job = jobs[0]
    state: dict[str, Any] = {"status": job.status, "job_id": job.id, "dataset_version": job.dataset_version,
                             "trigger": job.trigger, "run_id": job.run_id}
    if job.status == "delayed":
        state["until"] = job.run_at.isoformat()
    elif job.status == "running":
        state.update({k: job.progress.get(k) for k in ("stage", "percent", "eta_s", "candidate")})
    elif job.status in ("failed", "cancelled"):
        state["reason"] = job.error
        state["at"] = job.finished_at and job.finished_at.isoformat()
    elif job.status == "succeeded" and job.run_id:
        run = records.run_detail(core, job.run_id)
        gate = run.get("gate") or {}
        state.update({"learner": run.get("learner"), "model_version": run.get("model_version"),
                      "promoted": gate.get("promoted"), "gate_reason": gate.get("reason"),
                      "kpis": {k: run.get(k) for k in ("accuracy", "macro_f1", "r2", "mae")},
                      "at": run.get("finished_at")})
    return state


# -- history ---------------------------------------------------------------------------------


def _delta(new: float | None, old: float | None) -> dict[str, Any] | None:
    if new is None or old is None:
        return None
    d = new - old
    direction = "up" if d > 0.0005 else "down" if d < -0.0005 else "same"
    return {"value": d, "points": f"{d * 100:+.1f}", "direction": direction}


def _served_delta(served: dict[str, Any] | None, metric: str) -> dict[str, Any] | None:
    """New model minus the served file in ``metric``, on the examples the served one never saw."""
    if not served or not served.get("enough"):
        return None
    return _delta((served.get("new") or {}).get(metric), (served.get("metrics") or {}).get(metric))


def history(core: Core, project: str, limit: int = 100) -> dict[str, Any]:
    """Runs with KPIs and their change against the model that served at the time (its file on
    examples it never saw, and its configuration re-trained on the same data), plus which
    version served when and how its training-time estimate held up later."""
    from .. import tasks
    from ..registry.gate import estimate_sentence, summary

    task = changes.project_task(core, project)
    headline = tasks.get(task).target.headline
    runs = []
    measured_later: dict[int, str] = {}  # served version -> newest "estimated …, measured later …"
    for r in records.list_runs(core, project, limit):
        row = dict(r)
        row["learner_name"] = learner_name(r.get("learner"))
        row["delta_accuracy"] = row["delta_f1"] = row["delta_r2"] = None
        row["against"] = row["served_summary"] = row["delta_served"] = None
        if r["status"] == "succeeded":
            result = records.run_detail(core, r["id"]).get("result") or {}
            comparison = (result.get("comparison") or {}).get("metrics")
            gate = result.get("gate") or {}  # runs recorded before the served comparison lack "served"
            row["against"] = gate.get("against_version")
            row["served_summary"] = gate.get("summary") or summary(gate, task)
            row["delta_served"] = _served_delta(gate.get("served"), headline)
            check = estimate_sentence(gate.get("served"), task)
            if check and gate["served"].get("version") not in measured_later:
                measured_later[gate["served"]["version"]] = check
            if comparison:
                row["delta_accuracy"] = _delta(r.get("accuracy"), comparison.get("accuracy"))
                row["delta_f1"] = _delta(r.get("macro_f1"), comparison.get("macro_f1"))
                row["delta_r2"] = _delta(r.get("r2"), comparison.get("r2"))
        runs.append(row)
    models = {m.version: m for m in registry.list_models(core, project)}
    served = []
    until = None
    for h in registry.alias_history(core, project):
        if h["alias"] != registry.PRODUCTION:
            continue
        m = models.get(h["version"])
        metrics = (m.card.get("metrics") or {}) if m else {}
        served.append({**h, "until": until, "accuracy": metrics.get("accuracy"), "r2": metrics.get("r2"),
                       "run_id": m.run_id if m else None,
                       "source": m.source if m else None, "estimate_check": measured_later.get(h["version"])})
        until = h["at"]
    return {"runs": runs, "served": served, "models": list(models.values())}


# -- settings form ---------------------------------------------------------------------------

SETTING_LABELS = {
    "auto_train": "Retrain automatically when the data changes",
    "train_delay_s": "Wait after the last change before training (seconds)",
    "train_max_delay_s": "Never wait longer than (seconds)",
    "time_budget_s": "Time allowed for trying models (seconds)",
    "min_holdout_per_class": "Examples per class needed to set some aside for testing",
    "gate_metric": "Score a new model must not lose",
    "gate_tolerance": "Allowed drop in that score (0.01 = 1 point)",
    "gate_class_recall_tolerance": "Allowed drop for any single class (0.05 = 5 points)",
    "confidence_threshold": "Answer “not sure” below this confidence (0 = always answer)",
    "store_prediction_inputs": "Keep the images sent for prediction (needed to review and add them)",
    "prediction_retention_days": "Keep prediction images for (days)",
    "prediction_record_retention_days": "Keep prediction records for (days; empty = forever)",
    "keep_model_versions": "Keep this many newest model versions (plus any in service or needed)",
    "webhook_url": "Also notify this web address (webhook)",
    "seed": "Random seed",
    "learners": "Kinds of model to try (all ticked = every kind, including ones added later)",
    "augmentation": "Make varied copies of the photos (augmentation)",
    "augmentation_custom": "Custom augmentation strengths (JSON)",
    "augmentation_copies": "Varied copies per photo",
    "balance_target_ratio": "Top up small classes to this share of the largest (0–1)",
}

SETTING_GROUPS = [
    ("Training", ["auto_train", "train_delay_s", "train_max_delay_s", "time_budget_s", "learners"]),
    ("Making more of a few photos", ["augmentation", "augmentation_copies", "augmentation_custom",
                                     "balance_target_ratio"]),
    ("When a new model goes into service", ["gate_metric", "gate_tolerance", "gate_class_recall_tolerance"]),
    ("Predictions", ["confidence_threshold", "store_prediction_inputs", "prediction_retention_days",
                     "prediction_record_retention_days", "webhook_url"]),
    ("Advanced", ["min_holdout_per_class", "seed", "keep_model_versions"]),
]
