"""HTML pages of the web UI, rendered with Jinja2 from the same service functions the API uses.

Every action on these pages is a ``fetch`` to the REST API (see ``static/*.js``); the pages
themselves only read. The app-level caller dependency applies here as to the API.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.templating import Jinja2Templates

from .. import __version__, tasks
from ..kernel import projects as svc
from ..api.deps import page_csrf, trusts_local
from ..codecs.masks import class_colors as mask_colors
from ..kernel.core import Core
from ..datasets import changes
from ..kernel.errors import NotFound
from ..kernel.project_settings import ProjectSettings, gate_metrics, settings_schema
from ..kernel.projects import project_row
from ..registry import models as registry
from ..scheduler import queue
from ..serving import predict as serving
from ..training import records
from . import data_grid, run_classes, svg, views

__all__ = ["router", "templates"]

router = APIRouter(include_in_schema=False)


def _auth_context(request: Request) -> dict[str, Any]:
    """Who is calling, whether through a session, and the CSRF token the page's scripts and forms
    send with every change (also without a session: a loopback server trusting this machine)."""
    return {"caller": getattr(request.state, "caller", None), "signed_in": getattr(request.state, "session", False),
            "csrf": page_csrf(request)}


templates = Jinja2Templates(directory=Path(__file__).parent / "templates", context_processors=[_auth_context])
templates.env.globals.update(learner_name=views.learner_name, candidate_settings=views.candidate_settings, activity_sentence=views.activity_sentence,
                             task_title=views.task_title, task_of=tasks.get, OPTION_WORDS=views.OPTION_WORDS,
                             setting_value_words=views.setting_value_words, pct=views.percent, num=views.number, STAGES=views.STAGES,
                             LEARNERS=views.LEARNERS, ui_words=views.ui_words(), version=__version__)
# the project's class colours (a mask's classes): pinned ones, the VOC map for the rest
templates.env.globals["class_colors"] = lambda names, settings: mask_colors(list(names), (settings or {}).get("class_colors"))


def get_core(request: Request) -> Core:
    return request.app.state.core


#: An API hint in an error message ("(list them with GET /api/v1/projects)"): for programs, not people.
_API_HINT = re.compile(r"\s*\((?:[^()]*\s)?(?:GET|POST|PUT|PATCH|DELETE) /api/[^()]*\)")


def _not_found(request: Request, message: str) -> Response:
    message = _API_HINT.sub("", message)
    return templates.TemplateResponse(request, "not_found.html", {"message": message[:1].upper() + message[1:] + "."},
                                      status_code=404)


def html(fn):
    """Render unknown projects, runs and samples as a clear HTML 404 page instead of JSON."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotFound as exc:
            return _not_found(kwargs["request"], exc.message)

    return wrapper


def _project_context(core: Core, name: str, tab: str) -> dict[str, Any]:
    with core.db.read() as s:
        row = project_row(s, name)
        project, status = row.to_entity(), svc.project_status(s, row)
    live = {**views.live_state(core, name), "head": status.get("dataset_version"),
            "now": datetime.now(timezone.utc).isoformat()}  # the countdown corrects the browser's clock
    return {"project": project, "status": status, "tab": tab, "settings": ProjectSettings(**project.settings),
            "live": live, "after": views.latest_event_id(core, name), **_task_context(project.task)}


def _task_context(name: str) -> dict[str, Any]:
    """The project's task plug-in for the templates: its partials, words and flags."""
    task = tasks.get(name)
    return {"task": task, "kind": task.modality.kind, "regression": not task.target.has_classes}


def _render(request: Request, template: str, context: dict[str, Any]) -> Response:
    return templates.TemplateResponse(request, template, context)


# -- projects --------------------------------------------------------------------------------


def _projects(core: Core, request: Request) -> list[tuple]:
    """(project, status, trained_version) of the projects the caller may see: trained_version is
    the data version the latest job trained or will train, so the list can say when newer
    examples are untrained."""
    who = request.state.caller
    out = []
    for project, status in svc.list_projects(core):
        if not who.sees(project.name):
            continue
        jobs = queue.list_jobs(core, project.name, 1)
        out.append((project, status, jobs[0].dataset_version if jobs else None))
    return out


@router.get("/")
def projects_page(request: Request, core: Core = Depends(get_core)):
    return _render(request, "projects.html", {"projects": _projects(core, request),
                                              "tasks": [tasks.get(n) for n in tasks.names()]})


@router.get("/fragments/projects")
def projects_fragment(request: Request, core: Core = Depends(get_core)):
    return _render(request, "_projects.html", {"projects": _projects(core, request)})


# -- data ------------------------------------------------------------------------------------


def _data_context(core: Core, name: str, params=()) -> dict[str, Any]:
    """The data view: classes and their samples, searched, filtered and paged as the page asks
    (``params``: its query string, see web/data_grid.py)."""
    classes = changes.list_classes(core, name)
    samples = views.all_samples(core, name, cap=20_000)
    view = data_grid.grid(samples, [c.label for c in classes], data_grid.parse(params))
    task = tasks.get(changes.project_task(core, name))
    return {"classes": classes, "problem": task.target.problem(changes.label_counts(core, name)),
            "waiting": views.waiting_notes(classes) if task.target.has_classes else {}, "total": len(samples),
            "shown_per_class": data_grid.PAGE, "source_words": data_grid.source_words, **view,
            **task.modality.data_view(core.blobs, samples)}


@router.get("/projects/{name}")
@html
def project_page(name: str, request: Request, core: Core = Depends(get_core)):
    ctx = _project_context(core, name, "data")
    return _render(request, "project.html", {**ctx, **_data_context(core, name, request.query_params.multi_items())})


@router.get("/projects/{name}/fragments/data")
@html
def data_fragment(name: str, request: Request, core: Core = Depends(get_core)):
    project = svc.get_project(core, name)
    return _render(request, "_data.html", {"project": project, **_task_context(project.task),
                                           **_data_context(core, name, request.query_params.multi_items())})


# -- history and runs ------------------------------------------------------------------------


def _history_context(core: Core, name: str) -> dict[str, Any]:
    h = views.history(core, name)
    done = [r for r in reversed(h["runs"]) if r["status"] == "succeeded"]
    if done and all(r.get("r2") is not None for r in done):  # a regression project
        chart = svg.line_chart([{"name": "R² (share of the variation explained)",
                                 "points": [(r["id"], r["r2"]) for r in done]}],
                               title="R² of each training run", x_label="run", y_label="R²",
                               y_max=1) if len(done) >= 2 else None
        return {**h, "chart": chart}
    chart = svg.line_chart(
        [{"name": "accuracy", "points": [(r["id"], r["accuracy"]) for r in done]},
         {"name": "balanced score (macro F1)", "points": [(r["id"], r["macro_f1"]) for r in done]}],
        title="Scores of each training run", x_label="run", y_label="score", y_min=0, y_max=1, percent=True,
    ) if len(done) >= 2 else None
    return {**h, "chart": chart}


@router.get("/projects/{name}/history")
@html
def history_page(name: str, request: Request, core: Core = Depends(get_core)):
    return _render(request, "history.html", {**_project_context(core, name, "history"),
                                             **_history_context(core, name)})


@router.get("/projects/{name}/fragments/history")
@html
def history_fragment(name: str, request: Request, core: Core = Depends(get_core)):
    project = svc.get_project(core, name)
    return _render(request, "_history.html", {"project": project, **_task_context(project.task),
                                              **_history_context(core, name)})


def _candidate_name(c: dict[str, Any]) -> str:
    settings = views.candidate_settings(c)
    return views.learner_name(c.get("learner")) + (f" · {settings}" if settings else "")


def _cell(value: str | None, n: int) -> tuple[int, int] | None:
    try:
        i, j = (int(x) for x in (value or "").split("-"))
    except ValueError:
        return None
    return (i, j) if 0 <= i < n and 0 <= j < n else None


@router.get("/projects/{name}/runs/{run_id}")
@html
def run_page(name: str, run_id: int, request: Request, cell: str | None = None, core: Core = Depends(get_core)):
    ctx = _project_context(core, name, "history")
    run = records.run_detail(core, run_id)
    if run["project"] != name:
        raise NotFound(f"run {run_id} does not belong to project {name!r}")
    result = run.get("result") or {}
    metrics = result.get("metrics") or {}
    view = ctx["task"].target.run_view(result, metrics) if metrics else None
    if view is not None:  # the target's own report (its run_template), e.g. boxes drawn on images
        return _render(request, "run.html", {
            **ctx, "run": run, "result": result, "metrics": metrics, "labels": result.get("labels") or [],
            "matrix": None, "selected": None, "examples": [], "wrong": [], "active": set(), "cm_scaled": False,
            "texts": {}, "overall": "", "evaluation": views.evaluation_sentence(result.get("evaluation")),
            "selection": result.get("selection") or {}, "scores": [], "bars": None, "curve_charts": [],
            "production": (ctx["status"].get("production") or {}).get("version"),
            **_outcome_words(core, name, result, metrics), **view})
    if not ctx["task"].target.has_classes:
        return _regression_run_page(request, core, ctx, run, result, metrics)
    labels = metrics.get("labels") or result.get("labels") or []
    cm, cm_scaled = views.per_example_matrix(metrics)
    predictions = metrics.get("predictions") or []
    selected = _cell(cell, len(labels))
    active = {s.id for s in views.all_samples(core, name)}
    base = f"/projects/{name}/runs/{run_id}"
    matrix = svg.confusion_matrix(labels, cm, lambda i, j: f"{base}?{urlencode({'cell': f'{i}-{j}'})}#examples",
                                  selected) if labels and cm else None
    examples = []
    if selected:
        t, p = labels[selected[0]], labels[selected[1]]
        examples = [x for x in predictions if x["true"] == t and x["predicted"] == p]
    wrong = sorted((x for x in predictions if x["true"] != x["predicted"]), key=lambda x: -x["confidence"])
    shown = [x["content_hash"] for x in examples + wrong[:60] if x.get("content_hash")]
    texts = ctx["task"].modality.previews(core.blobs, shown)
    selection = result.get("selection") or {}
    scores = selection.get("scores") or []
    bars = svg.score_bars([{"name": _candidate_name(s["candidate"]),
                            "value": s.get("macro_f1_mean"), "sd": s.get("macro_f1_sd"),
                            "highlight": s["index"] == selection.get("chosen_index")} for s in scores],
                          title="Cross-validated balanced score (macro F1) of each candidate") if scores else None
    curves = result.get("curves") or []
    curve_charts = []
    if curves:
        epochs = [c.get("epoch", k + 1) for k, c in enumerate(curves)]
        curve_charts.append(svg.line_chart([{"name": "training loss", "points": list(zip(epochs, [c.get("loss") for c in curves]))}],
                                           title="Training loss per epoch (lower is better)", x_label="epoch",
                                           y_label="loss", y_min=0))
        curve_charts.append(svg.line_chart([{"name": "training accuracy", "points": list(zip(epochs, [c.get("accuracy") for c in curves]))}],
                                           title="Accuracy on the training examples per epoch", x_label="epoch",
                                           y_label="accuracy", y_min=0, y_max=1, percent=True))
    production = (ctx["status"].get("production") or {}).get("version")
    return _render(request, "run.html", {
        **ctx, **_per_class_context(ctx, result, metrics, labels),
        "run": run, "result": result, "metrics": metrics, "labels": labels, "matrix": matrix,
        "selected": selected, "examples": examples, "wrong": wrong, "active": active, "cm_scaled": cm_scaled,
        "texts": texts,
        "sentences": views.class_sentences(metrics) if metrics else [],
        "overall": views.overall_sentence(metrics, result.get("baseline")) if metrics else "",
        "evaluation": views.evaluation_sentence(result.get("evaluation")),
        "selection": selection, "scores": scores, "bars": bars, "curve_charts": curve_charts,
        "production": production, **_outcome_words(core, name, result, metrics),
    })


def _per_class_context(ctx: dict[str, Any], result: dict[str, Any], metrics: dict[str, Any],
                       labels: list[str]) -> dict[str, Any]:
    """The per-class table with its threshold slider (for a target that answers one class with a
    confidence) and the new model beside the one in service, class by class, in words."""
    predictions = metrics.get("predictions") or []
    table = None
    if ctx["task"].target.thresholded and labels and predictions and "confidence" in predictions[0]:
        table = run_classes.threshold_table(predictions, labels)
    gate = result.get("gate") or {}
    served = gate.get("served") or {}
    old, new = (served.get("metrics"), served.get("new")) if served.get("enough") else (gate.get("refit"), metrics)
    threshold = ctx["settings"].confidence_threshold
    return {"thresholds": table, "threshold_step": run_classes.step_of(threshold), "threshold_now": threshold,
            "class_changes": run_classes.compare_classes(old, new, gate.get("against_version")),
            "changes_on": "its own file, on examples it had never seen" if served.get("enough")
            else "its configuration re-trained on this run's data"}


def _outcome_words(core: Core, name: str, result: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The run's gate decision in plain words, and the version "roll back" would serve again."""
    rollback_to = views.rollback_version(core, name)
    return {"gate_words": views.gate_sentence(result.get("gate"), metrics, result.get("baseline")),
            "can_rollback": rollback_to is not None, "rollback_to": rollback_to}


def _regression_run_page(request: Request, core: Core, ctx: dict[str, Any], run: dict[str, Any],
                         result: dict[str, Any], metrics: dict[str, Any]) -> Response:
    """A regression run: scores in words, predicted against true values, the largest misses."""
    predictions = metrics.get("predictions") or []
    worst = sorted(predictions, key=lambda x: -abs(x.get("error", 0.0)))[:30]
    selection = result.get("selection") or {}
    scores = selection.get("scores") or []
    bars = svg.score_bars([{"name": _candidate_name(s["candidate"]),
                            "value": s.get("r2"), "sd": s.get("r2_sd"),
                            "highlight": s["index"] == selection.get("chosen_index")} for s in scores],
                          title="Cross-validated R² of each candidate (1 is perfect, 0 no better than the average, "
                                "below 0 worse)", percent=False) if scores else None
    points = metrics.get("points") or []
    scatter = svg.predicted_vs_actual(points, title="Predicted against true values") if points else None
    production = (ctx["status"].get("production") or {}).get("version")
    return _render(request, "run.html", {
        **ctx, "run": run, "result": result, "metrics": metrics, "labels": [], "matrix": None, "selected": None,
        "examples": [], "wrong": [], "active": set(), "cm_scaled": False, "worst": worst, "scatter": scatter,
        "texts": ctx["task"].modality.previews(core.blobs, [x["content_hash"] for x in worst]),
        "sentences": views.regression_sentences(metrics, result.get("baseline")), "overall": "",
        "evaluation": views.evaluation_sentence(result.get("evaluation")), "target": result.get("target") or {},
        "selection": selection, "scores": scores, "bars": bars, "curve_charts": [],
        "production": production, **_outcome_words(core, ctx["project"].name, result, metrics),
    })


# -- try it and predictions --------------------------------------------------------------------


@router.get("/projects/{name}/try")
@html
def try_page(name: str, request: Request, core: Core = Depends(get_core)):
    ctx = _project_context(core, name, "try")
    columns = []
    if ctx["task"].modality.upload_format == "rows" and ctx["status"].get("production"):
        # the form asks for the model's own columns
        card = registry.get_model(core, name, ctx["status"]["production"]["version"]).card
        columns = (card.get("input") or {}).get("columns") or []
    return _render(request, "try.html", {**ctx, "classes": changes.list_classes(core, name), "columns": columns,
                                         "use": _use_model(core, request, ctx) if ctx["status"].get("production") else None,
                                         "trusts_local": trusts_local(core)})


@router.get("/projects/{name}/unlabelled")
@html
def unlabelled_page(name: str, request: Request, core: Core = Depends(get_core)):
    """The labelling queue: items without a label, the model's suggestion, one key to label."""
    from ..datasets.unlabelled import supports

    ctx = _project_context(core, name, "unlabelled")
    return _render(request, "unlabelled.html", {**ctx, "classes": changes.list_classes(core, name),
                                                "queue_ok": supports(ctx["task"])})


def _use_model(core: Core, request: Request, ctx: dict[str, Any]) -> dict[str, str]:
    """The "use this model" panel: endpoint and snippets, sending the first example's content
    (a real text or row the model takes) where the task sends JSON."""
    modality = ctx["task"].modality
    example = None
    if modality.upload_format != "files":
        first, _ = changes.list_samples(core, ctx["project"].name, offset=0, limit=1)
        if first and core.blobs.exists(first[0].content_hash):
            try:
                example = modality.decode(core.blobs.get(first[0].content_hash))
            except Exception:  # an unreadable blob only costs the snippet its real example
                example = None
    return views.use_model(ctx["task"], str(request.base_url), ctx["project"].name, example)


@router.get("/projects/{name}/predictions")
@html
def predictions_page(name: str, request: Request, label: str | None = None, max_confidence: str | None = None,
                     version: str | None = None, order: str = "newest", offset: int = Query(0, ge=0),
                     core: Core = Depends(get_core)):
    ctx = _project_context(core, name, "predictions")
    limit = 50
    # A plain GET form sends "" for "any": read the filters leniently instead of answering 422.
    max_confidence = _number(max_confidence, float, 0, 1)
    version = _number(version, int, 1, None)
    order = order if order in ("newest", "least_confident") else "newest"
    items, total = serving.list_predictions(core, name, label=label or None, max_confidence=max_confidence,
                                            version=version, order=order, offset=offset, limit=limit)
    filters = {k: v for k, v in {"label": label, "max_confidence": max_confidence, "version": version,
                                 "order": order}.items() if v not in (None, "")}

    def page_url(off: int) -> str:
        return f"/projects/{name}/predictions?{urlencode({**filters, 'offset': off})}"

    kept = [p.input_hash for p in items if p.input_stored and p.input_hash]
    texts = ctx["task"].modality.previews(core.blobs, kept)
    return _render(request, "predictions.html", {
        **ctx, "items": items, "total": total, "offset": offset, "limit": limit, "filters": filters, "texts": texts,
        "classes": changes.list_classes(core, name), "models": registry.list_models(core, name),
        "prev_url": page_url(max(0, offset - limit)) if offset > 0 else None,
        "next_url": page_url(offset + limit) if offset + limit < total else None,
    })


@router.get("/projects/{name}/predictions/{prediction_id}")
@html
def prediction_page(name: str, prediction_id: int, request: Request, core: Core = Depends(get_core)):
    """One recorded prediction: its input, the answer and every class's score, and why — the
    page asks ``…/predictions/{id}/explanation`` (the heatmap over the photo, or the words)."""
    ctx = _project_context(core, name, "predictions")
    with core.db.read() as s:
        p = serving.prediction_row(s, ctx["project"].id, prediction_id).to_entity()
    kept = p.input_stored and p.input_hash and core.blobs.exists(p.input_hash)
    text = ctx["task"].modality.previews(core.blobs, [p.input_hash]).get(p.input_hash) if kept else None
    scores = sorted(p.scores.items(), key=lambda kv: -kv[1])
    # what the model answered, where the record kept it with the input (a mask, an output image)
    kept_files = ((p.output or {}).get("files") or {}) if kept else {}
    answer_files = {k: f"/api/v1/projects/{quote(name, safe='')}/predictions/{p.id}/files/{k}"
                    for k in ctx["task"].target.output_files
                    if isinstance(kept_files.get(k), str) and core.blobs.exists(kept_files[k])}
    return _render(request, "prediction.html", {**ctx, "p": p, "kept": kept, "text": text, "scores": scores,
                                                "classes": changes.list_classes(core, name),
                                                "answer_files": answer_files})


def _number(value: str | None, kind, lo, hi):
    try:
        x = kind(value)
    except (TypeError, ValueError):
        return None
    return x if (lo is None or x >= lo) and (hi is None or x <= hi) else None


# -- activity (audit log) --------------------------------------------------------------------


@router.get("/projects/{name}/activity")
@html
def activity_page(name: str, request: Request, before: int | None = None, core: Core = Depends(get_core)):
    from ..access.audit import entries

    ctx = _project_context(core, name, "activity")
    items = entries(core, name, 100, before)
    return _render(request, "activity.html", {**ctx, "items": items,
                                              "older": items[-1].id if len(items) == 100 else None})


# -- settings --------------------------------------------------------------------------------


def _array_options(name: str, task: tasks.Task) -> list[tuple[str, str]] | None:
    """Choices for a list setting, when the platform knows them: for ``learners``, the kinds of
    model the project's task can try (its modality's candidates for its target, at any data size
    and time budget), in the registry's order."""
    if name == "learners":
        from ..learners import names

        usable = {c.learner for c in task.candidates(1_000_000, 2, float("inf"))}
        return [(n, views.learner_name(n)) for n in names() if n in usable]
    return None


@router.get("/projects/{name}/settings")
@html
def settings_page(name: str, request: Request, core: Core = Depends(get_core)):
    ctx = _project_context(core, name, "settings")
    schema = {f["name"]: f for f in settings_schema()}
    current = ctx["project"].settings
    groups = []
    seen = set()
    for title, names in views.SETTING_GROUPS + [("Other", [n for n in schema if n not in
                                                             {x for _, g in views.SETTING_GROUPS for x in g}])]:
        fields = []
        for n in names:
            if n == "class_colors" and not ctx["task"].target.colours_classes:
                continue  # only a task whose classes have colours (a mask's) uses it
            if n in schema and n not in seen:
                seen.add(n)
                f = schema[n]
                if n == "gate_metric":  # a choice of the scores that exist for this project's task
                    f = {**f, "enum": list(gate_metrics(ctx["project"].task))}
                types = f["type"] if isinstance(f["type"], list) else [f["type"]]
                kind = ("enum" if "enum" in f else "boolean" if "boolean" in types else
                        "integer" if "integer" in types else "number" if "number" in types else
                        "array" if "array" in types else "object" if "object" in types else "string")
                fields.append({**f, "kind": kind, "nullable": "null" in types, "value": current.get(n, f["default"]),
                               "label": views.SETTING_LABELS.get(n, n.replace("_", " ")),
                               "help": views.SETTING_HELP.get(n, ""),
                               "options": _array_options(n, ctx["task"]) if kind == "array" else None})
        if fields:
            groups.append((title, fields))
    return _render(request, "settings.html", {**ctx, "groups": groups,
                                              "preview_samples": _preview_samples(core, name, ctx["task"])})


def _preview_samples(core: Core, name: str, task: tasks.Task, n: int = 4) -> list:
    """A few training examples for the augmentation preview (GET …/augmentation-preview), of
    different labels first; none where the task's examples are not augmented."""
    if not task.modality.augmentable:
        return []
    samples, _ = changes.list_samples(core, name, limit=200)
    first: dict[str, Any] = {}
    for sample in samples:
        first.setdefault(sample.label, sample)
    picked = list(first.values())[:n]
    return picked + [x for x in samples if x not in picked][:n - len(picked)]
