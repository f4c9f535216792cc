"""Two inference replicas and an API process on one PostgreSQL database.

The replicas poll only once a minute here, so a promotion that reaches them within a
second or two came by LISTEN/NOTIFY (or the re-check after a reconnect).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.projects import create_project
from dyntrain.registry.models import register_model
from dyntrain.scheduler import queue
from dyntrain.storage.rows import ModelVersionRow
from tests.conftest import wait_for
from tests.scale.conftest import FAST
from tests.scale.servers import PG_ADMIN_URL, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def two_model_versions(core: Core, name: str = "swap") -> int:
    """Train version 1, register its file again as version 2 (answers tell versions apart)."""
    from dyntrain.scheduler.jobs import run_job

    project = create_project(core, name, settings={**FAST, "auto_train": False})
    images = digit_images(per_class=8)
    add_samples(core, name, [Upload(f"{i}.png", d) for i, (_, d) in enumerate(images)], [lab for lab, _ in images])
    queue.request_training(core, name)
    run_job(core, queue.claim_next(core))
    with core.db.read() as s:
        v1 = s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == project.id)).one()
    register_model(core, project.id, Path(core.artifacts.model_file(v1.path)), dict(v1.card), run_id=None,
                   source="uploaded")
    return project.id


def test_promotion_reaches_both_replicas_under_load(pg_url, tmp_path):
    artifacts = tmp_path / "artifacts"
    core = Core.create(Settings(data_dir=tmp_path / "trainer", database_url=pg_url, artifacts=str(artifacts),
                                seed_demo=False, scheduler_enabled=False))
    pid = two_model_versions(core)
    key = str(pid)
    env = {"DYNTRAIN_DATABASE_URL": pg_url, "DYNTRAIN_ARTIFACTS": str(artifacts), "DYNTRAIN_MODEL_POLL_S": "60"}
    api_server = ServerProcess(tmp_path / "api", env, role="api").start()
    replicas = [ServerProcess(tmp_path / f"replica{i}", env, role="inference").start() for i in range(2)]
    stop = threading.Event()
    results: list[tuple[int, int]] = []
    failures: list = []
    try:
        for r in replicas:
            health = wait_for(lambda r=r: (h := r.health())["listening"] and h, timeout=20, interval=0.05)
            assert health["role"] == "inference" and health["serving"] == {key: 1}  # preloaded at start
            assert health["training_stack_loaded"] is False
            assert httpx.post(r.api + "/projects/swap/samples").status_code in (404, 405)  # no data routes
        api = httpx.Client(base_url=api_server.api, timeout=30)
        assert api_server.health()["leader"] is True
        image = digit_images(per_class=1, offset=9)[0][1]

        def load(index: int) -> None:
            with httpx.Client(base_url=replicas[index % 2].api, timeout=30) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/projects/swap/predict", files=[("files", ("x.png", image))])
                        if r.status_code == 200:
                            results.append((index % 2, r.json()["predictions"][0]["model_version"]))
                        else:
                            failures.append((r.status_code, r.text[:200]))
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))

        threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(results) >= 20, timeout=30, interval=0.05)

        probes = [httpx.Client(base_url=r.api, timeout=10) for r in replicas]  # kept open: a poll costs ~5 ms

        def reached(version: int) -> float:
            t0 = time.monotonic()
            r = api.post(f"/projects/swap/models/{version}/promote")
            assert r.status_code == 200 and r.json()["production"] == version, r.text
            seen = [None, None]
            while None in seen and time.monotonic() - t0 < 10:
                for i, probe in enumerate(probes):
                    if seen[i] is None and probe.get("/health").json()["serving"].get(key) == version:
                        seen[i] = time.monotonic() - t0
                time.sleep(0.005)
            assert None not in seen, f"version {version} did not reach every replica in 10 s: {seen}"
            return max(seen)

        delays = [reached(v) for v in (2, 1, 2, 1, 2, 1)]
        print(f"\npromotion → both replicas: median {statistics.median(delays) * 1000:.0f} ms, "
              f"max {max(delays) * 1000:.0f} ms over {len(delays)} promotions under load")
        assert max(delays) < 5.0, delays  # far below the 60 s poll: the notification did it

        # A replica that lost its LISTEN connection re-checks everything when it is back.
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + pg_url.rsplit("/", 1)[1],
                             autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE application_name = 'dyntrain-alias-listener' "
                                   "AND datname = current_database()").fetchone()[0]  # not another test's
            assert killed == 3  # both replicas and the API process listen
            api.post("/projects/swap/models/2/promote")  # sent while the replicas are not listening
        for rep in replicas:
            wait_for(lambda rep=rep: rep.health()["serving"].get(key) == 2, timeout=10, interval=0.05)
        n = len(results)
        wait_for(lambda: len(results) >= n + 20, timeout=30, interval=0.05)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert failures == []
        assert {v for _, v in results} == {1, 2} and {i for i, _ in results} == {0, 1}
        # the API process lists what it serves too (after a request loaded it)
        api.post("/projects/swap/predict", files=[("files", ("x.png", image))])
        assert api_server.health()["serving"] == {key: 2}
    finally:
        stop.set()
        for s in (api_server, *replicas):
            s.stop()
        core.db.dispose()
