"""The audit log: who changed data, trained, promoted, rolled back (and more), and when.

Changes made through the API are recorded by :class:`AuditMiddleware` — every successful
request that is not a read, a prediction or a sign-in/out — so no route can forget to. Changes the system
makes on its own (automatic training, promotion by the gate) call :func:`record` with the
actor ``"scheduler"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..kernel.core import Core
from ..storage.rows import AuditRow

__all__ = ["AuditEntry", "record", "entries", "AuditMiddleware"]

_NOT_AUDITED = ("GET", "HEAD", "OPTIONS")
# Changes that are not recorded, by exact (method, route template): predictions (they have their
# own records) and signing in and out. Feedback on a prediction, and adding one to the training
# data, change the project and ARE recorded.
_UNAUDITED_ROUTES = frozenset({("POST", "/api/v1/projects/{name}/predict"),
                               ("POST", "/api/v1/projects/{name}/predict/rows"),
                               ("POST", "/api/v1/projects/{name}/predict/texts"), ("POST", "/login"), ("POST", "/logout")})


@dataclass(frozen=True)
class AuditEntry:
    id: int
    actor: str
    action: str
    project: str | None
    details: dict[str, Any]
    created_at: datetime


def record(target: Core | Session, actor: str, action: str, project: str | None = None,
           **details: Any) -> None:
    """Add one entry; pass a session to make it part of the change's own transaction."""
    if isinstance(target, Session):
        target.add(AuditRow(actor=actor, action=action, project=project, details=details))
        return
    # The change itself has committed: a connection lost now must not fail its answer, so the
    # entry is written again (a rare duplicate entry beats a missing one).
    target.db.write_retrying(lambda s: s.add(AuditRow(actor=actor, action=action, project=project,
                                                      details=details)))


def entries(core: Core, project: str | None = None, limit: int = 200, before: int | None = None,
            projects: frozenset[str] = frozenset()) -> list[AuditEntry]:
    """Newest first; ``projects`` limits the view to a scoped caller's projects."""
    q = select(AuditRow).order_by(AuditRow.id.desc()).limit(max(1, min(limit, 1000)))
    if project is not None:
        q = q.where(AuditRow.project == project)
    if projects:
        q = q.where(AuditRow.project.in_(sorted(projects)))
    if before is not None:
        q = q.where(AuditRow.id < before)
    with core.db.read() as s:
        return [AuditEntry(r.id, r.actor, r.action, r.project, dict(r.details or {}), r.created_at)
                for r in s.scalars(q)]


class AuditMiddleware:
    """Record every successful change made through the app (pure ASGI: streams pass through).

    The action is the route's endpoint name (``add_samples``, ``promote``, ``rollback`` …),
    the details its path and query parameters and the status; predictions are not audited
    (they have their own records).
    """

    def __init__(self, app, core: Core):
        self.app, self.core = app, core

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in _NOT_AUDITED:
            await self.app(scope, receive, send)
            return
        core = self.core

        async def watch(message):
            # Written before the response leaves, so an acknowledged change is always audited.
            if message["type"] == "http.response.start" and message["status"] < 400:
                entry = _entry(scope, message["status"])
                if entry is not None:
                    await run_in_threadpool(record, core, *entry[:3], **entry[3])
            await send(message)

        await self.app(scope, receive, watch)


def _entry(scope, status: int) -> tuple[str, str, str | None, dict[str, Any]] | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None or (scope["method"], path) in _UNAUDITED_ROUTES:
        return None
    caller = (scope.get("state") or {}).get("caller")
    path_params = scope.get("path_params") or {}
    details = {"method": scope["method"], "path": path, "status": status,
               **{k: v for k, v in path_params.items() if k != "name"}}
    if query := scope.get("query_string", b"").decode("latin-1"):
        details["query"] = query[:500]
    return getattr(caller, "name", "anonymous"), getattr(route, "name", path), path_params.get("name"), details
