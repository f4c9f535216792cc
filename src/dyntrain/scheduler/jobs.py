"""Glue from a claimed job to a finished run: data in, model registered, gate applied, job closed."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Container

import numpy as np
from sqlalchemy import select

from ..access.audit import record as record_audit
from ..ops import mlflow_log
from ..ops.background import Periodic
from .. import tasks
from ..kernel.core import Core
from ..kernel.entities import Job
from ..kernel.errors import Cancelled, DyntrainError
from ..kernel.events import publish
from ..learners.features import FeatureExtractor
from ..learners.selection import Candidate
from ..ops.observability import add_log_context, job_context
from ..kernel.project_settings import ProjectSettings
from ..registry import gate
from ..registry.models import alias_version, production_model, register_model, set_alias
from ..storage.rows import JobRow, ProjectRow, RunRow
from ..datasets.versions import get_version
from ..training import records
from ..training.pipeline import TrainingSpec, train
from .queue import finish_job, renew_lease

__all__ = ["run_job", "extractor", "choose_spec"]

log = logging.getLogger(__name__)
_extractors: dict[str, FeatureExtractor] = {}
_SERVED_OUTPUTS: dict[tuple, dict[str, np.ndarray]] = {}  # (data dir, project, version) -> {content: output}
_SERVED_OUTPUTS_MAX = 32  # model versions remembered per process
_REUSE_GROWTH = 1.25  # re-select once the data grew by more than this since the last selection


def extractor(core: Core) -> FeatureExtractor:
    """One warm feature extractor per cache dir and process (keeps the backbone session open)."""
    key = str(core.settings.cache_dir)
    if key not in _extractors:
        _extractors[key] = FeatureExtractor(core.settings.cache_dir, threads=core.settings.onnx_threads)
    return _extractors[key]


def choose_spec(core: Core, project: ProjectRow, job: Job, n_items: int, labels: set[str],
                settings: ProjectSettings) -> tuple[TrainingSpec, str]:
    """Full selection, or a quick refit of the configuration in service.

    Automatic retrains after small changes refit the production model's configuration
    (its card's learner, params and recipe; so new data serves within seconds) — only when
    the last full selection chose it and the gate put that selection's model into service.
    A manual "train now", a kept-back or no longer allowed configuration, a model in service
    from elsewhere (uploaded, promoted or rolled back by hand), new classes or a dataset
    grown by more than 25% since that selection run the full selection.
    """
    spec = TrainingSpec(dataset_version=job.dataset_version, task=project.task, seed=settings.seed, time_budget_s=settings.time_budget_s,
                        min_holdout_per_class=settings.min_holdout_per_class,
                        learners=tuple(settings.learners) if settings.learners else None,
                        augmentation=settings.augmentation, augmentation_custom=settings.augmentation_custom,
                        augmentation_copies=settings.augmentation_copies,
                        balance_target_ratio=settings.balance_target_ratio)
    if job.trigger == "manual":
        return spec, "full selection: training was requested by hand"
    with core.db.read() as s:
        runs = s.scalars(select(RunRow).where(RunRow.project_id == project.id, RunRow.status == "succeeded")
                         .order_by(RunRow.id.desc()).limit(20)).all()
        prod = production_model(s, project.id)
        card = dict(prod.card) if prod is not None else {}
        counts = get_version(s, project, job.dataset_version).counts
    last = next((r for r in runs if (r.spec or {}).get("mode") == "full"), None)
    if last is None:
        return spec, "full selection: no earlier selection to reuse"
    if not (last.result.get("gate") or {}).get("promoted"):
        return spec, f"full selection: the gate kept back the model of the last selection (run {last.id})"
    serving = {"learner": card.get("learner"), "params": card.get("params")}
    if serving != last.result["chosen"]:
        return spec, f"full selection: the model in service was not chosen by the last selection (run {last.id})"
    # (a soft vote is allowed while every learner in it is)
    gone = [name for name in Candidate.from_dict(serving).learners if settings.learners and name not in settings.learners]
    if gone:
        return spec, f"full selection: {', '.join(gone)} is no longer an allowed learner"
    # Classes still waiting for examples are not trained on, so they change nothing yet.
    target = tasks.get(project.task).target
    if target.has_classes and set(last.result.get("labels", [])) != labels - set(target.waiting(counts)):
        return spec, "full selection: the classes changed since the last selection"
    seen = sum(last.result.get("counts", {}).values())
    if n_items > seen * _REUSE_GROWTH:
        return spec, f"full selection: the data grew from {seen} to {n_items} samples since the last selection"
    return (TrainingSpec(**{**spec.to_dict(), "mode": "reuse", "candidates": (serving,),
                            "recipe": card.get("recipe")}),
            f"quick retrain: refitting {serving['learner']} of model version {prod.version} in service, chosen "
            f"by run {last.id} (data changed little since)")


class _Heartbeat:
    """Renews the job's lease and publishes progress: every ``interval`` from a side thread,
    and at once when a new stage begins (so even a run of a second shows each stage live)."""

    def __init__(self, core: Core, job_id: int, interval: float):
        self.core, self.job_id, self.interval = core, job_id, interval
        self.progress: dict[str, Any] | None = None
        self._sent: dict[str, Any] | None = None
        self.cancelled = False
        self._lock = threading.Lock()
        self._timer = Periodic(f"heartbeat-{job_id}", self.beat, interval)

    def report(self, progress: dict[str, Any]) -> None:
        new_stage = self._sent is None or progress.get("stage") != self._sent.get("stage")
        self.progress = progress
        if new_stage:
            self.beat()

    def beat(self) -> None:
        with self._lock:
            progress = self.progress if self.progress != self._sent else None
            try:
                self.cancelled = renew_lease(self.core, self.job_id, progress) or self.cancelled
                self._sent = progress or self._sent
            except Exception:
                log.exception("heartbeat of job %s failed", self.job_id)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.stop()


def run_job(core: Core, job: Job) -> None:
    """Train a claimed job. Every outcome closes the job and the run with a reason.

    Log records emitted meanwhile carry ``job_id`` and ``project`` (observability.job_context).
    """
    with job_context(job_id=job.id, project_id=job.project_id):
        _run_job(core, job)


def _run_job(core: Core, job: Job) -> None:
    # Runs go to MLflow when DYNTRAIN_MLFLOW_URI is set: an outbox sink on its own thread, started
    # before this run's events exist, so training never waits on (or fails with) the tracker.
    mlflow_log.watch(core)
    with core.db.read() as s:
        project = s.get(ProjectRow, job.project_id)
        add_log_context(project=project.name)
        items = tasks.get(project.task).modality.version_data(s, project, job.dataset_version)
        settings = ProjectSettings(**(project.settings or {}))
        prod = production_model(s, project.id)
        prod_info = None if prod is None else _served_facts(s, project, prod)
    labels = {i.label for i in items} if tasks.get(project.task).target.has_classes else set()
    spec, why = choose_spec(core, project, job, len(items), labels, settings)
    run_id = records.start_run(core, project.id, job.id, job.dataset_version, spec.to_dict() | {"why": why})
    with core.db.write() as s:
        s.get(JobRow, job.id).run_id = run_id

    started = time.monotonic()
    heartbeat = _Heartbeat(core, job.id, interval=min(1.0, core.settings.job_lease_s / 3))
    stage_weights = {"features": (0, 25), "selection": (25, 55), "augmentation": (55, 70), "evaluation": (70, 85),
                     "fit": (85, 95), "export": (95, 100)}

    def progress(stage: str, fraction: float, candidate: str | None) -> None:
        lo, hi = stage_weights[stage]
        percent = lo + (hi - lo) * fraction
        elapsed = time.monotonic() - started
        eta = elapsed * (100 - percent) / percent if percent > 1 else None
        heartbeat.report({"stage": stage, "percent": round(percent, 1),
                          "eta_s": None if eta is None else round(eta, 1), "candidate": candidate,
                          "run_id": run_id})
        if heartbeat.cancelled:
            raise Cancelled("a newer dataset version superseded this job" if job.trigger != "manual"
                            else "cancelled")

    compare_with = compare_recipe = None
    if prod_info and prod_info["card"].get("learner"):
        compare_with = Candidate(prod_info["card"]["learner"], prod_info["card"].get("params", {}))
        compare_recipe = prod_info["card"].get("recipe")
    work = Path(tempfile.mkdtemp(prefix=f"run-{run_id}-", dir=core.settings.data_dir))
    try:
        with heartbeat:
            served_model = None if prod_info is None else partial(core.live.version, project.id, prod_info["version"])
            outcome = train(items, spec, load_image=core.blobs.get, extractor=extractor(core), work_dir=work,
                            progress=progress, compare_with=compare_with, compare_recipe=compare_recipe,
                            served=served_model)
            heartbeat.report({"stage": "gate", "percent": 100.0, "eta_s": 0, "candidate": None, "run_id": run_id})
            gate_start = time.monotonic()
            served = None if prod_info is None else _measure_served(core, project, prod_info, outcome.result)
            _register_and_gate(core, job, run_id, outcome, settings, prod_info, why, served, project.task)
            core.metrics.training(outcome.result["timings"] | {"gate": time.monotonic() - gate_start})
    except Cancelled as exc:
        records.finish_run(core, run_id, "cancelled", error=exc.message)
        finish_job(core, job.id, "cancelled", error=exc.message, run_id=run_id)
    except DyntrainError as exc:
        records.finish_run(core, run_id, "failed", error=exc.message)
        finish_job(core, job.id, "failed", error=exc.message, run_id=run_id)
    except Exception as exc:  # a bug or a resource problem: record it, never leave the job hanging
        log.exception("run %s failed", run_id)
        message = f"{type(exc).__name__}: {exc}"
        records.finish_run(core, run_id, "failed", error=message, log=traceback.format_exc())
        finish_job(core, job.id, "failed", error=message, run_id=run_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _served_facts(s, project: ProjectRow, prod) -> dict[str, Any]:
    """The model in service: its card, the contents it trained on (none for an uploaded
    model: nothing here trained it) and its training-time estimate, for the gate."""
    card = dict(prod.card)
    trained: Container[str] = set()
    estimate = None
    run = s.get(RunRow, prod.run_id) if prod.run_id else None
    if prod.source != "external" and card.get("dataset_version"):
        trained = tasks.get(project.task).modality.trained_contents(s, project, card, run)
    if run is not None or card.get("metrics"):
        # what its run (or an upload's evaluation) promised, with the interval where one was recorded
        promised = ((run.result or {}).get("metrics") if run is not None else None) or card.get("metrics") or {}
        metric = tasks.get(project.task).target.headline
        interval = (promised.get("interval") or {}).get(metric)
        keys = ("accuracy", "macro_f1", "r2", "mae", *tasks.get(project.task).target.gate_metrics)
        estimate = {k: promised[k] for k in keys if promised.get(k) is not None}
        estimate |= {"interval": interval} if interval else {}
    return {"version": prod.version, "card": card, "trained_hashes": trained, "estimate": estimate or None}


def _measure_served(core: Core, project: ProjectRow, prod_info: dict, result: dict) -> dict[str, Any]:
    """Run the served model's own file (the serving code, ONNX Runtime) on the new run's
    evaluation samples it never trained on; see :func:`gate.measure_served`."""
    modality = tasks.get(project.task).modality

    # A file's output for a content never changes: each run scores only contents this model file
    # has not scored before (a quick retrain's evaluation samples are mostly the last run's).
    known = _SERVED_OUTPUTS.setdefault((core.settings.data_dir, project.id, prod_info["version"]), {})
    while len(_SERVED_OUTPUTS) > _SERVED_OUTPUTS_MAX:
        _SERVED_OUTPUTS.pop(next(iter(_SERVED_OUTPUTS)))

    def run_served(samples: list[dict]):
        by_key = {p["content_hash"]: p for p in samples}
        todo = [h for h in by_key if h not in known]
        if todo:
            model = core.live.version(project.id, prod_info["version"])
            for k in range(0, len(todo), 32):
                chunk = todo[k:k + 32]
                inputs = [modality.served_input(by_key[h], core.blobs.get) for h in chunk]
                known.update(zip(chunk, model.predict_items(inputs)))
        return [known[p["content_hash"]] for p in samples]

    predictions = result["metrics"].get("predictions") or []
    labels = prod_info["card"].get("labels") or []
    try:
        served = gate.measure_served(predictions, prod_info["trained_hashes"], labels, project.task, run_served,
                                     version=prod_info["version"], load_blob=core.blobs.get)
    except Exception as exc:  # a missing or broken file must not sink the run: the refit still decides
        log.warning("could not score the served model version %s", prod_info["version"], exc_info=True)
        served = {"version": prod_info["version"], "n": 0, "enough": False, "metrics": None, "new": None,
                  "note": f"its model file could not be run ({type(exc).__name__}: {str(exc)[:200]})"}
    served["estimate"] = prod_info["estimate"]
    return served


def _register_and_gate(core: Core, job: Job, run_id: int, outcome, settings: ProjectSettings,
                       prod_info: dict | None, why: str, served: dict | None, task: str) -> None:
    result = outcome.result
    card = outcome.card | {"run_id": run_id, "source": "trained"}
    model = register_model(core, job.project_id, outcome.onnx_path, card, run_id=run_id)
    refit = (result["comparison"] or {}).get("metrics") if prod_info else None
    promote, reason = gate.decide(result["metrics"], refit, result["baseline"], settings, task=task, served=served)
    result["gate"] = {"promoted": promote, "reason": reason, "against_version": prod_info and prod_info["version"],
                      "metric": settings.gate_metric, "task": task, "served": served,
                      # labels and confusion matrix: the run page says which classes it tells apart better
                      "refit": refit and {k: refit.get(k) for k in ("accuracy", "macro_f1", "per_class", "r2", "mae",
                                                                    "labels", "confusion_matrix",
                                                                    *tasks.get(task).target.gate_metrics)
                                          if k in refit}}
    result["gate"]["summary"] = gate.summary(result["gate"], task)
    with core.db.write() as s:
        project = s.get(ProjectRow, job.project_id, with_for_update=True)
        if promote and alias_version(s, project.id) != (prod_info and prod_info["version"]):
            # Someone promoted or rolled back while this run trained: it was measured against another
            # model, and a person's choice is not overruled by the scheduler.
            promote, reason = False, ("the model in service changed while this run trained; it was compared with "
                                      f"version {prod_info and prod_info['version']}, so it is kept back (promote it "
                                      "by hand if you want it)")
            result["gate"].update(promoted=False, reason=reason)
        # The gate acts on its own: the audit log names the scheduler, with the job's trigger.
        record_audit(s, "scheduler", "promote" if promote else "keep_back", project.name,
                     version=model.version, run_id=run_id, job_id=job.id, trigger=job.trigger, reason=reason)
        if promote:
            set_alias(s, project, model.version, f"run {run_id}: {reason}")
        else:
            publish(s, project.id, "model.kept_back", {"version": model.version, "reason": reason,
                                                       "production": prod_info and prod_info["version"]})
    if promote:
        core.live.refresh(job.project_id)  # load + warm now, so the job ends with the new model serving
    log_text = "\n".join([why, *outcome.log, f"gate: {reason}"])
    records.finish_run(core, run_id, "succeeded", result=result, log=log_text, model_version=model.version)
    metrics = result["metrics"]
    finish_job(core, job.id, "succeeded", run_id=run_id,
               event_data={"model_version": model.version, "promoted": promote,
                           "kpis": {k: metrics[k] for k in ("accuracy", "macro_f1", "r2", "mae",
                                                            *tasks.get(task).target.gate_metrics) if k in metrics},
                           "score": tasks.get(task).target.headline_words(metrics),
                           "learner": result["chosen"]["learner"]})
