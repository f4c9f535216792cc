"""Runs and models in MLflow: each finished run, its scores and its model, where people already look.

Off unless ``DYNTRAIN_MLFLOW_URI`` names a tracking store: an ``http(s)://`` tracking server, or a
local ``sqlite:///…`` database (``pip install "dyntrain[mlflow]"``, which is ``mlflow-skinny``).
Per project, one MLflow experiment and one registered model, both named after the project. Each
succeeded run becomes an MLflow run with

* tags: project, run id, dataset version and hash, code version, learner, model version, task;
* parameters: the learner's, its data recipe, evaluation mode, seed;
* metrics: the headline scores and their 95% ranges, per-class precision / recall / F1, the
  cross-validated score of every learner candidate selection tried;
* artifacts: ``card.json``, ``report.json`` (the run's result), ``confusion_matrix.json``,
  ``log.txt``, and the model — logged with MLflow's ONNX flavour and registered as a new version
  of the project's model (``models:/<project>@production`` follows dyntrain's production alias:
  promotions and rollbacks move it).

Export never holds up training or serving: it is a sink of the events outbox
(:class:`~dyntrain.kernel.events.EventDrain`, sink ``mlflow``), drained on its own thread and
retried with backoff while the tracker is down; nothing is lost (the cursor only moves past
what MLflow accepted) and nothing is logged twice (a run already exported, found by its
``dyntrain.run_id`` tag, is skipped; a half-exported one is deleted and exported again).
:func:`sync` back-fills a project's earlier runs the same way.

>>> export_run(core, 12, "sqlite:///mlflow.db")  # doctest: +SKIP
{'run': 12, 'mlflow_run_id': '6f55…', 'registered_version': 3, 'skipped': False}
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any

from sqlalchemy import select

from ..kernel.errors import Invalid, MissingExtra, NotFound
from ..kernel.events import EventDrain, ProjectEvent
from ..storage.rows import AliasRow, DatasetVersionRow, ModelVersionRow, ProjectRow, RunRow
from .background import Periodic

__all__ = ["ENV", "tracking_uri", "export_run", "move_alias", "sync", "MlflowExporter", "watch", "exporter_for"]

log = logging.getLogger(__name__)

ENV = "DYNTRAIN_MLFLOW_URI"
SINK = "mlflow"
_TAG = "dyntrain."
_EXPORTED = "dyntrain.exported"
# MLflow's fluent API (log_model) keeps its tracking URI and active run in process globals.
_fluent_lock = threading.Lock()


def tracking_uri(core) -> str | None:
    """The tracking store to export to: the server setting when it has one, else the environment."""
    return getattr(core.settings, "mlflow_uri", None) or os.environ.get(ENV) or None


def _mlflow():
    try:
        import mlflow  # noqa: F401
        from mlflow import MlflowClient
    except ImportError:
        raise MissingExtra("exporting runs to MLflow", "mlflow") from None
    return MlflowClient


def _client(uri: str):
    return _mlflow()(tracking_uri=uri, registry_uri=uri)


def _metric_name(name: str) -> str:
    """MLflow accepts letters, digits, ``_ - . / :`` and spaces in names: anything else becomes ``_``."""
    return re.sub(r"[^\w\-./: ]", "_", str(name))[:250]


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if f == f and abs(f) != float("inf") else None


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    """Flat numeric metrics of a run's result: headline scores and their 95% ranges, per class,
    and the cross-validated mean of every candidate selection scored."""
    out: dict[str, float] = {}
    metrics = result.get("metrics") or {}
    for key, value in metrics.items():
        if (n := _number(value)) is not None:
            out[key] = n
    for name, bounds in (metrics.get("interval") or {}).items():  # {"accuracy": [low, high]}
        if isinstance(bounds, (list, tuple)) and len(bounds) == 2 and None not in map(_number, bounds):
            out[f"{name}.low"], out[f"{name}.high"] = float(bounds[0]), float(bounds[1])
    for cls, scores in (metrics.get("per_class") or {}).items():
        for k, v in (scores or {}).items():
            if (n := _number(v)) is not None:
                out[f"class.{cls}.{k}"] = n
    for cand in (result.get("selection") or {}).get("scores") or []:
        label = cand.get("label") if isinstance(cand, dict) else None
        for k, v in (cand or {}).items() if label else ():
            if k.endswith("_mean") and (n := _number(v)) is not None:
                out[f"cv.{label}.{k[:-5]}"] = n
    if (n := _number(result.get("seconds"))) is not None:
        out["training_seconds"] = n
    return {_metric_name(k): v for k, v in out.items()}


def _params(card: dict[str, Any], result: dict[str, Any]) -> dict[str, str]:
    params = {"learner": card.get("learner"), "task": card.get("task"), "evaluation": card.get("evaluation"),
              "seed": card.get("seed"), "dataset_version": card.get("dataset_version")}
    params.update({f"param.{k}": v for k, v in (card.get("params") or {}).items()})
    recipe = card.get("recipe") or {}
    params.update({f"recipe.{k}": json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                   for k, v in recipe.items()})
    return {_metric_name(k): str(v)[:6000] for k, v in params.items() if v is not None}


def _facts(core, run_id: int) -> dict[str, Any]:
    with core.db.read() as s:
        run = s.get(RunRow, run_id)
        if run is None:
            raise NotFound(f"run {run_id} does not exist")
        project = s.get(ProjectRow, run.project_id)
        model = s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == run.project_id,
                                                        ModelVersionRow.run_id == run_id)).first()
        dataset = s.scalars(select(DatasetVersionRow).where(DatasetVersionRow.project_id == run.project_id,
                                                            DatasetVersionRow.number == run.dataset_version)).first()
        production = s.scalar(select(AliasRow.version).where(AliasRow.project_id == run.project_id,
                                                             AliasRow.name == "production"))
        return {"run": run.to_entity(), "project": project.name, "model": model and model.to_entity(),
                "dataset_hash": dataset.hash if dataset else "", "production": production}


def _artifact_location(uri: str, project: str) -> str | None:
    """Where a local store keeps artifacts: beside its database (MLflow's default is ``./mlruns``
    under whatever directory the server was started in); a tracking server decides for itself."""
    from pathlib import Path

    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts" / project).as_uri()
    return None


def _experiment(client, project: str, uri: str) -> str:
    exp = client.get_experiment_by_name(project)
    if exp is None:
        try:
            return client.create_experiment(project, artifact_location=_artifact_location(uri, project),
                                            tags={"dyntrain.project": project})
        except Exception:  # created meanwhile by another exporter
            exp = client.get_experiment_by_name(project)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _registered_version(client, project: str, version: int):
    """The MLflow model version holding dyntrain's model ``version`` of ``project``, or None."""
    try:
        found = client.search_model_versions(f"name = '{project}'", max_results=1000)
    except Exception as exc:  # no such registered model yet
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower():
            return None
        raise
    for mv in found:
        if (mv.tags or {}).get("dyntrain.version") == str(version):
            return mv
    return None


def export_run(core, run_id: int, uri: str | None = None) -> dict[str, Any]:
    """Log one succeeded run (and register its model) in MLflow; a run exported before is skipped."""
    uri = uri or tracking_uri(core)
    if not uri:
        raise Invalid(f"no MLflow tracking store is set: set {ENV} (http://…, sqlite:///…)")
    facts = _facts(core, run_id)
    run, model, project = facts["run"], facts["model"], facts["project"]
    if run.status != "succeeded" or model is None:
        return {"run": run_id, "skipped": True, "reason": f"run {run_id} {run.status} without a model"}
    client = _client(uri)
    exp_id = _experiment(client, project, uri)
    earlier = client.search_runs([exp_id], f"tags.`dyntrain.run_id` = '{run_id}'", max_results=10)
    for r in earlier:
        if r.data.tags.get(_EXPORTED) == "1":
            return {"run": run_id, "mlflow_run_id": r.info.run_id, "skipped": True, "reason": "exported before"}
        client.delete_run(r.info.run_id)  # a half-exported attempt: start again
    card, result = dict(model.card), dict(run.result)
    tags = {"dyntrain.project": project, "dyntrain.run_id": str(run_id),
            "dyntrain.dataset_version": str(run.dataset_version), "dyntrain.dataset_hash": facts["dataset_hash"],
            "dyntrain.code": str(result.get("code") or card.get("code") or ""),
            "dyntrain.learner": str(card.get("learner") or ""), "dyntrain.model_version": str(model.version),
            "dyntrain.task": str(card.get("task") or ""), "mlflow.source.name": "dyntrain",
            "dyntrain.promoted": str(bool((result.get("gate") or {}).get("promoted"))).lower()}
    start = int(run.created_at.timestamp() * 1000)
    mrun = client.create_run(exp_id, start_time=start, tags=tags, run_name=f"run {run_id} (v{model.version})")
    rid = mrun.info.run_id
    from mlflow.entities import Metric, Param

    params = _params(card, result)
    metrics = _metrics(result)
    end = int((run.finished_at or run.created_at).timestamp() * 1000)
    items = list(params.items())
    for i in range(0, max(1, len(items)), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(rid, params=[Param(k, v) for k, v in items[i : i + 100]])
    metric_items = [Metric(k, v, end, 0) for k, v in metrics.items()]
    for i in range(0, len(metric_items), 1000):
        client.log_batch(rid, metrics=metric_items[i : i + 1000])
    client.log_dict(rid, card, "card.json")
    report = {k: v for k, v in result.items() if k != "metrics"} | {
        "metrics": {k: v for k, v in (result.get("metrics") or {}).items() if k != "predictions"}}
    client.log_dict(rid, json.loads(json.dumps(report, default=str)), "report.json")
    matrix = (result.get("metrics") or {}).get("confusion_matrix")
    if matrix is not None:
        client.log_dict(rid, {"labels": card.get("labels"), "rows_true_columns_predicted": matrix},
                        "confusion_matrix.json")
    if run.log:
        client.log_text(rid, run.log, "log.txt")
    registered = _registered_version(client, project, model.version)
    if registered is None:
        registered = _log_model(core, client, uri, rid, project, model)
    if facts["production"] == model.version:
        client.set_registered_model_alias(project, "production", registered.version)
    client.set_tag(rid, _EXPORTED, "1")  # last: only a complete export counts as done
    client.set_terminated(rid, "FINISHED", end_time=end)
    return {"run": run_id, "mlflow_run_id": rid, "registered_version": int(registered.version), "skipped": False}


def _log_model(core, client, uri: str, rid: str, project: str, model):
    """Log the ONNX file with MLflow's ONNX flavour (when ``onnx`` is installed, as beside
    training) or as a plain artifact, and register it as a version of the project's model."""
    from ..registry.models import model_file

    path = model_file(core, model.path)
    tags = {"dyntrain.version": str(model.version), "dyntrain.sha256": model.sha256}
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        import mlflow
        import mlflow.onnx

        with _fluent_lock:
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            with mlflow.start_run(run_id=rid, nested=False):
                info = mlflow.onnx.log_model(onnx.load(str(path)), name="model", registered_model_name=project,
                                             onnx_execution_providers=["CPUExecutionProvider"],
                                             save_as_external_data=False)
        version = str(info.registered_model_version)
    else:
        client.log_artifact(rid, str(path), "model")
        try:
            client.create_registered_model(project)
        except Exception:  # it exists
            pass
        run = client.get_run(rid)
        version = client.create_model_version(project, f"{run.info.artifact_uri}/model/{path.name}", run_id=rid).version
    for k, v in tags.items():
        client.set_model_version_tag(project, version, k, v)
    return client.get_model_version(project, version)


def move_alias(core, project: str, version: int, uri: str | None = None, alias: str = "production") -> bool:
    """Point MLflow's ``alias`` of the project's model at dyntrain's model ``version``; False when
    that version was never exported (an uploaded model, or a run before export was on)."""
    uri = uri or tracking_uri(core)
    client = _client(uri)
    registered = _registered_version(client, project, version)
    if registered is None:
        return False
    client.set_registered_model_alias(project, alias, registered.version)
    return True


def sync(core, project: str, uri: str | None = None) -> list[dict[str, Any]]:
    """Back-fill: export every succeeded run of ``project`` not in MLflow yet, oldest first, then
    point ``production`` where dyntrain's points."""
    uri = uri or tracking_uri(core)
    if not uri:
        raise Invalid(f"no MLflow tracking store is set: set {ENV} or pass --uri")
    with core.db.read() as s:
        row = s.scalars(select(ProjectRow).where(ProjectRow.name == project)).first()
        if row is None:
            raise NotFound(f"project {project!r} does not exist")
        runs = list(s.scalars(select(RunRow.id).where(RunRow.project_id == row.id, RunRow.status == "succeeded")
                              .order_by(RunRow.id)))
        production = s.scalar(select(AliasRow.version).where(AliasRow.project_id == row.id,
                                                             AliasRow.name == "production"))
    done = [export_run(core, run_id, uri) for run_id in runs]
    if production is not None:
        move_alias(core, project, production, uri)
    return done


class MlflowExporter:
    """Drains the events outbox into MLflow (sink ``mlflow``): ``job.finished`` exports the run,
    a ``model.promoted`` of the production alias (promotion or rollback) moves MLflow's alias.
    An MLflow failure stops the batch at that event; :class:`EventDrain` retries it with backoff."""

    def __init__(self, core, uri: str | None = None, poll_s: float = 2.0, backoff_s: float = 2.0,
                 max_backoff_s: float = 60.0):
        self.core, self.uri = core, uri or tracking_uri(core)
        if not self.uri:
            raise Invalid(f"no MLflow tracking store is set: set {ENV}")
        _mlflow()  # refuse now, not at the first event, when the extra is missing
        self.exported: list[dict] = []  # what this exporter did (tests, logs)
        self._drain = EventDrain(core, SINK, self._deliver, batch=50, backoff_s=backoff_s,
                                 max_backoff_s=max_backoff_s)
        self._timer = Periodic("mlflow", self.tick, poll_s)
        self._tick_lock = threading.Lock()

    def start(self) -> "MlflowExporter":
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()

    def tick(self) -> int:
        with self._tick_lock:  # the timer and a caller never drain at once
            return self._drain.tick()

    def _deliver(self, events: list[ProjectEvent]) -> int:
        for done, (event, project) in enumerate(events):
            try:
                if event.type == "job.finished" and event.data.get("run_id"):
                    self.exported.append(export_run(self.core, int(event.data["run_id"]), self.uri))
                elif event.type == "model.promoted" and event.data.get("alias", "production") == "production":
                    move_alias(self.core, project, int(event.data["version"]), self.uri)
            except Exception as exc:  # noqa: BLE001 — the tracker is down or refused: retried later
                log.warning("MLflow export stopped at event %s (%s of %s): %s", event.id, event.type, project, exc)
                return done
            if self._timer.stopping.is_set():
                return done + 1
        return len(events)


_EXPORTERS: dict[int, tuple[Any, MlflowExporter]] = {}
_exporters_lock = threading.Lock()


def exporter_for(core) -> MlflowExporter | None:
    """This process's running exporter for ``core`` (None when export is off)."""
    with _exporters_lock:
        entry = _EXPORTERS.get(id(core))
        return entry[1] if entry is not None and entry[0] is core else None


def watch(core, **options) -> MlflowExporter | None:
    """Make sure this process exports ``core``'s events to MLflow when ``DYNTRAIN_MLFLOW_URI`` is
    set (idempotent; cheap when off). Called where runs start, so the outbox cursor exists before
    the run's own events; a missing extra or bad URI is logged once and never fails a run.
    ``options`` (poll and backoff seconds) apply when this call starts the exporter."""
    if not tracking_uri(core):
        return None
    with _exporters_lock:
        entry = _EXPORTERS.get(id(core))
        if entry is not None and entry[0] is core:
            return entry[1]
        try:
            exporter = MlflowExporter(core, **options).start()
        except Exception as exc:  # noqa: BLE001
            log.error("MLflow export is off: %s", getattr(exc, "message", exc))
            exporter = None
        _EXPORTERS[id(core)] = (core, exporter)
        return exporter
