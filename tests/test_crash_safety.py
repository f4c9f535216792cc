"""Crash safety: a real server SIGKILLed during uploads, training and promotions, then restarted
on the same data dir and database; and database contention (SQLite locked, PostgreSQL
connections terminated) answered with a retry or a clear 503, never a 500 with a stack trace.

What must hold after every crash:

* every sample whose upload got a 2xx is there, its blob readable and hash-correct; no row
  (sample or dataset-version item) refers to a missing or partial blob;
* a job whose worker died is retried (attempt 2) and completes; every registered model file
  is complete (sha256 of the row) and loads;
* the ``production`` alias points to a complete model that predicts; the alias history
  agrees with the alias; every prediction acknowledged before the kill is recorded.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from dyntrain.ops.demo import digit_images
from dyntrain.storage import Database
from dyntrain.storage.rows import (
    AliasHistoryRow, AliasRow, ModelVersionRow, PredictionRow, SampleRow, VersionItemRow,
)
from tests.conftest import PG_ADMIN_URL, LiveServer, png_bytes, wait_for
from tests.scale.servers import ServerProcess


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _server(tmp_path: Path, database_url: str, **env) -> ServerProcess:
    return ServerProcess(tmp_path / "data", {"DYNTRAIN_DATABASE_URL": database_url,
                                             "DYNTRAIN_SCHEDULER_ENABLED": "false", **env})


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*") if p.is_file()] if root.exists() else []


def _assert_blobs_complete(db: Database, blob_dir: Path) -> int:
    """Every content hash a sample or a dataset version refers to names a complete blob."""
    with db.read() as s:
        hashes = set(s.scalars(select(SampleRow.content_hash))) | set(s.scalars(select(VersionItemRow.content_hash)))
    for digest in hashes:
        path = blob_dir / digest[:2] / digest[2:]
        assert path.is_file(), f"a row refers to blob {digest[:12]}… which is missing"
        assert _sha(path.read_bytes()) == digest, f"blob {digest[:12]}… is partial or corrupt"
    return len(hashes)


def _assert_models_complete(db: Database, model_dir: Path) -> list[ModelVersionRow]:
    """Every registered model file exists, matches its row's sha256 and runs."""
    import onnxruntime as ort

    with db.read() as s:
        rows = s.scalars(select(ModelVersionRow)).all()
    for row in rows:
        path = model_dir / row.path
        assert path.is_file() and not path.name.startswith(".tmp-"), f"model v{row.version}: {path} is missing"
        assert _sha(path.read_bytes()) == row.sha256, f"model v{row.version} is half-written"
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        probs = session.run(["probabilities"], {session.get_inputs()[0].name: np.zeros((1, 224, 224, 3), np.uint8)})[0]
        assert probs.shape == (1, len(row.card["labels"])) and abs(float(probs.sum()) - 1) < 1e-3
    return rows


# ---------------------------------------------------------------------------------------------
# 1. SIGKILL during concurrent uploads


@pytest.mark.slow
def test_sigkill_during_uploads_loses_no_acknowledged_sample(tmp_path, database_url):
    server = _server(tmp_path, database_url).start()
    acked: dict[int, tuple[str, str]] = {}  # sample id -> (sha256 of the bytes sent, label)
    unexpected: list = []
    seeds = itertools.count()
    try:
        assert httpx.post(server.api + "/projects", json={"name": "up", "settings": {"auto_train": False}}).status_code == 201

        def uploader():
            with httpx.Client(base_url=server.api, timeout=30) as c:
                while True:
                    images = [png_bytes(next(seeds), size=(160, 120)) for _ in range(3)]
                    labels = [random.choice(["cat", "dog"]) for _ in images]
                    try:
                        r = c.post("/projects/up/samples", files=[("files", (f"{i}.png", d)) for i, d in enumerate(images)],
                                   data={"labels": labels})
                    except httpx.HTTPError:
                        return  # the server died under us: this request was never acknowledged
                    if r.status_code != 201:
                        unexpected.append((r.status_code, r.text[:300]))
                        return
                    for sample, data, label in zip(r.json()["samples"], images, labels):
                        acked[sample["id"]] = (_sha(data), label)

        threads = [threading.Thread(target=uploader) for _ in range(4)]
        for t in threads:
            t.start()
        kill_after = random.randint(30, 60)
        wait_for(lambda: len(acked) >= kill_after or unexpected, timeout=120, interval=0.01)
        server.kill()  # requests are in flight: mid-blob-write, mid-transaction, mid-response
        for t in threads:
            t.join(30)
        assert not unexpected, unexpected
    finally:
        server.kill()

    blob_dir = tmp_path / "data" / "blobs"
    server.env["DYNTRAIN_GC_GRACE_S"] = "0"  # housekeeping may collect what the kill left at once
    server.start()
    try:
        api = httpx.Client(base_url=server.api, timeout=30)
        page = api.get("/projects/up/samples", params={"limit": 1000}).json()
        stored = {s["id"]: s for s in page["items"]}
        missing = sorted(set(acked) - set(stored))
        assert not missing, f"{len(missing)} acknowledged samples are lost: {missing[:10]}"
        for sid, (digest, label) in acked.items():
            assert stored[sid]["content_hash"] == digest and stored[sid]["label"] == label
        # the newest dataset version holds exactly the active samples
        head = api.get("/projects/up/dataset-versions").json()[0]
        items = api.get(f"/projects/up/dataset-versions/{head['number']}").json()["items"]
        assert {i["sample_id"] for i in items} == set(stored) and page["total"] == len(stored)
        # temp files of interrupted blob writes are collected; nothing referenced is
        assert api.post("/admin/gc").status_code == 200
        assert _temp_files(blob_dir) == []
        for sid, (digest, _) in acked.items():
            image = api.get(f"/projects/up/samples/{sid}/image")
            assert image.status_code == 200 and _sha(image.content) == digest
        # the server still takes uploads
        r = api.post("/projects/up/samples", files=[("files", ("late.png", png_bytes(10**6)))], data={"label": "cat"})
        assert r.status_code == 201, r.text
    finally:
        server.stop()
    db = Database(database_url)
    try:
        assert _assert_blobs_complete(db, blob_dir) >= len(acked)
    finally:
        db.dispose()


# ---------------------------------------------------------------------------------------------
# 2. SIGKILL during a training run


@pytest.mark.slow
def test_sigkill_during_training_retries_the_job(tmp_path, database_url):
    env = {"DYNTRAIN_SCHEDULER_ENABLED": "true", "DYNTRAIN_JOB_LEASE_S": "8", "DYNTRAIN_SCHEDULER_POLL_S": "0.2"}
    server = _server(tmp_path, database_url, **env).start()
    images = digit_images(per_class=10)
    try:
        api = httpx.Client(base_url=server.api, timeout=30)
        api.post("/projects", json={"name": "crash", "settings": {"auto_train": False, "time_budget_s": 5}})
        r = api.post("/projects/crash/samples", files=[("files", (f"{i}.png", d)) for i, (_, d) in enumerate(images)],
                     data={"labels": [label for label, _ in images]})
        assert r.status_code == 201
        job_id = api.post("/projects/crash/train").json()["job_id"]
        wait_for(lambda: (api.get(f"/projects/crash/jobs/{job_id}").json().get("progress") or {}).get("percent", 0) > 0,
                 timeout=120, interval=0.1)
        time.sleep(random.uniform(0, 1.5))  # somewhere in features, selection, fit or export
        job = api.get(f"/projects/crash/jobs/{job_id}").json()
        assert job["status"] == "running", job
        server.kill()
    finally:
        server.kill()
    server.start()
    try:
        job = wait_for(lambda: (j := api.get(f"/projects/crash/jobs/{job_id}").json())["status"]
                       in ("succeeded", "failed") and j, timeout=300)
        assert job["status"] == "succeeded", job
        assert job["attempt"] == 2
        runs = api.get("/projects/crash/runs").json()
        assert [r["status"] for r in runs] == ["succeeded", "failed"]  # newest first
        assert "worker died" in runs[1]["error"]  # the dead attempt's run is closed, not "running" for ever
        assert api.get("/projects/crash/samples").json()["total"] == len(images)  # nothing lost
        models = api.get("/projects/crash/models").json()
        assert models[0]["aliases"] == ["production"]
        p = api.post("/projects/crash/predict", files=[("files", ("x.png", images[0][1]))])
        assert p.status_code == 200 and p.json()["predictions"][0]["model_version"] == models[0]["version"]
    finally:
        server.stop()
    db = Database(database_url)
    try:
        rows = _assert_models_complete(db, tmp_path / "data" / "models")
        assert len(rows) == len(models) >= 1
    finally:
        db.dispose()


# ---------------------------------------------------------------------------------------------
# 3. SIGKILL during promotions and rollbacks under prediction load


def _tiny_onnx(seed: int) -> bytes:
    """A real (if simple) 2-class image model: softmax(mean colour · W); W differs per seed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).normal(0, 0.05, (3, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["pixels"], ["colour"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["colour", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "tiny", [helper.make_tensor_value_info("image", TensorProto.UINT8, ["n", 224, 224, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 2])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.slow
def test_sigkill_during_promotions_keeps_alias_and_predictions(tmp_path, database_url):
    server = _server(tmp_path, database_url, DYNTRAIN_MODEL_POLL_S="0.5").start()
    api = httpx.Client(base_url=server.api, timeout=30)
    probe = png_bytes(7, size=(64, 64))
    try:
        api.post("/projects", json={"name": "promo", "settings": {"auto_train": False}})
        r = api.post("/projects/promo/samples", files=[("files", (f"{i}.png", png_bytes(i))) for i in range(8)],
                     data={"labels": ["red", "blue"] * 4})
        assert r.status_code == 201, r.text
        for seed in range(4):
            r = api.post("/projects/promo/models", files={"file": ("m.onnx", _tiny_onnx(seed))},
                         data={"labels": ["red", "blue"]})
            assert r.status_code == 201, r.text
        assert api.post("/projects/promo/models/1/promote").status_code == 200
    except BaseException:
        server.kill()
        raise

    predicted: dict[int, int] = {}  # prediction id -> model version, every one acknowledged
    history_before = 1
    for round_ in range(3):
        moves, unexpected = [], []
        stop = threading.Event()

        def promoter():
            with httpx.Client(base_url=server.api, timeout=30) as c:
                while not stop.is_set():
                    try:
                        if random.random() < 0.3:
                            r = c.post("/projects/promo/rollback")
                        else:
                            r = c.post(f"/projects/promo/models/{random.randint(1, 4)}/promote")
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        body = r.json()
                        if body.get("previous", -1) != body["production"]:  # a promote to itself moves nothing
                            moves.append(body["production"])
                    elif r.status_code != 422:  # 422: nothing to roll back to
                        unexpected.append((r.status_code, r.text[:300]))

        def predictor():
            with httpx.Client(base_url=server.api, timeout=30) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/projects/promo/predict", files=[("files", ("x.png", probe))])
                    except httpx.HTTPError:
                        return
                    if r.status_code != 200:
                        unexpected.append((r.status_code, r.text[:300]))
                        continue
                    p = r.json()["predictions"][0]
                    predicted[p["prediction_id"]] = p["model_version"]

        threads = [threading.Thread(target=promoter)] + [threading.Thread(target=predictor) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(moves) >= 3 or unexpected, timeout=60, interval=0.01)
            time.sleep(random.uniform(0.05, 0.6))
            server.kill()
        finally:
            stop.set()
            server.kill()
            for t in threads:
                t.join(30)
        assert not unexpected, unexpected

        server.start()
        models = api.get("/projects/promo/models").json()
        serving = [m["version"] for m in models if "production" in m["aliases"]]
        assert len(serving) == 1, models
        history = api.get("/projects/promo/aliases/history").json()
        assert history[0]["version"] == serving[0]  # the alias and its history moved together
        # every acknowledged move was committed; at most the one in flight at the kill as well
        assert len(moves) <= len(history) - history_before <= len(moves) + 1, (moves, history[:5])
        history_before = len(history)
        # the alias points to a complete model, and it serves
        model = next(m for m in models if m["version"] == serving[0])
        data = api.get(f"/projects/promo/models/{serving[0]}/file").content
        assert _sha(data) == model["sha256"]
        p = api.post("/projects/promo/predict", files=[("files", ("x.png", probe))]).json()["predictions"][0]
        assert p["model_version"] == serving[0]
        predicted[p["prediction_id"]] = p["model_version"]

    server.stop()
    db = Database(database_url)
    try:
        with db.read() as s:
            recorded = dict(s.execute(select(PredictionRow.id, PredictionRow.model_version)).all())
            alias = s.scalar(select(AliasRow.version).where(AliasRow.name == "production"))
            last = s.scalars(select(AliasHistoryRow).order_by(AliasHistoryRow.id.desc()).limit(1)).one()
        lost = sorted(set(predicted) - set(recorded))
        assert not lost, f"{len(lost)} acknowledged predictions are lost: {lost[:10]}"
        assert all(recorded[i] == v for i, v in predicted.items())
        assert last.version == alias
        _assert_models_complete(db, tmp_path / "data" / "models")
    finally:
        db.dispose()


# ---------------------------------------------------------------------------------------------
# 4. Database contention: retried, or a clear 503 — never a 500 with a stack trace


def _assert_clean_error(r: httpx.Response, status: int = 503) -> None:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert "Traceback" not in r.text and 'File "' not in r.text
    error = r.json()["error"]
    assert error["code"] and error["message"]
    if status == 503:
        assert int(r.headers["Retry-After"]) > 0


@pytest.fixture
def sqlite_busy_server(tmp_path):
    """A live server on SQLite with a 1 s busy timeout (``?timeout=1``) and one project."""
    from dyntrain.api import create_app
    from dyntrain.kernel.config import Settings
    from dyntrain.kernel.core import Core

    path = tmp_path / "busy.db"
    core = Core.create(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{path}?timeout=1",
                                seed_demo=False, scheduler_enabled=False))
    with LiveServer(create_app(core=core)) as server:
        api = httpx.Client(base_url=server.url + "/api/v1", timeout=30)
        api.post("/projects", json={"name": "busy", "settings": {"auto_train": False}})
        r = api.post("/projects/busy/samples", files=[("files", (f"{i}.png", png_bytes(i))) for i in range(4)],
                     data={"labels": ["a", "b"] * 2})
        assert r.status_code == 201
        yield api, path
    core.db.dispose()


class _WriteLock:
    """Another process's writer holding SQLite's write lock until ``release()`` (or ``seconds``)."""

    def __init__(self, path: Path, seconds: float = 60):
        self._locked, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(path, seconds))

    def _hold(self, path: Path, seconds: float) -> None:
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        self._locked.set()
        self._release.wait(seconds)
        con.execute("ROLLBACK")
        con.close()

    def __enter__(self) -> "_WriteLock":
        self._thread.start()
        assert self._locked.wait(5)
        return self

    def release(self) -> None:
        self._release.set()
        self._thread.join()

    def __exit__(self, *exc) -> None:
        self.release()


def test_sqlite_locked_is_waited_out_or_answered_with_503(sqlite_busy_server):
    api, path = sqlite_busy_server
    upload = {"files": [("files", ("x.png", png_bytes(100)))], "data": {"label": "a"}}
    # shorter than the busy timeout: the write waits for the lock and succeeds
    with _WriteLock(path, seconds=0.4):
        r = api.post("/projects/busy/samples", **upload)
    assert r.status_code == 201, r.text
    # longer than the busy timeout (1 s): a clear 503 with Retry-After; reads still work (WAL)
    with _WriteLock(path):
        _assert_clean_error(api.post("/projects/busy/samples", files=[("files", ("y.png", png_bytes(101)))],
                                     data={"label": "a"}))
        _assert_clean_error(api.post("/projects/busy/train"))
        _assert_clean_error(api.patch("/projects/busy", json={"settings": {"seed": 3}}))
        assert api.get("/projects/busy/samples").json()["total"] == 5
        assert api.get("/health").json()["database"] is True
    # the lock is gone: the same write succeeds, and the refused one left nothing behind
    assert api.post("/projects/busy/samples", files=[("files", ("y.png", png_bytes(101)))],
                    data={"label": "a"}).status_code == 201
    assert api.get("/projects/busy/samples").json()["total"] == 6
    assert len(api.get("/projects/busy/dataset-versions").json()) == 3


def _terminate_backends(database: str) -> int:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall())


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_connections_lost_are_retried_or_answered_with_503(live_server, core, database_url):
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=30)
    database = database_url.rsplit("/", 1)[1]
    api.post("/projects", json={"name": "pg", "settings": {"auto_train": False}})
    assert api.post("/projects/pg/samples", files=[("files", ("0.png", png_bytes(0)))], data={"label": "a"}).status_code == 201

    # every pooled connection killed while idle: the next requests reconnect (pre-ping) and succeed
    assert _terminate_backends(database) >= 1
    assert api.get("/projects/pg").status_code == 200
    r = api.post("/projects/pg/samples", files=[("files", ("1.png", png_bytes(1)))], data={"label": "b"})
    assert r.status_code == 201, r.text

    # connections killed again and again under load: each request succeeds or gets a clean 503
    statuses: list[int] = []
    bad: list = []
    acked: list[int] = []
    stop = threading.Event()
    seeds = itertools.count(1000)

    def client():
        with httpx.Client(base_url=live_server.url + "/api/v1", timeout=30) as c:
            while not stop.is_set():
                if random.random() < 0.5:
                    r = c.post("/projects/pg/samples", files=[("files", ("x.png", png_bytes(next(seeds))))],
                               data={"label": "a"})
                    if r.status_code == 201:
                        acked.extend(s["id"] for s in r.json()["samples"])
                else:
                    r = c.get("/projects/pg/samples", params={"limit": 5})
                if r.status_code == 503:
                    _assert_clean_error(r)
                statuses.append(r.status_code)
                if r.status_code not in (200, 201, 503):
                    bad.append((r.status_code, r.text[:300]))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            _terminate_backends(database)
            time.sleep(random.uniform(0.02, 0.2))
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not bad, bad
    assert statuses.count(200) + statuses.count(201) > len(statuses) // 4, statuses
    # afterwards everything works again and every acknowledged sample is there
    page = api.get("/projects/pg/samples", params={"limit": 1000})
    assert page.status_code == 200
    assert set(acked) <= {s["id"] for s in page.json()["items"]}
    assert api.get("/health").json()["database"] is True


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_refused_connection_is_retried_before_the_transaction(database_url):
    """A server restarting refuses connections for a moment: opening the transaction is retried."""
    import psycopg
    from sqlalchemy import event, text

    db = Database(database_url)
    refusals = []

    @event.listens_for(db.engine, "do_connect")
    def _refuse_twice(*_):
        if len(refusals) < 2:
            refusals.append(1)
            raise psycopg.OperationalError("connection refused (the server is starting up)")

    try:
        with db.write() as s:
            assert s.execute(text("SELECT 1")).scalar() == 1
        assert len(refusals) == 2
    finally:
        db.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unexpected_error_is_a_json_500_without_a_traceback(client, monkeypatch):
    from fastapi.testclient import TestClient

    import dyntrain.kernel.projects

    def broken(*_a, **_k):
        raise RuntimeError("a bug with a secret detail")

    monkeypatch.setattr(dyntrain.kernel.projects, "list_projects", broken)
    with TestClient(client.app, raise_server_exceptions=False, base_url="http://127.0.0.1",
                    client=("127.0.0.1", 50000)) as c:
        r = c.get("/api/v1/projects")
    _assert_clean_error(r, 500)
    assert "secret" not in r.text
