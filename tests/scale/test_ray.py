"""Training on a real Ray cluster (a head node plus one worker node, all on loopback).

One cluster, one PostgreSQL database and one API process (``--ray-address``) for the whole
module, to keep the run short; each test uses its own project.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from sqlalchemy import select

from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.ops.demo import digit_images
from dyntrain.storage.rows import EventRow, JobRow, RunRow
from tests.conftest import require_postgres, wait_for
from tests.scale.cluster import RayCluster
from tests.scale.conftest import new_project, upload
from tests.scale.servers import ServerProcess, fresh_pg_database, pg_available

pytestmark = pytest.mark.slow
LEASE_S = 5
DONE = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(cluster, API server, in-test Core on the same database)."""
    require_postgres(pg_available())
    tmp = tmp_path_factory.mktemp("ray")
    with RayCluster(worker_cpus=1, head_cpus=0, object_store_mb=100) as cluster, fresh_pg_database() as url:
        env = cluster.env(DYNTRAIN_DATABASE_URL=url, DYNTRAIN_RAY_ADDRESS=cluster.address,
                      DYNTRAIN_ARTIFACTS=str(tmp / "artifacts"), DYNTRAIN_JOB_LEASE_S=str(LEASE_S),
                      DYNTRAIN_SCHEDULER_POLL_S="0.2", DYNTRAIN_RAY_GPU_PROJECTS="needs-gpu",
                      DYNTRAIN_RAY_RESOURCE_TIMEOUT_S="3")
        server = ServerProcess(tmp / "api", env).start()
        core = Core.create(Settings(data_dir=tmp / "test", database_url=url, artifacts=str(tmp / "artifacts"),
                                    seed_demo=False, scheduler_enabled=False))
        try:
            yield cluster, server, core
        finally:
            server.stop()
            core.db.dispose()


def _api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.api, timeout=30)


def _job_row(core: Core, job_id: int) -> JobRow:
    with core.db.read() as s:
        return s.get(JobRow, job_id)


def _finished(api: httpx.Client, project: str, job_id: int, timeout: float = 150) -> dict:
    return wait_for(lambda: (j := api.get(f"/projects/{project}/jobs/{job_id}").json())["status"] in DONE and j,
                    timeout=timeout, interval=0.2)


def _started_on_ray(core: Core, job_id: int, run: bool = True) -> JobRow:
    """The job runs on a Ray worker (``ray-…@host:pid``), its run record created when ``run``."""
    def ready():
        row = _job_row(core, job_id)
        assert row.status not in DONE, f"job {job_id} ended before the test could act: {row.status} {row.error}"
        return row if (row.status == "running" and "@" in (row.worker or "")
                       and (not run or row.run_id is not None)) else None
    return wait_for(ready, timeout=120, interval=0.02)


def test_project_trains_through_ray_end_to_end(stack):
    cluster, server, core = stack
    api = _api(server)
    new_project(api, "ray-e2e")
    job_id = api.post("/projects/ray-e2e/train").json()["job_id"]
    row = _started_on_ray(core, job_id)
    assert row.worker.startswith(f"ray-{job_id}.1@")
    assert int(row.worker.rsplit(":", 1)[1]) in cluster.pids()  # a process of the cluster, not the API
    job = _finished(api, "ray-e2e", job_id)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 1
    with core.db.read() as s:  # progress flowed to the job row and the event stream
        kinds = [e.type for e in s.scalars(select(EventRow).where(EventRow.data["job_id"].as_integer() == job_id))]
    assert "job.progress" in kinds and kinds[-1] == "job.finished"
    models = api.get("/projects/ray-e2e/models").json()
    assert models[0]["aliases"] == ["production"]
    image = digit_images(per_class=1, offset=30)[0][1]
    r = api.post("/projects/ray-e2e/predict", files=[("files", ("x.png", image))])
    assert r.status_code == 200 and r.json()["predictions"][0]["model_version"] == 1
    # Again, now with a model in service: the worker opens that version from the artifact store,
    # re-scores it for the gate, and the run goes through (it failed on every retrain before).
    job_id = api.post("/projects/ray-e2e/train").json()["job_id"]
    job = _finished(api, "ray-e2e", job_id)
    assert job["status"] == "succeeded", job
    with core.db.read() as s:
        run = s.get(RunRow, _job_row(core, job_id).run_id)
    served = run.result["gate"]["served"]
    assert run.status == "succeeded" and served["version"] == 1, served
    assert "could not be run" not in (served.get("note") or ""), served


def test_killed_worker_is_retried_and_the_job_completes(stack):
    cluster, server, core = stack
    api = _api(server)
    new_project(api, "ray-kill", images=digit_images(per_class=25, offset=100))  # not embedded yet: slower
    job_id = api.post("/projects/ray-kill/train").json()["job_id"]
    row = _started_on_ray(core, job_id)
    first_run = row.run_id
    os.kill(int(row.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    job = _finished(api, "ray-kill", job_id, timeout=180)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 2  # the job row shows the retry
    with core.db.read() as s:
        runs = s.scalars(select(RunRow).where(RunRow.job_id == job_id).order_by(RunRow.id)).all()
    assert [r.status for r in runs] == ["failed", "succeeded"]
    assert runs[0].id == first_run and "lost its Ray worker" in runs[0].error


def test_superseded_job_is_cancelled_on_ray(stack):
    cluster, server, core = stack
    api = _api(server)
    assert api.post("/projects", json={"name": "ray-cancel", "settings": {
        "learners": ["image.pixel_logreg", "image.linear_probe"], "time_budget_s": 30,
        "train_delay_s": 0.2, "train_max_delay_s": 60}}).status_code == 201
    upload(api, "ray-cancel", digit_images(per_class=40, offset=60))  # images no earlier test has embedded
    first = wait_for(lambda: api.get("/projects/ray-cancel/jobs").json(), timeout=30)[-1]["id"]
    _started_on_ray(core, first, run=False)
    t0 = time.monotonic()
    upload(api, "ray-cancel", digit_images(per_class=2, offset=50))  # dataset version 2 supersedes it
    job = _finished(api, "ray-cancel", first, timeout=60)
    cancelled_in = time.monotonic() - t0
    assert job["status"] == "cancelled", job
    assert "superseded" in job["error"]
    print(f"\nsuperseded job cancelled {cancelled_in:.2f} s after the new data: {job['error']}")
    assert cancelled_in < 10, cancelled_in
    jobs = api.get("/projects/ray-cancel/jobs").json()
    newer = next(j for j in jobs if j["id"] != first)
    assert newer["dataset_version"] == 2 and newer["status"] not in ("failed", "cancelled")
    api.post(f"/projects/ray-cancel/jobs/{newer['id']}/cancel")  # tidy: nothing else to prove here
    _finished(api, "ray-cancel", newer["id"], timeout=120)


def test_api_restart_neither_loses_nor_repeats_a_running_job(stack):
    cluster, server, core = stack
    api = _api(server)
    new_project(api, "ray-restart", images=digit_images(per_class=25, offset=125))
    job_id = api.post("/projects/ray-restart/train").json()["job_id"]
    worker = _started_on_ray(core, job_id).worker
    server.kill()  # the API dies; the detached dispatcher actor keeps the task
    time.sleep(LEASE_S + 1)  # longer than a lease: still renewed by the worker and the actor
    assert _job_row(core, job_id).status in ("running", "succeeded")
    server.start()
    job = _finished(_api(server), "ray-restart", job_id)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 1
    assert _job_row(core, job_id).worker == worker  # the same execution finished it
    with core.db.read() as s:
        assert len(s.scalars(select(RunRow).where(RunRow.job_id == job_id)).all()) == 1


def test_job_asking_for_a_gpu_no_node_has_fails_with_a_reason(stack):
    cluster, server, core = stack
    api = _api(server)
    new_project(api, "needs-gpu", images=digit_images(per_class=3))
    job_id = api.post("/projects/needs-gpu/train").json()["job_id"]
    job = _finished(api, "needs-gpu", job_id, timeout=60)
    assert job["status"] == "failed"
    assert "no node of the Ray cluster offers" in job["error"] and "'GPU': 1.0" in job["error"], job["error"]
