"""Projects: create, list with status, update settings, delete."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .core import Core
from .. import tasks
from .entities import Project
from .errors import Conflict, Invalid, NotFound
from .project_settings import check_webhook_destination, merge_settings
from ..storage.rows import AliasRow, JobRow, ModelVersionRow, ProjectRow, SampleRow

__all__ = ["create_project", "get_project", "project_row", "list_projects", "update_project",
           "delete_project", "project_status"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def project_row(session: Session, name: str, *, lock: bool = False) -> ProjectRow:
    """The project's row, locked for update when asked (serialises changes to one project)."""
    query = select(ProjectRow).where(ProjectRow.name == name)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(f"project {name!r} does not exist (list them with GET /api/v1/projects)")
    return row


def create_project(core: Core, name: str, task: str = tasks.DEFAULT, description: str = "",
                   settings: dict[str, Any] | None = None) -> Project:
    """Create a project; its name is its address in URLs.

    >>> create_project(core, "products")  # doctest: +SKIP
    """
    if not _NAME.match(name or ""):
        raise Invalid("project name must be 1-100 characters: letters, digits, '-', '_' or '.', "
                      "starting with a letter or digit")
    tasks.get(task)  # Invalid names the supported tasks
    merged = merge_settings({}, settings or {}, task=task)
    check_webhook_destination(settings, core.settings.webhook_allow_private)
    try:
        with core.db.write() as s:
            row = ProjectRow(name=name, task=task, description=description, settings=merged)
            s.add(row)
            s.flush()
            return row.to_entity()
    except IntegrityError:
        raise Conflict(f"a project named {name!r} already exists; pick another name") from None


def get_project(core: Core, name: str) -> Project:
    with core.db.read() as s:
        return project_row(s, name).to_entity()


def update_project(core: Core, name: str, *, description: str | None = None,
                   settings: dict[str, Any] | None = None) -> Project:
    check_webhook_destination(settings, core.settings.webhook_allow_private)  # before the write: it resolves DNS
    with core.db.write() as s:
        row = project_row(s, name, lock=True)
        if description is not None:
            row.description = description
        if settings:
            row.settings = merge_settings(row.settings or {}, settings, task=row.task)
        s.flush()
        return row.to_entity()


def delete_project(core: Core, name: str) -> None:
    """Delete a project and its records. Blobs stay until garbage collection."""
    with core.db.write() as s:
        s.delete(project_row(s, name, lock=True))


def project_status(s: Session, row: ProjectRow) -> dict[str, Any]:
    """What the project list shows at a glance."""
    counts = dict(s.execute(
        select(SampleRow.label, func.count()).where(SampleRow.project_id == row.id, SampleRow.status == "active")
        .group_by(SampleRow.label)
    ).all())
    production = s.scalar(select(AliasRow.version).where(AliasRow.project_id == row.id, AliasRow.name == "production"))
    model = None
    if production is not None:
        mv = s.scalar(select(ModelVersionRow).where(ModelVersionRow.project_id == row.id,
                                                    ModelVersionRow.version == production))
        metrics = ((mv.card or {}).get("metrics") or {}) if mv else {}
        model = {"version": production, "accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
                 "r2": metrics.get("r2"), "mae": metrics.get("mae")}
    job = s.scalars(select(JobRow).where(JobRow.project_id == row.id).order_by(JobRow.id.desc()).limit(1)).first()
    return {
        "samples": sum(counts.values()),
        "classes": len(counts),
        "counts": counts,
        "dataset_version": row.head_version or None,
        "production": model,
        "training": None if job is None else {"job_id": job.id, "status": job.status,
                                              "progress": job.progress or {}},
    }


def list_projects(core: Core) -> list[tuple[Project, dict[str, Any]]]:
    with core.db.read() as s:
        rows = s.scalars(select(ProjectRow).order_by(ProjectRow.name)).all()
        return [(r.to_entity(), project_status(s, r)) for r in rows]
