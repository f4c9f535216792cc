"""Promotions reach every replica: PostgreSQL LISTEN on ``dyntrain_alias``.

``registry.models.set_alias`` sends ``pg_notify('dyntrain_alias', {project_id, version})``
inside the promoting transaction, so the notification arrives exactly when the new alias is
visible. On every (re)connect the listener re-checks all projects, since notifications sent
while it was away are lost; the caller keeps a slow poll as a safety net. SQLite has no
LISTEN: there, polling alone.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from ..ops.background import Periodic
from ..storage import pg

__all__ = ["CHANNEL", "AliasListener"]


log = logging.getLogger(__name__)
CHANNEL = "dyntrain_alias"


class AliasListener:
    """A daemon thread that keeps one LISTEN connection and swaps models when told.

    ``eager``: load projects this process does not serve yet (inference replicas preload
    every production model); otherwise only the projects already served are refreshed.
    """

    def __init__(self, core, eager: bool = False, reconnect_s: float = 1.0, ping_s: float = 5.0):
        self.core, self.eager, self.reconnect_s, self.ping_s = core, eager, reconnect_s, ping_s
        self.connected = threading.Event()
        self.notifications = 0
        self.reconnects = 0
        # _listen returns only when the connection is lost: the timer reconnects after a pause.
        self._timer = Periodic("alias-listener", self._listen_once, reconnect_s, first_at_once=True)
        self._stop = self._timer.stopping

    def start(self) -> "AliasListener":
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()

    def _listen_once(self) -> None:
        try:
            self._listen()
        except Exception as exc:
            if not self._stop.is_set():
                log.warning("promotion listener disconnected (%s); reconnecting in %.0f s", exc, self.reconnect_s)
        finally:
            self.connected.clear()

    def _listen(self) -> None:
        with pg.connect(self.core.settings.database_url, "dyntrain-alias-listener") as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.reconnects += 1
            self.connected.set()
            self._recheck()  # what was promoted while we were not listening
            last_ping = time.monotonic()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=1.0):
                    self._on_notify(note.payload)
                if time.monotonic() - last_ping > self.ping_s:  # a silent dead connection shows here
                    conn.execute("SELECT 1")
                    last_ping = time.monotonic()

    def _recheck(self) -> None:
        live = self.core.live
        if self.eager:
            live.load_all()
        else:
            live.refresh_all()

    def _on_notify(self, payload: str) -> None:
        self.notifications += 1
        try:
            project_id = int(json.loads(payload)["project_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed %s payload %r", CHANNEL, payload)
            return
        live = self.core.live
        if self.eager or project_id in live.served_versions():
            try:
                live.refresh(project_id)
            except Exception:
                log.exception("could not load the new model of project %s", project_id)
