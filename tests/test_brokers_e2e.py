"""Brokers end to end: a broker outage during three runs (nothing lost, nothing twice, nothing slowed),
a server killed between receiving a message and committing its change (redelivered, applied once),
and the whole loop driven by a broker message with its events followed by ``dyntrain events tail``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from dyntrain.datasets import changes
from dyntrain.kernel.projects import create_project, project_row
from dyntrain.storage.rows import IngestedMessageRow
from tests.conftest import png_bytes, wait_for
from tests.test_brokers import (BROKERS, Collector, broker_url, cloudevent, counts, emit, forget,  # noqa: F401
                                ingest_core, project_events, reachable, send, unique)

from dyntrain.brokers.publisher import BrokerPublisher, event_subject

pytestmark = pytest.mark.slow
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
RUN = ("data.changed", "job.queued", "job.started", "job.progress", "job.finished", "model.promoted")


# These run on SQLite only, to keep the suite short: what depends on the database (the drain's
# order and gaps, applying a message once) is covered on both in test_brokers.py.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnNats:
    """A throw-away JetStream server (its own port and store), stopped and started by the test."""

    def __init__(self, store: Path):
        self.port, self.store, self.proc = free_port(), store, None
        self.url = f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([NATS_SERVER, "-js", "-sd", str(self.store), "-a", "127.0.0.1",
                                      "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: reachable(self.url), timeout=20, interval=0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def run_events(core, project: str, run: int) -> float:
    """One training run's events, each in its own transaction as the scheduler writes them; the
    slowest write's seconds (a broker outage must not slow them)."""
    slowest = 0.0
    for type_ in RUN:
        started = time.monotonic()
        emit(core, project, type_, run=run)
        slowest = max(slowest, time.monotonic() - started)
    return slowest


def stream_messages(url: str, subject: str) -> list[dict]:
    """Everything JetStream holds on ``subject``, oldest first."""
    async def go():
        import nats

        nc = await nats.connect(url)
        sub = await nc.jetstream().subscribe(subject, ordered_consumer=True)
        found = []
        try:
            while True:
                found.append(json.loads((await sub.next_msg(timeout=1)).data))
        except nats.errors.TimeoutError:
            pass
        await nc.close()
        return found

    return asyncio.run(go())


@SQLITE_ONLY
def test_nats_outage_during_three_runs_loses_nothing_and_sends_nothing_twice(core, tmp_path):
    if not os.path.exists(NATS_SERVER):
        pytest.fail("no nats-server binary: apt-get install nats-server")
    broker = OwnNats(tmp_path / "jetstream")
    broker.start()
    core.settings.events_url = broker.url
    create_project(core, "shop")
    publisher = BrokerPublisher(core, poll_s=0.05, backoff_s=0.2, max_backoff_s=1.0).start()
    try:
        run_events(core, "shop", 1)
        wait_for(lambda: publisher.published == len(RUN), timeout=20, interval=0.05)
        broker.stop()  # down for the next three runs
        slowest = max(run_events(core, "shop", run) for run in (2, 3, 4))
        time.sleep(1)  # the publisher keeps trying meanwhile
        assert publisher.published == len(RUN)
        assert slowest < 0.5  # the changes never wait for the broker
        broker.start()
        wait_for(lambda: publisher.published == 4 * len(RUN), timeout=60, interval=0.1)
        got = stream_messages(broker.url, event_subject("shop"))
    finally:
        publisher.stop()
        broker.stop()
    expected = project_events(core, "shop")
    assert [e["id"] for e in got] == [str(i) for i, _, _ in expected]  # all, in order, none twice
    assert [e["data"]["run"] for e in got] == [r for r in (1, 2, 3, 4) for _ in RUN]


@SQLITE_ONLY
def test_amqp_outage_loses_nothing_and_keeps_order(core):
    """No second RabbitMQ on this machine: the outage is a broker address nobody listens on,
    switched to the real one once the runs are written (the shared broker is never stopped)."""
    url = BROKERS["amqp"]
    if not reachable(url):
        pytest.fail(f"no RabbitMQ at {url}: start the local service")
    core.settings.events_url = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    project = unique("shop")
    create_project(core, project)
    collector = Collector(url, event_subject(project))
    publisher = BrokerPublisher(core, poll_s=0.05, backoff_s=0.2, max_backoff_s=1.0).start()
    try:
        slowest = max(run_events(core, project, run) for run in (1, 2, 3))
        time.sleep(1.5)
        assert publisher.published == 0 and slowest < 0.5
        publisher.client.url = url  # the broker is back
        wait_for(lambda: len(collector.events) >= 3 * len(RUN), timeout=60, interval=0.1)
        time.sleep(0.5)
        got = collector.events
    finally:
        publisher.stop()
        collector.close()
    assert [e["id"] for e in got] == [str(i) for i, _, _ in project_events(core, project)]


KILLER = """
import os, sys, time
from sqlalchemy import event
from sqlalchemy.orm import Session
from dyntrain.brokers import ingest
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core

@event.listens_for(Session, sys.argv[1])
def die(session):  # the process dies here, while a message is being applied
    if ingest._APPLYING.get() is not None:
        os._exit(17)

ingest.IngestConsumer(Core.create(Settings())).start()
time.sleep(60)
"""


@SQLITE_ONLY
def test_server_killed_between_receive_and_commit_applies_the_message_once(ingest_core, tmp_path):
    core = ingest_core
    url, subject = core.settings.ingest_url, core.settings.ingest_subject
    create_project(core, "photos")
    env = {**os.environ, "DYNTRAIN_DATA_DIR": str(core.settings.data_dir),
           "DYNTRAIN_DATABASE_URL": core.settings.database_url, "DYNTRAIN_INGEST_URL": url,
           "DYNTRAIN_INGEST_SUBJECT": subject, "DYNTRAIN_INGEST_REDELIVER_S": "1", "DYNTRAIN_SEED_DEMO": "false"}

    def killed_while_applying(when: str) -> None:
        proc = subprocess.run([sys.executable, "-c", KILLER, when], env=env, timeout=90, capture_output=True)
        assert proc.returncode == 17, proc.stderr.decode()[-2000:]

    def add(i: int) -> bytes:
        import base64

        return cloudevent("dyntrain.samples.add", "photos", {"samples": [
            {"label": "mug", "image_base64": base64.b64encode(png_bytes(i)).decode()}]}, id_=f"msg-{i}")

    send(url, subject, [add(1)])
    killed_while_applying("before_commit")  # received, not committed: nothing of it is kept
    assert counts(core, "photos") == (0, 0)
    send(url, subject, [add(2)])
    killed_while_applying("after_commit")  # committed (message 1, redelivered), then killed before the ack
    assert counts(core, "photos") == (1, 1)
    from dyntrain.brokers.ingest import IngestConsumer

    consumer = IngestConsumer(core).start()
    try:
        wait_for(lambda: counts(core, "photos")[0] == 2, timeout=30)
        time.sleep(1.5)  # past the redelivery time: nothing is applied again
    finally:
        consumer.stop()
    assert counts(core, "photos") == (2, 2)
    with core.db.read() as s:
        assert s.scalar(select(func.count()).select_from(IngestedMessageRow)) == 2
    from dyntrain.access import audit

    assert [e.actor for e in audit.entries(core)] == ["urn:shop:catalogue"] * 2


@SQLITE_ONLY
def test_whole_loop_from_a_broker_message_with_its_events_out_in_order(core, broker_url):
    """A tabular project fed by a message: it trains, promotes, and every event of it is published in
    order; ``dyntrain events tail`` shows them to a person at a terminal."""
    from dyntrain.api import create_app
    from tests.conftest import LiveServer
    from tests.test_tabular_loop import FAST, houses

    project = unique("houses")
    core.settings.events_url = core.settings.ingest_url = broker_url
    core.settings.ingest_subject = unique("dyntrain-ingest-test-")
    core.settings.scheduler_enabled, core.settings.scheduler_poll_s = True, 0.2
    create_project(core, project, task="tabular-regression", settings={**FAST, "time_budget_s": 2})
    collector = Collector(broker_url, event_subject(project))
    tail = subprocess.Popen([str(Path(sys.executable).parent / "dyntrain"), "events", "tail", "--project", project,
                             "--count", "3", "--broker", broker_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        with LiveServer(create_app(core=core)) as server:
            time.sleep(2)  # the tail has subscribed
            send(broker_url, core.settings.ingest_subject,
                 [cloudevent("dyntrain.rows.add", project, {"rows": houses(40), "target": "price"})])
            wait_for(lambda: {"dyntrain.model.promoted", "dyntrain.job.finished"} <= {e["type"] for e in
                                                                                      collector.events}, timeout=120)
            health = httpx.get(server.url + "/api/v1/health").json()
            assert health["status"] == "ok"
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
        collector.close()
        forget(broker_url, core.settings.ingest_subject)
    got = collector.events
    expected = [(i, t) for i, t, _ in project_events(core, project)]
    assert [(int(e["id"]), e["type"]) for e in got] == [(i, f"dyntrain.{t}") for i, t in expected][:len(got)]
    types = [e["type"].removeprefix("dyntrain.") for e in got]
    assert types[0] == "data.changed" and "job.started" in types and "job.finished" in types
    assert types.index("job.started") < types.index("model.promoted") < types.index("job.finished")
    lines = out.strip().splitlines()
    assert len(lines) == 3 and project in lines[0] and "dyntrain.data.changed" in lines[0], (out, err)
    with core.db.read() as s:
        assert project_row(s, project).head_version == 1
    assert changes.list_samples(core, project)[1] == 40
