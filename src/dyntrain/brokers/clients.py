"""One small asyncio interface over NATS JetStream and RabbitMQ (AMQP 0-9-1).

``publish`` returns only once the broker has stored the message (a JetStream ack, an AMQP
publisher confirm), so the outbox moves its cursor past delivered events only. ``consume``
acknowledges a message only after its handler returned: a crash in between redelivers it.
The client libraries are imported lazily (the ``events`` extra): a server without a broker
URL never needs them.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

from ..kernel.errors import Invalid

__all__ = ["BrokerClient", "open_client", "CONTENT_TYPE", "EVENTS_PREFIX", "REASON_HEADER"]

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/cloudevents+json"
EVENTS_PREFIX = "dyntrain"  # subjects / routing keys dyntrain.<project>.<type>; the AMQP topic exchange
REASON_HEADER = "Dyntrain-Reason"  # why a message went to the dead-letter subject / queue
_TIMEOUT_S = 5.0
_MAX_ATTEMPTS = 20  # NATS: a message whose change failed this often (not a bad message) is dead-lettered

# The handler of a consumed message: returns None to acknowledge it, a reason to dead-letter it
# (then acknowledge it), and raises to have it redelivered later (the change could not be made yet).
Handler = Callable[[bytes], Awaitable["str | None"]]


class BrokerClient(abc.ABC):
    """Connects on first use and again after any failure; ``reset`` drops the connection."""

    url: str

    @abc.abstractmethod
    async def publish(self, subject: str, body: bytes, message_id: str) -> None:
        """Send ``body`` to ``subject`` and return once the broker has it (``message_id`` deduplicates)."""

    @abc.abstractmethod
    async def consume(self, subject: str, handle: Handler, redeliver_s: float) -> None:
        """Take messages from ``subject`` (a NATS subject, an AMQP queue) until cancelled."""

    @abc.abstractmethod
    async def tail(self, pattern: str, show: Callable[[bytes], None]) -> None:
        """Follow published events matching ``pattern`` (``dyntrain.shop.>``) until cancelled."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Drop the connection (the next use connects again)."""


def open_client(url: str) -> BrokerClient:
    """The client for ``url``; a clear error at start-up when the ``events`` extra is missing."""
    scheme = urlparse(url).scheme
    if scheme in ("nats", "tls"):
        client, library = NatsClient(url), "nats"
    elif scheme in ("amqp", "amqps"):
        client, library = AmqpClient(url), "aio_pika"
    else:
        raise Invalid(f"unsupported broker URL {url!r}: use nats://host:4222 or amqp://user:password@host:5672/")
    for module in (library, "cloudevents.core"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise Invalid(f"{url.split('://')[0]}:// brokers need the events extra: pip install "
                          "'dyntrain[events]'") from None
    return client


def _stream_name(subject: str) -> str:
    """A JetStream stream name for ``subject`` (names may not hold '.', '*', '>' or spaces)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in subject).upper()


def _header_value(reason: str) -> str:
    return " ".join(reason.split())[:1000]  # one line: header values cannot hold line breaks


class NatsClient(BrokerClient):
    """NATS with JetStream: published events are stored in the stream ``DYNTRAIN`` (subjects
    ``dyntrain.>``), deduplicated by ``Nats-Msg-Id`` within the stream's duplicate window."""

    def __init__(self, url: str):
        self.url = url
        self._nc = None
        self._js = None
        self._streams: set[str] = set()

    async def _jetstream(self):
        if self._nc is None or self._nc.is_closed or not self._nc.is_connected:
            await self.reset()
            import nats

            # No reconnecting inside the client: a failure surfaces at once and the caller retries
            # (with max_reconnect_attempts=0 nats-py would try the first connection forever).
            self._nc = await nats.connect(servers=[self.url], allow_reconnect=False, connect_timeout=_TIMEOUT_S,
                                          max_reconnect_attempts=1, reconnect_time_wait=0.5,
                                          error_cb=_log_nats_error)
            self._js = self._nc.jetstream(timeout=_TIMEOUT_S)
            self._streams = set()
        return self._js

    async def _ensure_stream(self, name: str, subjects: list[str]) -> None:
        if name in self._streams:
            return
        from nats.js.errors import BadRequestError

        try:
            await self._js.add_stream(name=name, subjects=subjects)
        except BadRequestError as exc:  # it exists with other settings, or another stream holds the subjects
            log.info("JetStream stream %s not (re)created: %s", name, exc)
        self._streams.add(name)

    async def publish(self, subject: str, body: bytes, message_id: str) -> None:
        js = await self._jetstream()
        await self._ensure_stream(_stream_name(EVENTS_PREFIX), [f"{EVENTS_PREFIX}.>"])
        await js.publish(subject, body, headers={"Nats-Msg-Id": message_id, "Content-Type": CONTENT_TYPE})

    async def consume(self, subject: str, handle: Handler, redeliver_s: float) -> None:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig

        js = await self._jetstream()
        stream = _stream_name(subject)
        await self._ensure_stream(stream, [subject, f"{subject}.>"])  # the queue and its dead letters
        durable = stream.lower()
        sub = await js.pull_subscribe(subject, durable=durable, stream=stream, config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, ack_wait=redeliver_s, max_deliver=-1))
        while True:
            if self._nc.is_closed:  # no reconnecting inside the client: the caller connects again
                raise ConnectionError(f"connection to {self.url} lost")
            try:
                messages = await sub.fetch(1, timeout=1)
            except NatsTimeout:
                continue
            for msg in messages:
                try:
                    reason = await handle(msg.data)
                except Exception as exc:
                    if msg.metadata.num_delivered < _MAX_ATTEMPTS:
                        log.exception("ingest: message not applied; it will be redelivered")
                        await msg.nak(delay=2)
                        continue
                    # Failing every time is no passing outage: park it with the reason, lose nothing.
                    reason = f"not applied after {_MAX_ATTEMPTS} attempts: {exc!r}"
                if reason is not None:
                    await js.publish(f"{subject}.dead", msg.data, headers={REASON_HEADER: _header_value(reason)})
                await msg.ack_sync()

    async def tail(self, pattern: str, show: Callable[[bytes], None]) -> None:
        await self._jetstream()

        async def received(msg) -> None:
            _show(show, msg.data)

        await self._nc.subscribe(pattern, cb=received)
        await asyncio.Event().wait()

    async def reset(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:  # already broken: nothing more to release
                pass


class AmqpClient(BrokerClient):
    """RabbitMQ: events go to the durable topic exchange ``dyntrain`` as persistent messages with
    publisher confirms; consumers bind their own queues (``dyntrain.shop.#``)."""

    def __init__(self, url: str):
        self.url = url
        self._conn = None
        self._channel = None
        self._exchange = None

    async def _open(self):
        if self._conn is None or self._conn.is_closed or self._channel is None or self._channel.is_closed:
            await self.reset()
            import aio_pika

            self._conn = await aio_pika.connect(self.url, timeout=_TIMEOUT_S)
            self._channel = await self._conn.channel(publisher_confirms=True)
            self._exchange = await self._channel.declare_exchange(EVENTS_PREFIX, aio_pika.ExchangeType.TOPIC,
                                                                  durable=True)
        return self._channel

    async def publish(self, subject: str, body: bytes, message_id: str) -> None:
        import aio_pika

        await self._open()
        await self._exchange.publish(
            aio_pika.Message(body, message_id=message_id, content_type=CONTENT_TYPE,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=subject, timeout=_TIMEOUT_S)

    async def consume(self, subject: str, handle: Handler, redeliver_s: float) -> None:
        import aio_pika

        channel = await self._open()
        await channel.set_qos(prefetch_count=1)
        queue = await channel.declare_queue(subject, durable=True)
        await channel.declare_queue(f"{subject}.dead", durable=True)
        async with queue.iterator() as messages:
            async for message in messages:
                try:
                    reason = await handle(message.body)
                except Exception:
                    log.exception("ingest: message not applied; it will be redelivered")
                    await asyncio.sleep(2)
                    await message.nack(requeue=True)
                    continue
                if reason is not None:
                    await channel.default_exchange.publish(
                        aio_pika.Message(message.body, headers={REASON_HEADER: _header_value(reason)},
                                         content_type=message.content_type,
                                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=f"{subject}.dead", timeout=_TIMEOUT_S)
                await message.ack()

    async def tail(self, pattern: str, show: Callable[[bytes], None]) -> None:
        channel = await self._open()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self._exchange, routing_key=pattern.replace(">", "#"))
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                _show(show, message.body)

    async def reset(self) -> None:
        conn, self._conn, self._channel, self._exchange = self._conn, None, None, None
        if conn is not None and not conn.is_closed:
            try:
                await conn.close()
            except Exception:  # already broken: nothing more to release
                pass


async def _log_nats_error(exc: Exception) -> None:
    log.debug("nats: %r", exc)  # the caller reports the failure once (nats-py would print each attempt's traceback)


def _show(show: Callable[[bytes], None], body: bytes) -> None:
    try:
        show(body)
    except Exception:  # a consumer callback must not kill the subscription
        log.exception("showing an event failed")
