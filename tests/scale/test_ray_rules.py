"""The job-table side of Ray executions, without a cluster: adoption, retries, staleness, resources."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.projects import create_project
from dyntrain.scheduler import queue
from dyntrain.scheduler.ray_executor import RayExecutor, begin_attempt, close_if_ours, job_resources
from dyntrain.storage.rows import EventRow, JobRow, RunRow


def _claimed(core, name="p"):
    create_project(core, name, settings={"auto_train": False})
    images = digit_images(per_class=2)
    add_samples(core, name, [Upload(f"{i}.png", d) for i, (_, d) in enumerate(images)], [lab for lab, _ in images])
    queue.request_training(core, name)
    return queue.claim_next(core)


def _dispatch(core, job, token):
    """What the dispatcher actor writes before submitting the task."""
    with core.db.write() as s:
        s.get(JobRow, job.id).worker = token


def _row(core, job_id):
    with core.db.read() as s:
        return s.get(JobRow, job_id)


def test_first_execution_adopts_the_job(core):
    import ray  # noqa: F401  (the dev extra installs it)
    job = _claimed(core)
    token = f"ray-{job.id}.{job.attempt}"
    _dispatch(core, job, token)
    adopted = begin_attempt(core, job.id, token)
    assert adopted is not None and adopted.attempt == 1
    assert _row(core, job.id).worker.startswith(token + "@")


def test_a_ray_retry_counts_an_attempt_and_closes_the_lost_run(core):
    import ray  # noqa: F401  (the dev extra installs it)
    job = _claimed(core)
    token = f"ray-{job.id}.{job.attempt}"
    _dispatch(core, job, token)
    begin_attempt(core, job.id, token)
    from dyntrain.training.records import start_run

    run_id = start_run(core, job.project_id, job.id, job.dataset_version, {})
    with core.db.write() as s:
        s.get(JobRow, job.id).run_id = run_id
    again = begin_attempt(core, job.id, token)  # the worker died; Ray runs the task again
    assert again.attempt == 2
    with core.db.read() as s:
        run = s.get(RunRow, run_id)
        assert run.status == "failed" and "lost its Ray worker" in run.error
        assert s.get(JobRow, job.id).run_id is None
    begin_attempt(core, job.id, token)
    assert begin_attempt(core, job.id, token) is None  # past max_attempts (3): give up
    row = _row(core, job.id)
    assert row.status == "failed" and "giving up" in row.error


def test_stale_executions_do_nothing(core):
    import ray  # noqa: F401  (the dev extra installs it)
    job = _claimed(core)
    _dispatch(core, job, f"ray-{job.id}.{job.attempt}")
    assert begin_attempt(core, job.id, f"ray-{job.id}.{job.attempt + 1}") is None  # another dispatch's
    assert not close_if_ours(core, job.id, "ray-other", "cancelled", "x")
    assert _row(core, job.id).status == "running"


def test_close_if_ours_closes_job_and_publishes(core):
    import ray  # noqa: F401  (the dev extra installs it)
    job = _claimed(core)
    token = f"ray-{job.id}.{job.attempt}"
    _dispatch(core, job, token)
    assert close_if_ours(core, job.id, token, "cancelled", "a newer dataset version superseded this job")
    row = _row(core, job.id)
    assert row.status == "cancelled" and row.lease_until is None
    with core.db.read() as s:
        kinds = [e.type for e in s.scalars(select(EventRow).order_by(EventRow.id))]
    assert kinds[-1] == "job.cancelled"


def test_gpu_is_requested_per_project(core):
    import ray  # noqa: F401  (the dev extra installs it)
    job = _claimed(core, "vision")
    assert job_resources(core, job) == {"num_cpus": 1.0, "num_gpus": 0.0}
    core.settings.ray_gpu_projects = "other, vision"
    assert job_resources(core, job)["num_gpus"] == 1.0
    core.settings.ray_gpu_projects = "*"
    assert job_resources(core, job)["num_gpus"] == 1.0


def test_unreachable_cluster_leaves_jobs_queued_without_blocking(core):
    import ray  # noqa: F401  (the dev extra installs it)
    import time

    core.settings.ray_address = "127.0.0.1:9"  # nothing listens there
    executor = RayExecutor(core.settings)
    t0 = time.monotonic()
    assert executor.has_capacity() is False and executor.has_capacity() is False
    assert time.monotonic() - t0 < 5
