"""Run records: create, update, finish, and read back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..kernel.core import Core
from ..kernel.errors import DyntrainError, NotFound
from ..kernel.projects import project_row
from ..storage.rows import ProjectRow, RunRow, utcnow

__all__ = ["start_run", "finish_run", "list_runs", "run_detail", "run_summary"]


def start_run(core: Core, project_id: int, job_id: int | None, dataset_version: int, spec: dict) -> int:
    with core.db.write() as s:
        row = RunRow(project_id=project_id, job_id=job_id, dataset_version=dataset_version, spec=spec,
                     status="running")
        s.add(row)
        s.flush()
        return row.id


def finish_run(core: Core, run_id: int, status: str, *, result: dict | None = None, error: str | None = None,
               log: str = "", model_version: int | None = None) -> None:
    with core.db.write() as s:
        row = s.get(RunRow, run_id)
        if row is None:  # its project was deleted while it ran (with its runs): nothing left to close
            return
        row.status, row.error, row.log, row.finished_at = status, error, log, utcnow()
        if result is not None:
            row.result = result
        if model_version is not None:
            row.model_version = model_version


def learner_shown(chosen: dict | None) -> str | None:
    """The chosen learner's name as runs list it; a soft vote by its members ("soft vote of
    linear_probe(C=100.0), pixel_logreg(C=0.1)"), whose own name would say nothing."""
    if not chosen or not chosen.get("learner"):
        return None
    from ..learners.candidates import Candidate

    try:
        candidate = Candidate.from_dict(chosen)
        return candidate.label if candidate.learner_class.composite else candidate.learner
    except DyntrainError:  # a learner this version no longer has: its recorded name
        return chosen["learner"]


def run_summary(row: RunRow) -> dict[str, Any]:
    result = row.result or {}
    metrics = result.get("metrics") or {}
    return {
        "id": row.id, "job_id": row.job_id, "dataset_version": row.dataset_version, "status": row.status,
        "learner": learner_shown(result.get("chosen")),
        "params": (result.get("chosen") or {}).get("params"),
        "evaluation": result.get("evaluation"),
        "accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
        "r2": metrics.get("r2"), "mae": metrics.get("mae"),  # regression runs
        "model_version": row.model_version, "gate": result.get("gate"),
        "seconds": result.get("seconds"), "error": row.error,
        "purged_samples": result.get("purged_samples", 0),
        "created_at": row.created_at.isoformat(), "finished_at": row.finished_at and row.finished_at.isoformat(),
    }


def list_runs(core: Core, project: str, limit: int = 50) -> list[dict[str, Any]]:
    with core.db.read() as s:
        pid = project_row(s, project).id
        rows = s.scalars(select(RunRow).where(RunRow.project_id == pid).order_by(RunRow.id.desc()).limit(limit))
        return [run_summary(r) for r in rows]


def run_detail(core: Core, run_id: int) -> dict[str, Any]:
    with core.db.read() as s:
        row = s.get(RunRow, run_id)
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        project = s.get(ProjectRow, row.project_id)
        return {**run_summary(row), "project": project.name, "spec": row.spec, "result": row.result,
                "log": row.log}
