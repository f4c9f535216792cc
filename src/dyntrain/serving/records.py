"""Prediction records written by group commit: concurrent requests share one INSERT and one commit.

Every answered prediction returns its ``prediction_id``, and a client may send feedback on it at
once, to any replica: so a record is committed *before* its answer leaves, never queued for
later (a queue flushed by a writer thread would lose acknowledged records when the process is
killed, and a feedback call arriving first would get a 404). What can be shared is the commit:
the first request that finds no write under way writes every record waiting at that moment, in
its own thread (no hand-off when there is no concurrency); requests arriving meanwhile queue
behind it, and the next of them writes the next group. On SQLite that also keeps concurrent
predictions from queuing on the database's write lock, whose busy handler sleeps.

A group that fails (say a project deleted mid-request: its foreign key no longer holds) is
retried record set by record set, so one request's failure never fails the others'.

>>> writer = RecordWriter(core.db)  # doctest: +SKIP
>>> writer.write([{"project_id": 1, "model_version": 3, "label": "mug", "confidence": 0.9, ...}])  # doctest: +SKIP
[17]
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import insert

from ..storage import Database
from ..storage.rows import PredictionRow

__all__ = ["RecordWriter", "writer_for"]


class _Ticket:
    __slots__ = ("rows", "ids", "error", "done", "lead")

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows, self.ids, self.error = rows, None, None
        self.done = threading.Event()
        self.lead = False  # woken to write the next group rather than with its ids


class RecordWriter:
    """Writes prediction rows for one database; thread-safe; see the module docstring."""

    def __init__(self, db: Database):
        self.db = db
        self._lock = threading.Lock()
        self._waiting: list[_Ticket] = []
        self._writing = False
        self.groups = 0  # transactions committed (tests and benchmarks compare with records)
        self.records = 0

    def write(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert ``rows`` (PredictionRow column values) and return their ids, in order, once committed."""
        if not rows:
            return []
        ticket = _Ticket(rows)
        with self._lock:
            self._waiting.append(ticket)
            lead = not self._writing
            self._writing = True
        if not lead:
            ticket.done.wait()
            if not ticket.lead:
                return self._result(ticket)
        self._write_group()
        return self._result(ticket)

    @staticmethod
    def _result(ticket: _Ticket) -> list[int]:
        if ticket.error is not None:
            raise ticket.error
        return ticket.ids

    def _write_group(self) -> None:
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            self._insert(group)
        finally:
            with self._lock:
                if self._waiting:  # hand the pen to the longest waiting request: it writes the next group
                    nxt = self._waiting[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._writing = False
            for ticket in group:
                ticket.done.set()

    def _insert(self, group: list[_Ticket]) -> None:
        try:
            ids = self._insert_rows([r for t in group for r in t.rows])
        except Exception as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            for ticket in group:  # find whose records failed; the others still commit
                try:
                    ticket.ids = self._insert_rows(ticket.rows)
                except Exception as one:
                    ticket.error = one
            return
        start = 0
        for ticket in group:
            ticket.ids = ids[start:start + len(ticket.rows)]
            start += len(ticket.rows)

    def _insert_rows(self, rows: list[dict[str, Any]]) -> list[int]:
        # A Core INSERT … RETURNING (one statement for the group) instead of the ORM's unit of
        # work: no identity map or per-object flush bookkeeping on the request path.
        table = PredictionRow.__table__
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        with self.db.write() as s:
            ids = list(s.execute(statement, rows).scalars())
        self.groups += 1
        self.records += len(rows)
        return ids


_WRITERS: "weakref.WeakKeyDictionary[Database, RecordWriter]" = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def writer_for(db: Database) -> RecordWriter:
    """The one writer of this process for ``db`` (created on first use)."""
    writer = _WRITERS.get(db)
    if writer is None:
        with _WRITERS_LOCK:
            writer = _WRITERS.get(db)
            if writer is None:
                writer = _WRITERS[db] = RecordWriter(db)
    return writer
