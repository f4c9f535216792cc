"""Exactly one scheduler leader among the API processes of one database.

PostgreSQL: the leader holds a session-level advisory lock on a dedicated connection. The
lock lives exactly as long as that session, so when the leader dies (or its connection does)
the server releases it and a standby takes it at its next try. A leader that finds its
connection broken stops leading at once. SQLite is one process by design: always leader.

Even two processes that both believed they lead could not start a job twice:
``claim_next`` locks the job row (``FOR UPDATE SKIP LOCKED``) and only claims pending jobs.

>>> lead = Leadership("sqlite:///x.db"); lead.check()
True
"""

from __future__ import annotations

import logging
import threading

from ..storage import pg

__all__ = ["LEADER_LOCK", "Leadership"]

log = logging.getLogger(__name__)
LEADER_LOCK = 4242002  # 4242001 serialises migrations (storage.db)


class Leadership:
    def __init__(self, database_url: str):
        self.url = database_url
        self.always = not pg.is_postgres(database_url)
        self._conn = None
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        return self.always or self._conn is not None

    def check(self) -> bool:
        """Keep leadership (connection alive?) or try to take it; returns whether we lead now."""
        if self.always:
            return True
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("SELECT 1")
                    return True
                except Exception as exc:
                    log.warning("lost the scheduler leadership: its connection failed (%s)", exc)
                    self._close()
            try:
                conn = pg.connect(self.url, "dyntrain-leader")
            except Exception as exc:
                log.warning("cannot reach the database to try for leadership: %s", exc)
                return False
            try:
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()[0]
            except Exception:
                conn.close()
                raise
            if got:
                self._conn = conn
                log.info("this process is now the scheduler leader")
                return True
            conn.close()
            return False

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def release(self) -> None:
        """Give leadership up (closing the session releases the lock)."""
        with self._lock:
            self._close()
