"""Loosely coupled events against the real NATS (JetStream) and RabbitMQ on 127.0.0.1: project events
out as CloudEvents through the outbox, data changes in from a subject/queue (dead letters included),
and the outbox drain's own guarantees (order, gaps on PostgreSQL, ids never reused)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import uuid
from urllib.parse import urlparse

import pytest
from sqlalchemy import func, select

from dyntrain.access import audit
from dyntrain.ops.background import AsyncioThread
from dyntrain.datasets import changes
from dyntrain.kernel.events import EventDrain, publish
from dyntrain.kernel.projects import create_project, delete_project, project_row
from dyntrain.storage.rows import DatasetVersionRow, EventRow, IngestedMessageRow, JobRow, SampleRow
from tests.conftest import png_bytes, wait_for

from dyntrain.brokers.clients import REASON_HEADER, _stream_name, open_client
from dyntrain.brokers.ingest import IngestConsumer
from dyntrain.brokers.publisher import BrokerPublisher, event_subject

BROKERS = {"nats": os.environ.get("DYNTRAIN_TEST_NATS_URL", "nats://127.0.0.1:4222"),
           "amqp": os.environ.get("DYNTRAIN_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")}


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(params=list(BROKERS))
def broker_url(request):
    url = BROKERS[request.param]
    if not reachable(url):
        pytest.fail(f"no broker at {url}: start the local NATS (with -js) and RabbitMQ services, or point "
                    "DYNTRAIN_TEST_NATS_URL / DYNTRAIN_TEST_AMQP_URL at them")
    return url


def unique(prefix: str) -> str:
    """Names on the shared brokers are per test: parallel runs never see each other's messages."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class Collector:
    """Follows published events the way ``dyntrain events tail`` does (the same client call)."""

    def __init__(self, url: str, pattern: str):
        self.url, self.pattern, self.bodies = url, pattern, []
        self._loop = AsyncioThread("test-collector")
        self._client = open_client(url)
        self._task = self._loop.spawn(self._client.tail(pattern, self.bodies.append))
        self._wait_until_subscribed()

    def _wait_until_subscribed(self) -> None:
        # A probe on the pattern's own subject comes back once the subscription is in place.
        probe_subject = self.pattern.replace(">", "probe").replace("*", "probe")
        sender = open_client(self.url)
        try:
            def probe_seen():
                self._loop.run(sender.publish(probe_subject, b'{"probe": true}', uuid.uuid4().hex), timeout=10)
                time.sleep(0.2)
                return self.bodies
            wait_for(probe_seen, timeout=20, interval=0.1)
        finally:
            self._loop.run(sender.reset(), timeout=5)
        time.sleep(0.3)
        self.bodies.clear()

    @property
    def events(self) -> list[dict]:
        return [e for e in map(json.loads, list(self.bodies)) if "probe" not in e]

    def close(self) -> None:
        self._loop.loop.call_soon_threadsafe(self._task.cancel)
        self._loop.run(self._client.reset(), timeout=5)
        self._loop.stop()


def emit(core, project: str, type_: str, **data) -> None:
    with core.db.write() as s:
        publish(s, project_row(s, project).id, type_, data)


def project_events(core, project: str) -> list[tuple[int, str, dict]]:
    with core.db.read() as s:
        pid = project_row(s, project).id
        return [(r.id, r.type, r.data) for r in s.scalars(select(EventRow).where(EventRow.project_id == pid)
                                                           .order_by(EventRow.id))]


# --- out: every project event as a CloudEvent, per project and type, in order -----------------------------

def test_every_project_event_is_published_as_a_cloudevent_in_order(core, broker_url):
    core.settings.events_url = broker_url
    core.settings.events_source = source = unique("dyntrain://test-")
    project, other = unique("shop.a"), unique("other")  # a '.' in a name stays one subject token
    create_project(core, project)
    create_project(core, other)
    everything = Collector(broker_url, event_subject(project))
    promotions = Collector(broker_url, event_subject("*", "model.promoted"))
    publisher = BrokerPublisher(core, poll_s=0.1).start()
    try:
        changes.add_samples(core, project, [changes.Upload("a.png", png_bytes(1))], ["mug"])  # data.changed
        emit(core, project, "job.started", job_id=1)
        emit(core, project, "job.progress", job_id=1, stage="selection")
        emit(core, project, "job.finished", job_id=1)
        emit(core, project, "model.promoted", version=1, previous=None, action="promote")
        emit(core, project, "model.kept_back", version=2, reason="worse")
        emit(core, project, "model.promoted", version=1, previous=2, action="rollback")
        emit(core, other, "model.promoted", version=7, previous=None, action="promote")  # not this project's
        expected = project_events(core, project)
        wait_for(lambda: len(everything.events) >= len(expected), timeout=30)
        time.sleep(0.5)  # nothing more (no duplicates, no other project's events) arrives
        got = everything.events
        assert [e["id"] for e in got] == [str(i) for i, _, _ in expected]
        types = [t if d.get("action") != "rollback" else "model.rolled_back" for _, t, d in expected]
        assert [e["type"] for e in got] == [f"dyntrain.{t}" for t in types]
        assert types[0] == "data.changed" and types[-1] == "model.rolled_back"
        for event, (_, _, data) in zip(got, expected):
            assert event["specversion"] == "1.0" and event["source"] == source and event["subject"] == project
            assert event["time"] and event["data"] == data
        wait_for(lambda: len(promotions.events) >= 2, timeout=10)  # one kind, every project
        assert {(e["subject"], e["data"]["version"]) for e in promotions.events} == {(project, 1), (other, 7)}
    finally:
        publisher.stop()
        everything.close()
        promotions.close()


def test_publisher_needs_no_broker_library_when_off(core):
    """Without DYNTRAIN_EVENTS_URL / DYNTRAIN_INGEST_URL the app starts neither (nor imports their clients)."""
    from dyntrain.api.app import _start_brokers

    assert core.settings.events_url == "" and _start_brokers(core, None) == []


# --- the outbox drain ---------------------------------------------------------------------------------------

# SQLite has one writer at a time: its ids commit in order, so gaps in flight exist on PostgreSQL only.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_drain_waits_for_an_id_still_in_flight(core):
    """PostgreSQL can commit id n+1 before id n: the drain must not move past n and lose it."""
    create_project(core, "p")
    got = []
    drain = EventDrain(core, "test", lambda events: got.extend(e.event.id for e in events) or len(events),
                       gap_wait_s=60)
    slow = core.db._write()
    publish(slow, project_row(slow, "p").id, "job.progress", {})
    slow.flush()  # holds the lower id, not yet committed
    emit(core, "p", "job.finished")
    assert drain.tick() == 0 and got == []  # the newer event waits for the older one
    slow.commit()
    slow.close()
    assert drain.tick() == 2
    assert got == sorted(got) and len(got) == 2 and drain.cursor() == got[-1]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_drain_skips_a_rolled_back_id_after_the_gap_wait(core):
    create_project(core, "p")
    got = []
    drain = EventDrain(core, "test", lambda events: got.extend(e.event.id for e in events) or len(events),
                       gap_wait_s=0.3)
    with pytest.raises(RuntimeError):
        with core.db.write() as s:
            publish(s, project_row(s, "p").id, "job.progress", {})
            s.flush()
            raise RuntimeError("rolled back")
    emit(core, "p", "job.finished")
    assert drain.tick() == 0
    time.sleep(0.4)
    assert drain.tick() == 1 and len(got) == 1


def test_drain_cursor_is_persisted_per_sink_and_retried_after_a_failure(core):
    create_project(core, "p")
    attempts = []

    def flaky(events):  # delivers one event per call, fails the rest
        attempts.append([e.event.id for e in events])
        return 1

    drain = EventDrain(core, "flaky", flaky, backoff_s=0.01)
    for _ in range(3):
        emit(core, "p", "job.progress")
    assert drain.tick() == 1
    assert drain.tick() == 0  # backing off
    time.sleep(0.05)
    assert drain.tick() == 1
    again = EventDrain(core, "flaky", flaky)  # a restart (or another leader) goes on from the cursor
    assert again.tick() == 1
    ids = [a[0] for a in attempts]
    assert ids == sorted(set(ids)) and attempts[1][1:] == attempts[2]
    assert EventDrain(core, "other", flaky).cursor() == again.cursor()  # a new sink starts from now on


def test_event_ids_are_never_reused_after_a_project_is_deleted(core):
    """A deleted project's last events must not hand their ids on: a cursor past them would skip new ones."""
    create_project(core, "a")
    create_project(core, "b")
    emit(core, "b", "job.progress")
    last = project_events(core, "b")[-1][0]
    delete_project(core, "b")
    emit(core, "a", "job.progress")
    assert project_events(core, "a")[-1][0] > last


# --- in: changes arriving as CloudEvents --------------------------------------------------------------------

def cloudevent(type_: str, project: str, data, *, source="urn:shop:catalogue", id_=None) -> bytes:
    return json.dumps({"specversion": "1.0", "type": type_, "source": source, "id": id_ or uuid.uuid4().hex,
                       "subject": project, "datacontenttype": "application/json", "data": data}).encode()


def send(url: str, subject: str, bodies: list[bytes]) -> None:
    """What another service does: NATS into the JetStream stream of the subject, AMQP into the durable queue."""
    async def go():
        if url.startswith("nats"):
            import nats
            from nats.js.errors import BadRequestError

            nc = await nats.connect(url)
            js = nc.jetstream()
            try:
                await js.add_stream(name=_stream_name(subject), subjects=[subject, f"{subject}.>"])
            except BadRequestError:
                pass
            for body in bodies:
                await js.publish(subject, body)
            await nc.close()
        else:
            import aio_pika

            conn = await aio_pika.connect(url)
            channel = await conn.channel()
            await channel.declare_queue(subject, durable=True)
            for body in bodies:
                await channel.default_exchange.publish(aio_pika.Message(body), routing_key=subject)
            await conn.close()

    asyncio.run(go())


def dead_letters(url: str, subject: str) -> list[tuple[bytes, str]]:
    async def go():
        found = []
        if url.startswith("nats"):
            import nats

            nc = await nats.connect(url)
            js = nc.jetstream()
            sub = await js.pull_subscribe(f"{subject}.dead", stream=_stream_name(subject))
            try:
                for msg in await sub.fetch(50, timeout=2):
                    found.append((msg.data, msg.headers[REASON_HEADER]))
            except nats.errors.TimeoutError:
                pass
            await nc.close()
        else:
            import aio_pika

            conn = await aio_pika.connect(url)
            channel = await conn.channel()
            queue = await channel.declare_queue(f"{subject}.dead", durable=True)
            while (msg := await queue.get(fail=False)) is not None:
                found.append((msg.body, msg.headers[REASON_HEADER]))
                await msg.ack()
            await conn.close()
        return found

    return asyncio.run(go())


def forget(url: str, subject: str) -> None:
    """Leave nothing behind on the shared broker."""
    async def go():
        if url.startswith("nats"):
            import nats

            nc = await nats.connect(url)
            try:
                await nc.jetstream().delete_stream(_stream_name(subject))
            except Exception:
                pass
            await nc.close()
        else:
            import aio_pika

            conn = await aio_pika.connect(url)
            channel = await conn.channel()
            for name in (subject, f"{subject}.dead"):
                await channel.queue_delete(name)
            await conn.close()

    asyncio.run(go())


@pytest.fixture
def ingest_core(core, broker_url):
    core.settings.ingest_url = broker_url
    core.settings.ingest_subject = unique("dyntrain-ingest-test-")
    core.settings.ingest_redeliver_s = 2
    yield core
    forget(broker_url, core.settings.ingest_subject)


def counts(core, project: str) -> tuple[int, int]:
    """(active samples, dataset versions)"""
    with core.db.read() as s:
        pid = project_row(s, project).id
        return (s.scalar(select(func.count()).select_from(SampleRow).where(SampleRow.project_id == pid,
                                                                           SampleRow.status == "active")),
                s.scalar(select(func.count()).select_from(DatasetVersionRow).where(DatasetVersionRow.project_id == pid)))


def test_each_change_kind_arrives_from_the_broker_like_an_api_call(ingest_core):
    core, url, subject = ingest_core, ingest_core.settings.ingest_url, ingest_core.settings.ingest_subject
    create_project(core, "photos")
    changes.add_samples(core, "photos", [changes.Upload(f"{i}.png", png_bytes(10 + i)) for i in range(4)],
                        ["mug", "mug", "cup", "cup"])  # trainable already: each change must reschedule training
    create_project(core, "reviews", task="text-classification")
    create_project(core, "houses", task="tabular-regression")
    stored = core.blobs.put(png_bytes(7))
    b64 = base64.b64encode(png_bytes(3)).decode()
    first = cloudevent("dyntrain.samples.add", "photos", {"samples": [
        {"label": "mug", "image_base64": b64, "filename": "mug.png"}, {"label": "cup", "blob": stored}]}, id_="m-1")
    consumer = IngestConsumer(core).start()
    try:
        send(url, subject, [
            first,
            first,  # the same message again (a producer retrying): applied once
            cloudevent("dyntrain.samples.add", "reviews", {"samples": [{"label": "pos", "text": "lovely"},
                                                                       {"label": "neg", "text": "awful"}]}),
            cloudevent("dyntrain.rows.add", "houses", {"rows": [{"rooms": 3, "price": 100}, {"rooms": 4, "price": 130}],
                                                       "target": "price"}),
            b"this is not json",
            cloudevent("dyntrain.samples.add", "nowhere", {"samples": [{"label": "a", "text": "x"}]}),
            cloudevent("dyntrain.samples.add", "photos", {"samples": [  # one bad image: nothing of it is added
                {"label": "mug", "image_base64": b64}, {"label": "mug", "image_base64": "bm90IGFuIGltYWdl"}]}),
            cloudevent("dyntrain.samples.explode", "photos", {}),
            cloudevent("dyntrain.samples.add", "photos", {"samples": [{"label": "mug"}]}),
        ])
        wait_for(lambda: consumer.applied + len(consumer.rejected) >= 8, timeout=40)
        assert consumer.applied == 3 and len(consumer.rejected) == 5
        mug = changes.list_samples(core, "photos", label="mug")[0][0]
        send(url, subject, [cloudevent("dyntrain.sample.relabel", "photos", {"sample_id": mug.id, "label": "cup"},
                                       source="urn:shop:review-tool"),
                            cloudevent("dyntrain.sample.delete", "reviews", {"sample_id": changes.list_samples(
                                core, "reviews")[0][0].id})])
        wait_for(lambda: consumer.applied >= 5, timeout=30)
    finally:
        consumer.stop()
    assert counts(core, "photos") == (6, 3) and counts(core, "reviews") == (1, 2) and counts(core, "houses") == (2, 1)
    assert changes.get_sample(core, "photos", mug.id).label == "cup"
    assert {s.source for s in changes.list_samples(core, "houses")[0]} == {"broker"}
    with core.db.read() as s:  # each change triggers retraining as an API change does
        job = s.scalars(select(JobRow).where(JobRow.project_id == project_row(s, "photos").id)).one()
        assert (job.status, job.trigger, job.dataset_version) == ("delayed", "auto", 3)
        assert s.scalar(select(func.count()).select_from(IngestedMessageRow)) == 5
    entries = audit.entries(core)
    assert [(e.actor, e.action, e.project) for e in entries[:2]] == [
        ("urn:shop:catalogue", "delete_sample", "reviews"), ("urn:shop:review-tool", "relabel_sample", "photos")]
    assert entries[1].details["sample_id"] == mug.id and entries[1].details["via"] == "broker"
    assert len(entries) == 5
    dead = dead_letters(url, subject)
    reasons = [r for _, r in dead]
    assert len(dead) == 5 and dead[0][0] == b"this is not json"  # kept byte for byte, with the reason
    assert "not a CloudEvents 1.0 JSON message" in reasons[0]
    assert "not_found" in reasons[1] and "nowhere" in reasons[1]
    assert "1 of 2 files were rejected" in reasons[2]
    assert "unknown type 'dyntrain.samples.explode'" in reasons[3] and "dyntrain.rows.add" in reasons[3]
    assert "exactly one of image_base64, blob or text" in reasons[4]
