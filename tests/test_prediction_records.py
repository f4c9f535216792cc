"""Prediction records: group commit under concurrency, and the list's keyset pagination (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import threading

import pytest

from dyntrain.kernel.errors import Invalid
from dyntrain.kernel.projects import create_project
from dyntrain.serving import predict as serving
from dyntrain.serving.records import RecordWriter
from dyntrain.storage.rows import PredictionRow, utcnow


def _record(project_id: int, label: str = "a", confidence: float = 0.5, version: int = 1) -> dict:
    return {"project_id": project_id, "model_version": version, "label": label, "confidence": confidence,
            "output": {"label": label, "confidence": confidence}, "input_hash": "0" * 64, "input_stored": False,
            "latency_ms": 1.0, "client": "test", "feedback_label": None, "feedback": None, "created_at": utcnow()}


def test_concurrent_writes_share_commits_and_every_record_gets_its_own_id(core):
    pid = create_project(core, "records").id
    writer = RecordWriter(core.db)
    ids: dict[int, list[int]] = {}
    start = threading.Barrier(12)

    def request(k: int) -> None:
        start.wait()
        out = []
        for i in range(15):
            out += writer.write([_record(pid, label=f"t{k}-{i}", confidence=i / 15)])
        ids[k] = out

    threads = [threading.Thread(target=request, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [i for out in ids.values() for i in out]
    assert len(everything) == len(set(everything)) == 12 * 15
    assert writer.records == 12 * 15
    with core.db.read() as s:
        for k, out in ids.items():  # each id is the record its request wrote, committed
            assert [s.get(PredictionRow, i).label for i in out] == [f"t{k}-{i}" for i in range(15)]


def test_a_failing_record_fails_only_its_own_request(core):
    pid = create_project(core, "records").id
    writer = RecordWriter(core.db)
    results: dict[str, object] = {}
    gate = threading.Event()
    original = writer._insert_rows

    def slow_first(rows):  # hold the first group open so the next requests queue into one group
        gate.wait(10)
        return original(rows)

    writer._insert_rows = slow_first

    def request(name: str, project_id: int) -> None:
        try:
            results[name] = writer.write([_record(project_id, label=name)])
        except Exception as exc:
            results[name] = exc

    first = threading.Thread(target=request, args=("first", pid))
    first.start()
    while not writer._writing:
        pass
    others = [threading.Thread(target=request, args=(n, p)) for n, p in
              (("good-1", pid), ("missing-project", 10 ** 9), ("good-2", pid))]
    for t in others:
        t.start()
    while len(writer._waiting) < 3:
        pass
    gate.set()
    for t in [first, *others]:
        t.join(30)
    assert isinstance(results["missing-project"], Exception)  # its foreign key does not hold
    with core.db.read() as s:
        for name in ("first", "good-1", "good-2"):
            (pred_id,) = results[name]
            assert s.get(PredictionRow, pred_id).label == name


def test_empty_write_commits_nothing(core):
    writer = RecordWriter(core.db)
    assert writer.write([]) == [] and writer.groups == 0


@pytest.mark.parametrize("order", ["newest", "least_confident"])
def test_cursor_pages_walk_exactly_the_offset_pages(core, order):
    pid = create_project(core, "pages").id
    rng = random.Random(3)
    # Repeated confidences: the cursor must break ties by id, never skip or repeat a record.
    rows = [_record(pid, label=rng.choice("abc"), confidence=rng.choice([0.1, 0.25, 0.5, 0.75, rng.random()]),
                    version=rng.choice([1, 2])) for _ in range(230)]
    RecordWriter(core.db).write(rows)
    for filters in ({}, {"label": "b"}, {"version": 2, "max_confidence": 0.6}):
        everything, total = serving.list_predictions(core, "pages", order=order, limit=1000, **filters)
        assert total == len(everything) > 0
        walked, cursor = [], None
        while True:
            page, _ = serving.list_predictions(core, "pages", order=order, limit=40, cursor=cursor, **filters)
            walked += page
            cursor = serving.next_cursor(page, order, 40)
            if cursor is None:
                break
        assert [p.id for p in walked] == [p.id for p in everything]
        by_offset, _ = serving.list_predictions(core, "pages", order=order, limit=40, offset=80, **filters)
        assert [p.id for p in by_offset] == [p.id for p in everything[80:120]]


def test_count_limit_and_bad_cursor(core):
    pid = create_project(core, "count").id
    RecordWriter(core.db).write([_record(pid) for _ in range(25)])
    assert serving.list_predictions(core, "count", limit=5, count_limit=10)[1] == 11  # a lower bound past the limit
    assert serving.list_predictions(core, "count", limit=5, count_limit=100)[1] == 25
    with pytest.raises(Invalid, match="next_cursor"):
        serving.list_predictions(core, "count", order="least_confident", cursor="not-a-cursor")


def test_api_pages_with_next_cursor(client, core):
    pid = create_project(core, "api-pages").id
    RecordWriter(core.db).write([_record(pid, confidence=i / 30) for i in range(30)])
    url = "/api/v1/projects/api-pages/predictions"
    first = client.get(url, params={"limit": 20}).json()
    assert (first["total"], first["total_exact"], len(first["items"])) == (30, True, 20)
    second = client.get(url, params={"limit": 20, "cursor": first["next_cursor"]}).json()
    assert len(second["items"]) == 10 and second["next_cursor"] is None
    assert {p["id"] for p in first["items"]}.isdisjoint(p["id"] for p in second["items"])
    bad = client.get(url, params={"cursor": "x"})
    assert bad.status_code == 422 and "next_cursor" in bad.json()["error"]["message"]
