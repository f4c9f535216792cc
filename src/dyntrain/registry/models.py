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

from ..core import Core
from ..entities import ModelVersion
from ..errors import Invalid, NotFound, NotReady
from ..events import publish
from ..projects import project_row
from ..storage.files import atomic_write
from ..storage.rows import AliasHistoryRow, AliasRow, ModelVersionRow, ProjectRow

__all__ = [
    "PRODUCTION", "register_model", "list_models", "get_model", "model_row", "set_alias", "alias_version",
    "promote", "rollback", "alias_history", "production_model",
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
        version = (s.scalar(select(func.max(ModelVersionRow.version)).where(
            ModelVersionRow.project_id == project_id)) or 0) + 1
        folder = core.settings.model_dir / project.name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"v{version}-{os.urandom(4).hex()}.onnx"
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


def set_alias(s: Session, project: ProjectRow, version: int, reason: str, alias: str = PRODUCTION) -> int | None:
    """Point ``alias`` at ``version`` inside the caller's transaction; returns the previous version.

    The event (and, on PostgreSQL, the replicas' notification) commits with the move.
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
                          reason=reason))
    publish(s, project.id, "model.promoted", {"version": version, "previous": previous, "alias": alias,
                                              "reason": reason})
    if s.bind.dialect.name == "postgresql":
        s.execute(select(func.pg_notify("dyntrain_alias", json.dumps({"project_id": project.id, "version": version}))))
    return previous


def promote(core: Core, project: str, version: int, reason: str = "promoted by hand") -> int | None:
    with core.db.write() as s:
        return set_alias(s, project_row(s, project, lock=True), version, reason)


def rollback(core: Core, project: str) -> int:
    """Move ``production`` back to the version it pointed at before the current one."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        current = alias_version(s, row.id)
        if current is None:
            raise NotReady(f"project {project!r} has no model in service to roll back")
        last = s.scalars(select(AliasHistoryRow).where(AliasHistoryRow.project_id == row.id,
                                                       AliasHistoryRow.alias == PRODUCTION,
                                                       AliasHistoryRow.version == current)
                         .order_by(AliasHistoryRow.id.desc()).limit(1)).first()
        if last is None or last.previous_version is None:
            raise Invalid(f"version {current} was the first model in service; there is nothing to roll back to")
        set_alias(s, row, last.previous_version, f"rolled back from version {current}")
        return last.previous_version


def alias_history(core: Core, project: str) -> list[dict[str, Any]]:
    """Which version served when, and why (newest first)."""
    with core.db.read() as s:
        pid = project_row(s, project).id
        rows = s.scalars(select(AliasHistoryRow).where(AliasHistoryRow.project_id == pid)
                         .order_by(AliasHistoryRow.id.desc()))
        return [{"alias": r.alias, "version": r.version, "previous_version": r.previous_version,
                 "reason": r.reason, "at": r.created_at.isoformat()} for r in rows]
