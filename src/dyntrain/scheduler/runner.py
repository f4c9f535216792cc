"""The dispatcher: a background thread that recovers dead jobs and hands due jobs to an executor.

It runs beside the API's event loop (never in it), so training never blocks requests. With
several API processes on one PostgreSQL database only the leader (``leader.Leadership``)
runs the scheduler, retention and webhooks; every process keeps its served models current.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..ops.background import Periodic
from ..kernel.core import Core
from .executors import Executor, LocalExecutor
from .queue import claim_next, recover_expired

__all__ = ["Dispatcher", "Periodic", "LeaderDuties", "make_executor", "start_background"]

log = logging.getLogger(__name__)


@dataclass
class Dispatcher:
    """Each tick: recover expired leases, then start as many due jobs as the executor takes."""

    core: Core
    executor: Executor
    _timer: "Periodic | None" = None

    def tick(self) -> int:
        recover_expired(self.core)
        started = 0
        while self.executor.has_capacity():
            job = claim_next(self.core)
            if job is None:
                break
            self.executor.submit(self.core, job)
            started += 1
        return started

    def start(self) -> "Dispatcher":
        self._timer = Periodic("scheduler", self.tick, self.core.settings.scheduler_poll_s).start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.executor.shutdown()


@dataclass
class Background:
    parts: list
    leadership: "object | None" = None  # leader.Leadership of api/all processes
    listener: "object | None" = None  # serving.notify.AliasListener on PostgreSQL

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()


def make_executor(core: Core) -> Executor:
    """Ray when ``ray_address`` is set, else training threads in this process."""
    if core.settings.ray_address:
        from .ray_executor import RayExecutor

        return RayExecutor(core.settings)
    return LocalExecutor()


class LeaderDuties:
    """Runs the leader-only parts while this process holds the leadership, stops them when it is lost."""

    def __init__(self, core: Core, leadership):
        self.core, self.leadership = core, leadership
        self.parts: list = []

    def _start_parts(self) -> list:
        from ..ops.housekeeping import gc
        from ..ops.webhooks import WebhookSender

        parts = [Periodic("housekeeping", lambda: gc(self.core), self.core.settings.gc_interval_s).start(),
                 WebhookSender(self.core).start()]
        if self.core.settings.scheduler_enabled:
            parts.append(Dispatcher(self.core, make_executor(self.core)).start())
        return parts

    def tick(self) -> None:
        leader = self.leadership.check()
        if leader and not self.parts:
            self.parts = self._start_parts()
        elif not leader and self.parts:
            log.warning("not the leader any more: stopping the scheduler, retention and webhooks here")
            self._stop_parts()

    def _stop_parts(self) -> None:
        parts, self.parts = self.parts, []
        for part in parts:
            part.stop()

    def stop(self) -> None:
        self._stop_parts()
        self.leadership.release()


def start_background(core: Core) -> Background:
    """Start what this process's role runs.

    Every role: the promotion listener (PostgreSQL) and the model watcher poll as a safety
    net. ``api``/``all``: the scheduler, retention and webhooks while this process is the
    leader. ``inference``: every production model loaded before the first request.
    """
    from ..storage.pg import is_postgres

    parts: list = []
    inference = core.settings.role == "inference"
    if inference:
        core.live.load_all()
    listener = None
    if is_postgres(core.settings.database_url):
        from ..serving.notify import AliasListener

        listener = AliasListener(core, eager=inference).start()
        parts.append(listener)
    # Safety net for promotions made by other processes (this process refreshes at once).
    parts.append(Periodic("model-watcher", core.live.load_all if inference else core.live.refresh_all,
                          core.settings.model_poll_s).start())
    leadership = None
    if not inference:
        from .leader import Leadership

        leadership = Leadership(core.settings.database_url)
        duties = LeaderDuties(core, leadership)
        duties.tick()  # the first try at once: a lone process leads from its first request
        parts.append(duties)
        parts.append(Periodic("leader", duties.tick, core.settings.leader_poll_s).start())
    return Background(parts, leadership, listener)
