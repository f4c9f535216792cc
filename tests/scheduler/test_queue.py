"""Job-table rules on SQLite and PostgreSQL: debounce, cap, coalescing, cancellation, leases."""

from __future__ import annotations

import time

import pytest

from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.kernel.errors import Invalid
from dyntrain.kernel.projects import create_project
from dyntrain.scheduler import queue
from tests.conftest import png_bytes


def _add(core, project, seed, label="a"):
    return add_samples(core, project, [Upload(f"{seed}.png", png_bytes(seed))], [label])[1]


def _seed(core, project, base=100):
    """Trainable data in one change (two classes, two examples each): version 1."""
    return add_samples(core, project, [Upload(f"{base + i}.png", png_bytes(base + i)) for i in range(4)],
                       ["a", "a", "b", "b"])[1]


def _jobs(core, project):
    return sorted(queue.list_jobs(core, project), key=lambda j: j.id)


def test_five_rapid_changes_make_one_job_for_the_last_version(core):
    create_project(core, "p", settings={"train_delay_s": 0.6, "train_max_delay_s": 30})
    _seed(core, "p")
    for i in range(5):
        _add(core, "p", i, "a" if i % 2 else "b")
    jobs = _jobs(core, "p")
    assert len(jobs) == 1 and jobs[0].status == "delayed" and jobs[0].dataset_version == 6
    assert queue.claim_next(core) is None  # still inside the sliding delay
    time.sleep(0.7)
    job = queue.claim_next(core)
    assert job is not None and job.dataset_version == 6 and job.trigger == "auto" and job.attempt == 1
    assert queue.claim_next(core) is None
    events = [e for e in _events(core, "p") if e["type"].startswith("job.")]
    assert [e["type"] for e in events] == ["job.delayed"] * 6 + ["job.started"]


def test_steady_stream_hits_the_cap_and_trains(core):
    create_project(core, "p", settings={"train_delay_s": 0.5, "train_max_delay_s": 1.2})
    started = None
    t0 = time.monotonic()
    _seed(core, "p")
    i = 0
    while time.monotonic() - t0 < 3.0 and started is None:
        _add(core, "p", i, "ab"[i % 2])  # a change every 0.2 s: the sliding delay alone would never end
        i += 1
        time.sleep(0.2)
        started = queue.claim_next(core)
    assert started is not None, "the cap never let the job start"
    assert started.trigger == "cap"
    # Due exactly train_max_delay_s after the first pending change, however long the stream went on.
    assert (started.run_at - started.first_change_at).total_seconds() == pytest.approx(1.2, abs=0.01)


def test_newer_version_cancels_running_uncapped_job_but_not_a_capped_one(core):
    create_project(core, "p", settings={"train_delay_s": 0, "train_max_delay_s": 30})
    _seed(core, "p")
    running = queue.claim_next(core)
    assert running.trigger == "auto"
    _add(core, "p", 2, "b")  # version 2 supersedes the running job on version 1
    assert queue.renew_lease(core, running.id) is True
    assert queue.get_job(core, "p", running.id).cancel_requested
    pending = [j for j in _jobs(core, "p") if j.status in ("delayed", "queued")]
    assert len(pending) == 1 and pending[0].dataset_version == 2
    # the pending one waits: one running job per project
    assert queue.claim_next(core) is None
    queue.finish_job(core, running.id, "cancelled", error="superseded")
    capped = queue.claim_next(core)
    assert capped is not None and capped.dataset_version == 2

    create_project(core, "q", settings={"train_delay_s": 10, "train_max_delay_s": 0})
    _seed(core, "q", base=200)  # max delay 0: the cap starts it at once
    capped = queue.claim_next(core)
    assert capped.trigger == "cap"
    _add(core, "q", 4, "b")
    assert queue.renew_lease(core, capped.id) is False  # a job started by the cap finishes


def test_expired_lease_is_retried_then_failed_after_max_attempts(core):
    core.settings.max_attempts = 2
    create_project(core, "p", settings={"train_delay_s": 0})
    _seed(core, "p")
    job = queue.claim_next(core, lease_s=0.2)
    time.sleep(0.3)  # the worker "died": no heartbeat
    assert queue.recover_expired(core) == [job.id]
    again = queue.claim_next(core, lease_s=0.2)
    assert again.id == job.id and again.attempt == 2
    time.sleep(0.3)
    queue.recover_expired(core)
    final = queue.get_job(core, "p", job.id)
    assert final.status == "failed" and "max_attempts" in final.error


def test_live_lease_is_not_recovered(core):
    create_project(core, "p", settings={"train_delay_s": 0})
    _seed(core, "p")
    job = queue.claim_next(core, lease_s=30)
    assert queue.recover_expired(core) == []
    assert queue.get_job(core, "p", job.id).status == "running"


def test_train_now_refuses_untrainable_data_and_coalesces(core):
    create_project(core, "p", settings={"auto_train": False})
    with pytest.raises(Invalid, match="no data"):
        queue.request_training(core, "p")
    _add(core, "p", 1)
    with pytest.raises(Invalid, match="at least 2 classes"):
        queue.request_training(core, "p")
    _add(core, "p", 2, "b")
    with pytest.raises(Invalid, match="at least 2 examples"):
        queue.request_training(core, "p")
    _add(core, "p", 3)
    _add(core, "p", 4, "b")
    assert _jobs(core, "p") == []  # auto_train off: changes schedule nothing
    first = queue.request_training(core, "p")
    second = queue.request_training(core, "p")
    assert first.id == second.id and second.status == "queued" and second.trigger == "manual"


def test_cancel_pending_job(core):
    create_project(core, "p", settings={"train_delay_s": 60})
    _seed(core, "p")
    job = _jobs(core, "p")[0]
    assert queue.cancel_job(core, "p", job.id).status == "cancelled"
    assert queue.claim_next(core) is None


def test_untrainable_data_schedules_nothing(core):
    create_project(core, "p", settings={"train_delay_s": 0})
    _add(core, "p", 1)  # one class: nothing to learn yet
    _add(core, "p", 2, "b")  # two classes, one example each: still not
    assert _jobs(core, "p") == []
    _seed(core, "p")
    assert [j.dataset_version for j in _jobs(core, "p")] == [3]
    # deleting back to one class cancels the pending job instead of failing a run later
    from dyntrain.datasets.changes import delete_class

    delete_class(core, "p", "b")
    assert [j.status for j in _jobs(core, "p")] == ["cancelled"]


def _events(core, project):
    from dyntrain.kernel.events import events_after
    from dyntrain.kernel.projects import project_row

    with core.db.read() as s:
        return [{"type": e.type, **e.data} for e in events_after(s, project_row(s, project).id, 0, 1000)]
