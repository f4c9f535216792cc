"""One scheduler leader per database; another API process takes over when it dies."""

from __future__ import annotations

import httpx
import pytest

from dyntrain.scheduler.leader import Leadership
from tests.conftest import wait_for
from tests.scale.conftest import new_project
from tests.scale.servers import ServerProcess


def test_sqlite_process_always_leads(tmp_path):
    lead = Leadership(f"sqlite:///{tmp_path / 'x.db'}")
    assert lead.check() and lead.is_leader


@pytest.mark.postgres
def test_advisory_lock_gives_exactly_one_leader(pg_url):
    a, b = Leadership(pg_url), Leadership(pg_url)
    try:
        assert a.check() is True
        assert b.check() is False and not b.is_leader
        assert a.check() is True  # keeps it
        a.release()
        wait_for(b.check, timeout=10, interval=0.05)  # once the server has ended a's session
        assert a.check() is False
    finally:
        a.release()
        b.release()


@pytest.mark.postgres
def test_leader_lost_with_its_connection(pg_url):
    import psycopg

    from tests.scale.servers import PG_ADMIN_URL

    a, b = Leadership(pg_url), Leadership(pg_url)
    try:
        assert a.check()
        pid = a._conn.info.backend_pid
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # the server releases the lock when the terminated backend has exited (asynchronous)
        wait_for(b.check, timeout=10, interval=0.05)
        assert a.check() is False  # and the old leader notices it lost it
    finally:
        a.release()
        b.release()


@pytest.mark.slow
@pytest.mark.postgres
def test_standby_api_process_takes_over_the_scheduler(pg_url, tmp_path):
    env = {"DYNTRAIN_DATABASE_URL": pg_url, "DYNTRAIN_ARTIFACTS": str(tmp_path / "artifacts"),
           "DYNTRAIN_LEADER_POLL_S": "0.3", "DYNTRAIN_SCHEDULER_POLL_S": "0.2"}
    one = ServerProcess(tmp_path / "one", env, role="api").start()
    two = ServerProcess(tmp_path / "two", env, role="api").start()
    try:
        assert [one.health()["leader"], two.health()["leader"]] == [True, False]
        one.kill()
        wait_for(lambda: two.health()["leader"], timeout=15, interval=0.1)
        api = httpx.Client(base_url=two.api, timeout=30)
        new_project(api, "failover")
        job_id = api.post("/projects/failover/train").json()["job_id"]
        job = wait_for(lambda: (j := api.get(f"/projects/failover/jobs/{job_id}").json())["status"]
                       in ("succeeded", "failed") and j, timeout=120)
        assert job["status"] == "succeeded", job
    finally:
        one.stop()
        two.stop()
