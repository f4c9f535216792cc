"""Read-only view helpers for the UI: plain words, live state, history rows.

They only read, through the same service functions the API routes call, and turn numbers
into sentences a non-technical user can act on. No business decisions are made here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from .. import tasks
from ..kernel.core import Core
from ..datasets import changes
from ..datasets.versions import waiting_classes, waiting_sentence
from ..kernel.entities import ClassInfo, Sample
from ..kernel.projects import project_row
from ..registry import models as registry
from ..scheduler import queue
from ..storage.rows import EventRow
from ..training import records

__all__ = [
    "LEARNERS", "RECIPES", "STAGES", "learner_name", "ui_words", "task_title", "percent", "waiting_notes", "can_roll_back", "rollback_version",
    "number", "regression_sentences", "all_samples", "class_sentences",
    "overall_sentence", "gate_sentence", "evaluation_sentence", "per_example_matrix", "live_state", "latest_event_id", "history", "SETTING_LABELS",
    "SETTING_GROUPS", "SETTING_HELP", "activity_sentence", "use_model", "use_model", "OPTION_WORDS", "setting_value_words",
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
    "ensemble.soft_vote": "A vote of several kinds of model (their probabilities averaged)",
    "rec.popularity": "The most popular items, the same for everyone",
    "rec.content": "Items like what they chose, by the catalogue (category, attributes, text, picture)",
    "rec.item_knn": "Items chosen together with what they chose (item neighbours)",
    "rec.als": "Hidden tastes learned from who chose what (matrix factorisation, ALS)",
    "rec.svd": "Hidden tastes learned from the ratings (matrix factorisation, SVD)",
}

#: Training stages as shown in the live panel (also used by app.js; keep in step).
STAGES = {
    "features": "Reading the examples",
    "selection": "Trying different kinds of model",
    "augmentation": "Trying varied copies of the examples",
    "evaluation": "Measuring the chosen model",
    "fit": "Training the final model",
    "export": "Packaging the model",
    "gate": "Comparing with the model in service",
}


#: Data recipes (augmentation and class balancing candidates) in words; ``balance:copies(light)``
#: and the like are named by their prefix.
RECIPES = {
    "none": "the examples as they are",
    "augment:light": "slightly varied copies of the photos",
    "augment:medium": "varied copies of the photos",
    "augment:strong": "strongly varied copies of the photos",
    "augment:custom": "varied copies of the photos (custom strengths)",
    "balance:class_weights": "small classes counted as much as large ones",
    "balance:copies": "extra varied copies of the small classes",
}


def learner_name(name: str | None) -> str:
    """A learner, candidate label or data recipe in words; an unknown name as it is.

    >>> learner_name("image.linear_probe(C=1.0)"), learner_name("augment:light")
    ('Pretrained image features + simple classifier', 'Slightly varied copies of the photos')
    """
    if not name:
        return "—"
    base = name.split("(")[0]
    words = LEARNERS.get(base) or RECIPES.get(name) or RECIPES.get(base)
    return (words[0].upper() + words[1:]) if words else name


def candidate_settings(candidate: dict[str, Any] | None) -> str:
    """A candidate's settings in words; a vote lists its members, each with its own settings.

    >>> candidate_settings({"learner": "image.linear_probe", "params": {"C": 10.0}})
    'C 10.0'
    >>> candidate_settings({"learner": "ensemble.soft_vote", "params": {"members": [
    ...     {"learner": "image.linear_probe", "params": {"C": 10.0}}, {"learner": "image.small_cnn", "params": {}}]}})
    'members: Pretrained image features + simple classifier (C 10.0); Small neural network trained from scratch'
    """
    params = (candidate or {}).get("params") or {}
    if "members" in params:
        return "members: " + "; ".join(learner_name(m.get("learner")) + (f" ({s})" if (s := candidate_settings(m)) else "")
                                       for m in params["members"])
    return ", ".join(f"{k} {v}" for k, v in sorted(params.items()))


def task_title(task) -> str:
    """How a task is offered and shown: its own title, else its modality's title and its
    target's goal ("Table rows (a CSV file): predict a number"), else its name."""
    if task.title:
        return task.title
    if task.modality.title and task.target.goal:
        return f"{task.modality.title}: {task.target.goal}"
    return task.name


def ui_words() -> dict[str, dict[str, str]]:
    """The words the live panel's script shows for stages, learners and recipes (one source)."""
    return {"stages": STAGES, "learners": LEARNERS, "recipes": RECIPES}


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
    """A value in the target's unit as people write it: about ``digits`` significant digits,
    thousands separated, never in scientific notation (whole numbers stay whole).

    >>> number(3.0), number(None), number(0.000123456), number(3493300.0), number(-1234.5678), number(0.5)
    ('3', '—', '0.0001235', '3,493,300', '-1,235', '0.5')
    """
    if x is None:
        return "—"
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    decimals = max(0, min(12, digits - 1 - math.floor(math.log10(abs(x)))))
    text = f"{x:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


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
    return rollback_version(core, project) is not None


def rollback_version(core: Core, project: str) -> int | None:
    """The version "roll back" would serve again (None: there is none), by the registry's rule."""
    with core.db.read() as s:
        return registry.rollback_target(s, project_row(s, project).id)


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


#: What a gate metric's value says, for a sentence "the new model would … instead of …".
_METRIC_WORDS = {
    "accuracy": ("be right {new} of the time instead of {old}", "percent"),
    "macro_f1": ("reach a balanced score (every class counted equally) of {new} instead of {old}", "percent"),
    "r2": ("reach R² {new} instead of {old} (1 is perfect, 0 no better than the average)", "r2"),
    "mae": ("be off by {new} on average instead of {old}", "number"),
}


def _metric_value(metric: str, x: float | None) -> str:
    kind = _METRIC_WORDS.get(metric, ("", "number"))[1]
    if kind == "r2":
        return "—" if x is None else f"{x:.2f}"
    return number(x) if kind == "number" else percent(x)


def gate_sentence(gate: dict[str, Any] | None, metrics: dict[str, Any] | None,
                  baseline: dict[str, Any] | None, metric: str | None = None) -> str:
    """Why the gate put a run's model into service or kept it back, in plain words, from the
    numbers it compared (the recorded reason, in the engineers' words, stays available).

    >>> gate_sentence({"promoted": False, "against_version": 3, "metric": "accuracy", "reason": "…",
    ...                "refit": {"accuracy": 0.96}}, {"accuracy": 0.42}, None)
    'The new model would be right 42% of the time instead of 96%: kept the one in service (version 3).'
    >>> gate_sentence({"promoted": True, "against_version": None, "metric": "accuracy", "reason": "…"},
    ...               {"accuracy": 0.9}, {"accuracy": 0.5})
    "The project's first model is right 90% of the time, better than always guessing the most common class (50%): it went into service."
    """
    if not gate:
        return ""
    metric = metric or gate.get("metric") or "accuracy"
    if metric not in _METRIC_WORDS or (metrics or {}).get(metric) is None:
        metric = next((m for m in _METRIC_WORDS if (metrics or {}).get(m) is not None), metric)
    words = _METRIC_WORDS.get(metric)
    promoted = bool(gate.get("promoted"))
    reason = gate.get("reason") or ""
    if words is None:
        return reason[:1].upper() + reason[1:]
    show = lambda x: _metric_value(metric, x)  # noqa: E731
    served = gate.get("served") or {}
    if served.get("enough"):
        old, new = served.get("metrics") or {}, served.get("new") or {}
    else:
        old, new = gate.get("refit"), metrics or {}
    if gate.get("against_version") is None or old is None:
        if gate.get("against_version") is not None:  # nothing fair to compare with
            return reason[:1].upper() + reason[1:] + "."
        floor = (baseline or {}).get(metric)
        score = (metrics or {}).get(metric)
        what = {"accuracy": "is right", "macro_f1": "reaches a balanced score of", "r2": "reaches R²",
                "mae": "is off on average by"}[metric]
        tail = {"accuracy": " of the time", "r2": " (1 is perfect)"}.get(metric, "")
        trivial = ("always predicting the average" if metric in ("r2", "mae")
                   else "always guessing the most common class")
        if floor is None:
            return f"The project's first model {what} {show(score)}{tail}: " + (
                "it went into service." if promoted else "it was kept back.")
        return (f"The project's first model {what} {show(score)}{tail}, "
                + ("better than" if promoted else "no better than")
                + f" {trivial} ({show(floor)}): "
                + ("it went into service." if promoted else "add more or clearer examples."))
    outcome = (f"put it into service in place of version {gate['against_version']}" if promoted
               else f"kept the one in service (version {gate['against_version']})")
    if "changed while this run trained" in reason:
        return reason[:1].upper() + reason[1:] + "."
    if not promoted and old.get(metric) is not None and new.get(metric) is not None:
        lower_is_better = metric == "mae"
        dropped = new[metric] > old[metric] if lower_is_better else new[metric] < old[metric]
        if not dropped:  # the score held: a class got worse
            worst = None
            for label, stats in (old.get("per_class") or {}).items():
                after = (new.get("per_class") or {}).get(label)
                if after and after.get("recall") is not None and stats.get("recall") is not None:
                    drop = float(stats["recall"]) - float(after["recall"])
                    if worst is None or drop > worst[0]:
                        worst = (drop, label, after["recall"], stats["recall"])
            if worst and worst[0] > 0:
                return (f"The new model would recognise “{worst[1]}” correctly {percent(worst[2])} of the time "
                        f"instead of {percent(worst[3])}: {outcome}.")
    return f"The new model would {words[0].format(new=show(new.get(metric)), old=show(old.get(metric)))}: {outcome}."


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
        with core.db.read() as s:
            target = tasks.get(project_row(s, project).task).target
        gate = run.get("gate") or {}
        result = run.get("result") or {}
        state.update({"learner": run.get("learner"), "model_version": run.get("model_version"),
                      "promoted": gate.get("promoted"),
                      "gate_reason": gate_sentence(result.get("gate") or gate, result.get("metrics"),
                                                   result.get("baseline")) or gate.get("reason"),
                      "kpis": {k: run.get(k) for k in ("accuracy", "macro_f1", "r2", "mae")},
                      "score": target.headline_words(result.get("metrics")),
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


# -- "use this model" -------------------------------------------------------------------------

#: Where each upload format is predicted (the API's routes) and the JSON field it sends (None: files).
_PREDICT_ROUTES = {"files": ("", None), "texts": ("/texts", "texts"), "rows": ("/rows", "rows")}

_AUTH = '"Authorization": "Bearer " + os.environ["DYNTRAIN_TOKEN"]'


def use_model(task, base_url: str, project: str, example: Any = None) -> dict[str, str] | None:
    """The prediction endpoint of a project and copy-paste ``curl`` and Python snippets that call
    it, built from the task's upload format; ``example`` is one real item to send (a text, a row),
    or None for a file upload. None for a format answered by routes of its own.

    >>> from dyntrain import tasks
    >>> u = use_model(tasks.get("text-classification"), "http://h:8000/", "reviews", "great film")
    >>> u["endpoint"], '"texts": ["great film"]' in u["curl"]
    ('http://h:8000/api/v1/projects/reviews/predict/texts', True)
    """
    import json
    import shlex
    from urllib.parse import quote

    if task.modality.upload_format not in _PREDICT_ROUTES:
        return None  # its own routes (e.g. interactions → …/recommend), shown by its try partial
    suffix, field = _PREDICT_ROUTES[task.modality.upload_format]
    endpoint = f"{base_url.rstrip('/')}/api/v1/projects/{quote(project)}/predict{suffix}"
    head = 'curl -s -H "Authorization: Bearer $DYNTRAIN_TOKEN"'
    if field is None:  # one or more files, multipart
        filename = f"my-{task.modality.noun}.jpg" if task.modality.noun == "image" else f"my-{task.modality.noun}"
        curl = f"{head} \\\n  -F files=@{filename} \\\n  {endpoint}"
        python = ("import os\n\nimport httpx\n\n"
                  f"with open({filename!r}, 'rb') as f:\n"
                  f"    r = httpx.post({endpoint!r},\n"
                  f"                   headers={{{_AUTH}}},\n"
                  f"                   files={{'files': ({filename!r}, f)}})\n"
                  "r.raise_for_status()\nprint(r.json()['predictions'][0])\n")
        return {"endpoint": endpoint, "curl": curl, "python": python, "sends": filename}
    item = example if example is not None else ("a text to recognise" if field == "texts" else {})
    payload = json.dumps({field: [item]}, ensure_ascii=False)
    curl = (f"{head} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(payload)} \\\n  {endpoint}")
    python = ("import os\n\nimport httpx\n\n"
              f"r = httpx.post({endpoint!r},\n"
              f"               headers={{{_AUTH}}},\n"
              f"               json={{{field!r}: [{item!r}]}})\n"
              "r.raise_for_status()\nprint(r.json()['predictions'][0])\n")
    return {"endpoint": endpoint, "curl": curl, "python": python, "sends": field}


# -- activity --------------------------------------------------------------------------------

#: What an audited action did, as the rest of a sentence after who did it; {key} is a detail.
_ACTIVITY = {
    "add_samples": "added examples", "add_texts": "added texts", "add_rows": "added rows",
    "add_csv": "added the rows of a CSV file", "relabel_sample": "changed the class of an example",
    "delete_sample": "deleted an example", "create_class": "added a class",
    "patch_class": "renamed the class “{label}”", "delete_class": "deleted the class “{label}” and its examples",
    "open_batch": "started uploading a batch", "commit_batch": "finished uploading a batch (one new data version)",
    "discard_batch": "abandoned a batch upload", "restore_version": "restored data version {number}",
    "promote": "put model version {version} into service", "keep_back": "kept model version {version} out of service",
    "rollback": "rolled back to the model version served before", "feedback": "confirmed or corrected a prediction",
    "add_to_training": "added a prediction to the training examples", "create_project": "created the project",
    "patch_project": "changed the project's settings", "delete_project": "deleted the project",
    "train_now": "asked for training now", "cancel_job": "cancelled a training job",
    "purge_sample": "erased an example for good", "purge_content": "erased content for good",
    "purge": "erased content for good", "create_token": "created an API token",
    "revoke_token": "revoked an API token", "run_gc": "cleaned up files no longer needed",
    "housekeeping": "cleaned up old predictions and model files", "login": "signed in", "logout": "signed out",
    "upload_model": "uploaded a model trained elsewhere",
}


def activity_sentence(actor: str, action: str, details: dict[str, Any]) -> str:
    """An audit entry as a sentence (the recorded action and details stay available).

    >>> activity_sentence("scheduler", "promote", {"version": 3, "run_id": 7, "trigger": "auto"})
    'dyntrain put model version 3 into service on its own after run 7.'
    >>> activity_sentence("ann", "delete_class", {"label": "mug"})
    'ann deleted the class “mug” and its examples.'
    """
    template = _ACTIVITY.get(action)
    try:
        what = template.format(**details) if template else action.replace("_", " ")
    except (KeyError, IndexError):  # an older entry without that detail
        what = template.split(" {")[0].split("“{")[0].rstrip(" “") if template else action
    who = "dyntrain" if actor == "scheduler" else actor
    if actor == "scheduler":
        what += " on its own"
        if details.get("run_id"):
            what += f" after run {details['run_id']}"
    return f"{who} {what}."


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
    "gpu": "Train on a graphics card (GPU) worker",
    "class_colors": "Colour of each class in masks (JSON)",
}

#: One short sentence per setting for people; the schema's own description (for engineers) is
#: folded away under it.
SETTING_HELP = {
    "auto_train": "When on, every change to the examples retrains the model by itself.",
    "train_delay_s": "Changes made within this many seconds of each other are trained together.",
    "train_max_delay_s": "Even if changes keep coming, training starts after this long.",
    "time_budget_s": "More time lets training try more kinds of model.",
    "min_holdout_per_class": "Below this, the model is measured by cross-validation instead of set-aside examples.",
    "gate_metric": "A new model replaces the one in service only if it is not worse at this.",
    "gate_tolerance": "How much worse a new model may be and still replace the one in service.",
    "gate_class_recall_tolerance": "How much worse at any one class a new model may be.",
    "confidence_threshold": "Below this confidence the model answers “not sure” instead of guessing.",
    "store_prediction_inputs": "Needed to look at predictions later and add them to the training examples.",
    "prediction_retention_days": "Older inputs are deleted; the predictions themselves stay.",
    "prediction_record_retention_days": "Leave empty to keep every prediction.",
    "keep_model_versions": "Older versions are deleted, except those in service or still needed.",
    "webhook_url": "Another system is told here when training finishes or a new model goes into service.",
    "seed": "The same seed and data train the same model.",
    "augmentation": "Varied copies (turned, shifted, brighter…) can help with few photos; kept only where they help.",
    "augmentation_custom": "Only used when the setting above is “Custom”.",
    "augmentation_copies": "How many varied copies to make of each photo.",
    "balance_target_ratio": "Classes with fewer examples are topped up to this share of the largest.",
    "gpu": "Only with a cluster that has a graphics card.",
    "class_colors": "Each class keeps the colour it was first given; change one here or beside the class on the data page.",
}

#: Choices of the settings form in words (the stored value stays as it is).
OPTION_WORDS = {
    "macro_f1": "Balanced score (every class counts the same)", "accuracy": "Share of answers that are right",
    "r2": "R² (share of the variation explained)", "mae": "Average error",
    "auto": "Automatic: try them, keep what helps", "off": "Off", "light": "Light", "medium": "Medium",
    "strong": "Strong", "custom": "Custom (the strengths below)",
}


def setting_value_words(value: Any) -> str:
    """A setting's default as the form says it: on/off, none, or the option's words.

    >>> setting_value_words(True), setting_value_words(None), setting_value_words("macro_f1"), setting_value_words(0.05)
    ('on', 'none', 'Balanced score (every class counts the same)', '0.05')
    """
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, (int, float)):
        return number(value)
    return OPTION_WORDS.get(str(value), str(value))

SETTING_GROUPS = [
    ("Training", ["auto_train", "train_delay_s", "train_max_delay_s", "time_budget_s", "learners"]),
    ("Making more of a few photos", ["augmentation", "augmentation_copies", "augmentation_custom",
                                     "balance_target_ratio"]),
    ("When a new model goes into service", ["gate_metric", "gate_tolerance", "gate_class_recall_tolerance"]),
    ("Predictions", ["confidence_threshold", "store_prediction_inputs", "prediction_retention_days",
                     "prediction_record_retention_days", "webhook_url"]),
    ("Advanced", ["min_holdout_per_class", "seed", "keep_model_versions", "gpu", "class_colors"]),
]
