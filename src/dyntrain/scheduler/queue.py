"""The job table's rules: debounce with a cap, one pending job per project, leases, retries.

Queue semantics live in our own table: no queue library offers
"debounce with a cap" plus "a newer version supersedes what is pending".

States: delayed → queued → running → succeeded | failed | cancelled. ``delayed`` and
``queued`` are *pending*; a partial unique index allows one pending job per project.
"""

from __future__ import annotations

import socket
import os
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import tasks
from ..kernel.core import Core
from ..datasets.versions import subscribe
from ..kernel.entities import Job
from ..kernel.errors import Invalid, NotFound
from ..kernel.events import publish
from ..kernel.project_settings import ProjectSettings
from ..kernel.projects import project_row
from ..storage.rows import PENDING_JOB_STATES, DatasetVersionRow, JobRow, ProjectRow, RunRow, utcnow

__all__ = [
    "on_data_changed", "request_training", "claim_next", "renew_lease", "finish_job",
    "recover_expired", "get_job", "list_jobs", "cancel_job", "WORKER_ID", "check_trainable",
]

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
_CAP_SLACK = timedelta(milliseconds=1)


def _pending(s: Session, project_id: int) -> JobRow | None:
    return s.scalars(select(JobRow).where(JobRow.project_id == project_id, JobRow.status.in_(PENDING_JOB_STATES))
                     .with_for_update()).first()


def _job_event(s: Session, job: JobRow, type_: str, **extra) -> None:
    publish(s, job.project_id, type_, {"job_id": job.id, "dataset_version": job.dataset_version,
                                        "trigger": job.trigger, "attempt": job.attempt, **extra})


def on_data_changed(s: Session, project: ProjectRow, version: int, now: datetime | None = None) -> None:
    """Called in the transaction that created ``version``: (re)schedule the project's training.

    Each change pushes the pending job back by ``train_delay_s``, but never past
    ``train_max_delay_s`` after the first pending change (the cap). A running automatic job
    on an older version is asked to stop, as the job queued here supersedes it — unless the
    cap started it, so busy projects still train. A "train now" run is never cancelled by a
    change: the job queued here runs after it. With ``auto_train`` off nothing is cancelled
    (nothing would train the newer data instead).
    """
    settings = ProjectSettings(**(project.settings or {}))
    now = now or utcnow()
    if not settings.auto_train:
        return
    for running in s.scalars(select(JobRow).where(JobRow.project_id == project.id, JobRow.status == "running")):
        if running.trigger == "auto" and (running.dataset_version or 0) < version and not running.cancel_requested:
            running.cancel_requested = True
    counts = s.scalars(select(DatasetVersionRow.counts).where(DatasetVersionRow.project_id == project.id,
                                                              DatasetVersionRow.number == version)).one()
    try:
        check_trainable(counts, project.task)
    except Invalid:
        # Nothing a model could learn yet (e.g. one class): wait for more data instead of failing a run.
        pending = _pending(s, project.id)
        if pending is not None and pending.trigger != "manual":
            pending.status, pending.finished_at, pending.error = "cancelled", now, "the data is not trainable yet"
            _job_event(s, pending, "job.cancelled", reason=pending.error)
        return
    job = _pending(s, project.id)
    if job is None:
        job = JobRow(project_id=project.id, status="delayed", trigger="auto", first_change_at=now)
        s.add(job)
    job.dataset_version = version
    if job.trigger == "manual":  # "train now" is already due; it simply trains the newer data
        s.flush()
        return
    cap = (job.first_change_at or now) + timedelta(seconds=settings.train_max_delay_s)
    job.run_at = min(now + timedelta(seconds=settings.train_delay_s), cap)
    job.trigger = "cap" if job.run_at >= cap - _CAP_SLACK else "auto"
    s.flush()
    _job_event(s, job, "job.delayed", until=job.run_at.isoformat())


def check_trainable(counts: dict[str, int], task: str) -> None:
    """Refuse data no model can learn from, with what to do about it (the task's target decides).

    ``counts``: the dataset version's counts (examples per class, or rows per target range)."""
    tasks.get(task).target.check_trainable(counts)


def request_training(core: Core, project: str) -> Job:
    """"Train now": the pending job (or a new one) becomes due immediately on the newest data."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        if not row.head_version:
            raise Invalid(f"project {project!r} has no data yet: add labelled examples first")
        version = s.scalars(select(DatasetVersionRow).where(DatasetVersionRow.project_id == row.id,
                                                            DatasetVersionRow.number == row.head_version)).one()
        check_trainable(version.counts, row.task)
        job = _pending(s, row.id)
        if job is None:
            job = JobRow(project_id=row.id, status="queued")
            s.add(job)
        job.status, job.trigger, job.run_at = "queued", "manual", utcnow()
        job.dataset_version = row.head_version
        s.flush()
        _job_event(s, job, "job.queued")
        return job.to_entity()


def claim_next(core: Core, worker: str = WORKER_ID, lease_s: float | None = None) -> Job | None:
    """Take the most overdue pending job of a project that has nothing running."""
    lease = timedelta(seconds=lease_s or core.settings.job_lease_s)
    with core.db.write() as s:
        now = utcnow()
        busy = select(JobRow.project_id).where(JobRow.status == "running")
        query = (select(JobRow).where(JobRow.status.in_(PENDING_JOB_STATES), JobRow.run_at <= now,
                                      JobRow.project_id.not_in(busy)).order_by(JobRow.run_at).limit(1))
        if not core.db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        job = s.scalars(query).first()
        if job is None:
            return None
        job.status, job.worker, job.started_at = "running", worker, now
        job.attempt += 1
        job.lease_until = now + lease
        job.max_attempts = core.settings.max_attempts
        s.flush()
        _job_event(s, job, "job.started")
        return job.to_entity()


def renew_lease(core: Core, job_id: int, progress: dict | None = None, lease_s: float | None = None) -> bool:
    """Heartbeat: extend the lease, store progress; returns True when cancellation was requested."""
    lease = timedelta(seconds=lease_s or core.settings.job_lease_s)
    with core.db.write() as s:
        job = s.get(JobRow, job_id)
        if job is None or job.status != "running":
            return True
        job.lease_until = utcnow() + lease
        if progress is not None:
            job.progress = progress
            _job_event(s, job, "job.progress", **progress)
        return bool(job.cancel_requested)


def finish_job(core: Core, job_id: int, status: str, *, error: str | None = None, run_id: int | None = None,
               event_data: dict | None = None) -> None:
    with core.db.write() as s:
        job = s.get(JobRow, job_id)
        if job is None or job.status != "running":
            return
        job.status, job.error, job.finished_at, job.lease_until = status, error, utcnow(), None
        if run_id is not None:
            job.run_id = run_id
        kind = {"succeeded": "job.finished", "failed": "job.failed", "cancelled": "job.cancelled"}[status]
        _job_event(s, job, kind, run_id=job.run_id, **({"reason": error} if error else {}), **(event_data or {}))


def recover_expired(core: Core) -> list[int]:
    """Jobs whose worker stopped renewing the lease (the process died): retry or give up."""
    changed = []
    with core.db.write() as s:
        now = utcnow()
        for job in s.scalars(select(JobRow).where(JobRow.status == "running", JobRow.lease_until < now)).all():
            changed.append(job.id)
            job.lease_until = None
            # The dead worker's run record would otherwise say "running" for ever.
            for run in s.scalars(select(RunRow).where(RunRow.job_id == job.id, RunRow.status == "running")):
                run.status, run.finished_at = "failed", now
                run.error = f"the worker died during attempt {job.attempt} (its lease expired)"
            if job.attempt >= job.max_attempts:
                job.status, job.finished_at = "failed", now
                job.error = f"the worker died {job.attempt} time(s) while training; giving up after max_attempts"
                _job_event(s, job, "job.failed", reason=job.error)
            elif _pending(s, job.project_id) is not None:
                job.status, job.finished_at = "cancelled", now
                job.error = "the worker died; a newer pending job trains the newest data instead"
                _job_event(s, job, "job.cancelled", reason=job.error)
            else:
                job.status, job.run_at = "queued", now
                job.error = f"attempt {job.attempt} lost its worker; retrying"
                _job_event(s, job, "job.queued", reason=job.error)
            s.flush()
    return changed


def get_job(core: Core, project: str, job_id: int) -> Job:
    with core.db.read() as s:
        row = project_row(s, project)
        job = s.get(JobRow, job_id)
        if job is None or job.project_id != row.id:
            raise NotFound(f"job {job_id} does not exist in project {project!r}")
        return job.to_entity()


def list_jobs(core: Core, project: str, limit: int = 50) -> list[Job]:
    with core.db.read() as s:
        row = project_row(s, project)
        return [j.to_entity() for j in s.scalars(select(JobRow).where(JobRow.project_id == row.id)
                                                 .order_by(JobRow.id.desc()).limit(limit))]


def cancel_job(core: Core, project: str, job_id: int) -> Job:
    """Cancel a pending job at once, or ask a running one to stop at its next step."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        job = s.get(JobRow, job_id)
        if job is None or job.project_id != row.id:
            raise NotFound(f"job {job_id} does not exist in project {project!r}")
        if job.status in PENDING_JOB_STATES:
            job.status, job.finished_at, job.error = "cancelled", utcnow(), "cancelled by request"
            _job_event(s, job, "job.cancelled", reason=job.error)
        elif job.status == "running":
            job.cancel_requested = True
        s.flush()
        return job.to_entity()


# Every new dataset version may retrain (datasets/versions.py tells its subscribers).
subscribe(on_data_changed)
