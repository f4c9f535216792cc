"""Persisted project events: every event has an id, so a reconnecting client misses nothing.

The events table is also the outbox of every sink outside the process (webhooks, the message
broker): :class:`EventDrain` delivers it to each, at least once and in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .entities import Event
from ..storage.rows import EventCursorRow, EventRow, ProjectRow, utcnow

__all__ = ["EVENT_TYPES", "publish", "events_after", "ProjectEvent", "EventDrain"]

log = logging.getLogger(__name__)

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


class ProjectEvent(NamedTuple):
    """An event with its project's name, as a sink delivers it."""

    event: Event
    project: str


class EventDrain:
    """Hands the events table to one sink, in id order and at least once: the transactional outbox.

    Each change writes its event in its own transaction (:func:`publish`). Every sink (``"webhooks"``,
    ``"broker"`` …) has a cursor row in ``event_cursors``, created at the newest event the first time
    (a new sink starts from now on), and moved only past what ``deliver`` accepted: ``deliver`` gets
    the next events in order and returns how many it delivered. After a shortfall (a broker outage)
    the next try waits ``backoff_s``, doubling up to ``max_backoff_s``, and starts again at the first
    undelivered event. The cursor is read from the database on every round, so whichever process
    drains next (another leader, a restart) goes on where the last one stopped.

    On PostgreSQL a sequence id can commit after a higher one; an id missing below visible ones is
    waited for up to ``gap_wait_s`` (then taken as a rolled-back transaction), so nothing is skipped.
    SQLite has one writer at a time: a gap there is a deleted project's events, never one in flight.
    """

    def __init__(self, core, sink: str, deliver: Callable[[list[ProjectEvent]], int], *, batch: int = 200,
                 backoff_s: float = 1.0, max_backoff_s: float = 30.0, gap_wait_s: float = 10.0):
        self.core, self.sink, self.deliver, self.batch = core, sink, deliver, batch
        self.backoff_s, self.max_backoff_s, self.gap_wait_s = backoff_s, max_backoff_s, gap_wait_s
        self._failures = 0
        self._retry_at = 0.0
        self._gap_seen: dict[int, float] = {}
        self._ensure_cursor()

    def _ensure_cursor(self) -> None:
        def create(s: Session) -> None:
            if s.get(EventCursorRow, self.sink) is None:
                s.add(EventCursorRow(sink=self.sink, last_event_id=s.scalar(select(func.max(EventRow.id))) or 0))
        try:
            self.core.db.write_retrying(create)
        except IntegrityError:  # another process created it first: theirs is as good
            pass

    def cursor(self) -> int:
        with self.core.db.read() as s:
            return s.scalar(select(EventCursorRow.last_event_id).where(EventCursorRow.sink == self.sink)) or 0

    def tick(self) -> int:
        """One round: deliver what is due; returns how many events were delivered."""
        if time.monotonic() < self._retry_at:
            return 0
        with self.core.db.read() as s:
            cursor = s.scalar(select(EventCursorRow.last_event_id).where(EventCursorRow.sink == self.sink)) or 0
            rows = s.execute(select(EventRow, ProjectRow.name).join(ProjectRow, ProjectRow.id == EventRow.project_id)
                             .where(EventRow.id > cursor).order_by(EventRow.id).limit(self.batch)).all()
        due = self._without_gaps(cursor, [ProjectEvent(row.to_entity(), name) for row, name in rows])
        if not due:
            return 0
        try:
            delivered = max(0, min(int(self.deliver(due)), len(due)))
        except Exception:
            log.exception("%s: delivering events after %d failed", self.sink, cursor)
            delivered = 0
        if delivered:
            self._advance(due[delivered - 1].event.id)
        if delivered < len(due):
            self._failures += 1
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (self._failures - 1))
            self._retry_at = time.monotonic() + delay
            log.warning("%s: %d of %d events not delivered; trying again in %.1f s", self.sink,
                        len(due) - delivered, len(due), delay)
        else:
            self._failures = 0
        return delivered

    def _without_gaps(self, cursor: int, events: list[ProjectEvent]) -> list[ProjectEvent]:
        """The events up to the first id that may still be committed by a transaction in flight."""
        due, expected, now = [], cursor + 1, time.monotonic()
        for item in events:
            if item.event.id != expected and not self.core.db.is_sqlite:
                first_seen = self._gap_seen.setdefault(expected, now)
                if now - first_seen < self.gap_wait_s:
                    break
            due.append(item)
            expected = item.event.id + 1
        self._gap_seen = {gap: t for gap, t in self._gap_seen.items() if gap >= expected}
        return due

    def _advance(self, last_id: int) -> None:
        # Only forward: two processes draining at once (a leadership hand-over) never move it back.
        self.core.db.write_retrying(lambda s: s.execute(
            update(EventCursorRow).where(EventCursorRow.sink == self.sink, EventCursorRow.last_event_id < last_id)
            .values(last_event_id=last_id, updated_at=utcnow())))
