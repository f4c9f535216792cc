"""Persisted project events: every event has an id, so a reconnecting client misses nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .entities import Event
from .storage.rows import EventRow

__all__ = ["EVENT_TYPES", "publish", "events_after"]

EVENT_TYPES = (
    "job.delayed", "job.queued", "job.started", "job.progress", "job.finished", "job.failed",
    "job.cancelled", "model.promoted", "model.kept_back", "data.changed",
)


def publish(session: Session, project_id: int, type_: str, data: dict[str, Any]) -> None:
    """Record an event in the caller's transaction: it is visible exactly when the change is."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    session.add(EventRow(project_id=project_id, type=type_, data=data))


def events_after(session: Session, project_id: int, after: int = 0, limit: int = 100) -> list[Event]:
    rows = session.scalars(
        select(EventRow).where(EventRow.project_id == project_id, EventRow.id > after)
        .order_by(EventRow.id).limit(limit)
    )
    return [r.to_entity() for r in rows]
