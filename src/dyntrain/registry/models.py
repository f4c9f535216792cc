"""Model registry: versions per project (1, 2, 3 …) and aliases. ``production`` is what serves.

Hot swap = moving the alias; rollback = moving it back (MLflow-like semantics). Model files
are immutable: written once under a temp name, then renamed, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..kernel.core import Core
from ..kernel.entities import ModelVersion
from ..kernel.errors import Cancelled, Invalid, NotFound, NotReady
from ..kernel.events import publish
from ..kernel.projects import project_row
from ..storage.files import atomic_write
from ..storage.rows import AliasHistoryRow, AliasRow, ModelVersionRow, ProjectRow

__all__ = [
    "PRODUCTION", "register_model", "list_models", "get_model", "model_row", "set_alias", "alias_version",
    "promote", "rollback", "rollback_target", "alias_history", "production_model", "model_file",
]

PRODUCTION = "production"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def register_model(core: Core, project_id: int, onnx_file: Path, card: dict[str, Any], *, run_id: int | None,
                   source: str = "trained") -> ModelVersion:
    """Copy ``onnx_file`` into the model store as the project's next version and record it."""
    with core.db.write() as s:
        project = s.get(ProjectRow, project_id, with_for_update=True)
        if project is None:  # deleted while its run trained (ids are never reused: no other project has it)
            raise Cancelled(f"project {project_id} was deleted while this model trained; nothing to register")
        version = (s.scalar(select(func.max(ModelVersionRow.version)).where(
            ModelVersionRow.project_id == project_id)) or 0) + 1
        folder = core.settings.model_dir / project.name
        folder.mkdir(parents=True, exist_ok=True)
        # the file's own format: ONNX, or another a target serves (a recommender's .npz)
        target = folder / f"v{version}-{os.urandom(4).hex()}{Path(onnx_file).suffix or '.onnx'}"
        with open(onnx_file, "rb") as original:
            atomic_write(target, lambda f: shutil.copyfileobj(original, f))
        card = {**card, "version": version}
        target.with_suffix(".json").write_text(json.dumps(card, indent=2, default=str))
        key = str(target.relative_to(core.settings.model_dir))
        if core.artifacts is not None:  # shared store (S3): published before the row commits
            core.artifacts.put_model(key, target)
        row = ModelVersionRow(project_id=project_id, version=version, run_id=run_id, source=source,
                              path=key, sha256=_file_sha256(target), card=card)
        s.add(row)
        s.flush()
        return row.to_entity()


def model_file(core: Core, key: str) -> Path:
    """The local file of a version's stored ``path``; refused (UnsafePath, a 404) unless it lies
    inside the model store, fetched first from a shared store (S3) this machine has not seen."""
    from ..storage.artifacts import open_artifacts

    return (core.artifacts or open_artifacts(core.settings)).model_file(key)


def _aliases(s: Session, project_id: int) -> dict[int, tuple[str, ...]]:
    out: dict[int, list[str]] = {}
    for a in s.scalars(select(AliasRow).where(AliasRow.project_id == project_id)):
        out.setdefault(a.version, []).append(a.name)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def list_models(core: Core, project: str) -> list[ModelVersion]:
    with core.db.read() as s:
        pid = project_row(s, project).id
        aliases = _aliases(s, pid)
        rows = s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == pid)
                         .order_by(ModelVersionRow.version.desc()))
        return [r.to_entity(aliases.get(r.version, ())) for r in rows]


def model_row(s: Session, project: ProjectRow, version: int) -> ModelVersionRow:
    row = s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == project.id,
                                                  ModelVersionRow.version == version)).first()
    if row is None:
        raise NotFound(f"project {project.name!r} has no model version {version}")
    return row


def get_model(core: Core, project: str, version: int) -> ModelVersion:
    with core.db.read() as s:
        row = project_row(s, project)
        return model_row(s, row, version).to_entity(_aliases(s, row.id).get(version, ()))


def alias_version(s: Session, project_id: int, alias: str = PRODUCTION) -> int | None:
    return s.scalar(select(AliasRow.version).where(AliasRow.project_id == project_id, AliasRow.name == alias))


def production_model(s: Session, project_id: int) -> ModelVersionRow | None:
    version = alias_version(s, project_id)
    if version is None:
        return None
    return s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == project_id,
                                                   ModelVersionRow.version == version)).first()


def set_alias(s: Session, project: ProjectRow, version: int, reason: str, alias: str = PRODUCTION,
              action: str = "promote") -> int | None:
    """Point ``alias`` at ``version`` inside the caller's transaction; returns the previous version.

    ``action`` is recorded in the alias history: "rollback" when the move undoes the current
    version's promotion (see :func:`rollback_target`). The event (and, on PostgreSQL, the
    replicas' notification) commits with the move.
    """
    model_row(s, project, version)
    row = s.get(AliasRow, (project.id, alias), with_for_update=True)
    previous = row.version if row else None
    if previous == version:
        return previous
    if row is None:
        s.add(AliasRow(project_id=project.id, name=alias, version=version))
    else:
        row.version = version
    s.add(AliasHistoryRow(project_id=project.id, alias=alias, version=version, previous_version=previous,
                          action=action, reason=reason))
    publish(s, project.id, "model.promoted", {"version": version, "previous": previous, "alias": alias,
                                              "reason": reason, "action": action})
    if s.bind.dialect.name == "postgresql":
        s.execute(select(func.pg_notify("dyntrain_alias", json.dumps({"project_id": project.id, "version": version}))))
    return previous


def promote(core: Core, project: str, version: int, reason: str = "promoted by hand") -> int | None:
    with core.db.write() as s:
        return set_alias(s, project_row(s, project, lock=True), version, reason)


def rollback_target(s: Session, project_id: int, alias: str = PRODUCTION) -> int | None:
    """The version ``alias`` served before the current one was promoted (None: nothing before it).

    Replays the alias history as a stack: a promotion pushes its version, a rollback pops
    back to the version it restored. So rollbacks walk back v3 → v2 → v1 instead of
    toggling between the last two. Versions since deleted (housekeeping) are skipped.
    """
    stack: list[int] = []
    for version, action in s.execute(select(AliasHistoryRow.version, AliasHistoryRow.action).where(
            AliasHistoryRow.project_id == project_id, AliasHistoryRow.alias == alias).order_by(AliasHistoryRow.id)):
        if action == "rollback":
            while stack and stack[-1] != version:
                stack.pop()
        if not stack or stack[-1] != version:
            stack.append(version)
    existing = set(s.scalars(select(ModelVersionRow.version).where(ModelVersionRow.project_id == project_id)))
    current = alias_version(s, project_id, alias)
    return next((v for v in reversed(stack[:-1]) if v in existing and v != current), None)


def rollback(core: Core, project: str) -> int:
    """Move ``production`` back to the version that served before the current one's promotion."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        current = alias_version(s, row.id)
        if current is None:
            raise NotReady(f"project {project!r} has no model in service to roll back")
        target = rollback_target(s, row.id)
        if target is None:
            raise Invalid(f"version {current} is the first model in service that still exists: there is nothing "
                          "to roll back to (promote a version by hand instead)")
        set_alias(s, row, target, f"rolled back from version {current}", action="rollback")
        return target


def alias_history(core: Core, project: str) -> list[dict[str, Any]]:
    """Which version served when, and why (newest first)."""
    with core.db.read() as s:
        pid = project_row(s, project).id
        rows = s.scalars(select(AliasHistoryRow).where(AliasHistoryRow.project_id == pid)
                         .order_by(AliasHistoryRow.id.desc()))
        return [{"alias": r.alias, "version": r.version, "previous_version": r.previous_version,
                 "action": r.action, "reason": r.reason, "at": r.created_at.isoformat()} for r in rows]
