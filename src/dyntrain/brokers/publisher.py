"""Project events out to a broker as CloudEvents 1.0 (JSON), drained from the events outbox.

Subject (NATS) / routing key (AMQP): ``dyntrain.<project>.<type>``, e.g.
``dyntrain.shop.model.promoted``; a '.' in a project name is sent as ``%2E`` so it stays one
token. The CloudEvent: ``type`` ``dyntrain.<type>``, ``source`` the server (``events_source``),
``subject`` the project, ``id`` the event's id (unique per source: consumers deduplicate by
source and id), ``time`` when the change committed, ``data`` the event's fields.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from ..ops.background import AsyncioThread, Periodic
from ..kernel.config import Settings
from ..kernel.events import EventDrain, ProjectEvent
from .clients import EVENTS_PREFIX, open_client

__all__ = ["BrokerPublisher", "event_subject", "cloudevent_body", "events_source", "public_type"]

log = logging.getLogger(__name__)


def events_source(settings: Settings) -> str:
    return settings.events_source or f"dyntrain://{socket.gethostname()}"


def public_type(item: ProjectEvent) -> str:
    """The event's type as published: a promotion that undid the last one is ``model.rolled_back``."""
    if item.event.type == "model.promoted" and item.event.data.get("action") == "rollback":
        return "model.rolled_back"
    return item.event.type


def event_subject(project: str, type_: str = ">") -> str:
    """``dyntrain.<project>.<type>``: ``event_subject("shop")`` is every event of one project (NATS)."""
    return f"{EVENTS_PREFIX}.{project.replace('.', '%2E')}.{type_}"


def cloudevent_body(item: ProjectEvent, source: str) -> bytes:
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    event = item.event
    return JSONFormat().write(CloudEvent(
        {"id": str(event.id), "source": source, "type": f"{EVENTS_PREFIX}.{public_type(item)}",
         "subject": item.project, "time": event.created_at, "datacontenttype": "application/json"},
        dict(event.data)))


class BrokerPublisher:
    """Publishes the events outbox (sink ``broker``) to ``events_url``, in order, each confirmed.

    Runs on its own thread: a broker that is down or slow delays only this, never a change,
    a training run or a prediction. ``leading`` says whether this process should publish (the
    scheduler leader, so several API processes do not all send).
    """

    def __init__(self, core, *, leading: Callable[[], bool] = lambda: True, poll_s: float = 0.5,
                 backoff_s: float = 1.0, max_backoff_s: float = 30.0):
        self.core, self.leading = core, leading
        self.source = events_source(core.settings)
        self.client = open_client(core.settings.events_url)
        self.published = 0  # (for observability and tests)
        self._loop = AsyncioThread("broker-publisher")
        self._drain = EventDrain(core, "broker", self._deliver, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
        self._timer = Periodic("broker-publisher", self.tick, poll_s)

    def start(self) -> "BrokerPublisher":
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()
        try:
            self._loop.run(self.client.reset(), timeout=5)
        except Exception:  # stopping: a broken connection has nothing left to close
            pass
        self._loop.stop()

    def tick(self) -> int:
        return self._drain.tick() if self.leading() else 0

    def _deliver(self, events: list[ProjectEvent]) -> int:
        return self._loop.run(self._publish_in_order(events), timeout=60)

    async def _publish_in_order(self, events: list[ProjectEvent]) -> int:
        """How many of ``events`` were confirmed; stops at the first failure so order is kept."""
        for done, item in enumerate(events):
            try:
                await self.client.publish(event_subject(item.project, public_type(item)),
                                          cloudevent_body(item, self.source), f"{self.source}#{item.event.id}")
            except (Exception, asyncio.TimeoutError) as exc:
                log.warning("broker %s: event %d not published (%s); will retry", self.client.url,
                            item.event.id, exc)
                await self.client.reset()
                return done
            self.published += 1
        return len(events)
