"""Routes: train now, jobs, runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from ..kernel.core import Core
from ..kernel.errors import NotFound
from ..scheduler import queue
from ..training import records
from .deps import API_PREFIX, authorize, get_core
from .schemas import JobPublic, TrainAccepted, public

router = APIRouter(prefix=API_PREFIX, tags=["training"])


@router.post("/projects/{name}/train", status_code=202, response_model=TrainAccepted)
def train_now(name: str, core: Core = Depends(get_core)):
    """Train on the newest data now (skipping the sliding delay). Follow it via jobs or events."""
    job = queue.request_training(core, name)
    return TrainAccepted(job_id=job.id, status=job.status, run_id=job.run_id)


@router.get("/projects/{name}/jobs", response_model=list[JobPublic])
def list_jobs(name: str, limit: int = Query(50, ge=1, le=500), core: Core = Depends(get_core)):
    return [public(JobPublic, j) for j in queue.list_jobs(core, name, limit)]


@router.get("/projects/{name}/jobs/{job_id}", response_model=JobPublic)
def get_job(name: str, job_id: int, core: Core = Depends(get_core)):
    return public(JobPublic, queue.get_job(core, name, job_id))


@router.post("/projects/{name}/jobs/{job_id}/cancel", response_model=JobPublic)
def cancel_job(name: str, job_id: int, core: Core = Depends(get_core)):
    """Cancel a waiting job, or ask a running one to stop at its next step."""
    return public(JobPublic, queue.cancel_job(core, name, job_id))


@router.get("/projects/{name}/runs")
def list_runs(name: str, limit: int = Query(50, ge=1, le=500), core: Core = Depends(get_core)):
    """Training history, newest first (summary: learner, KPIs, timings)."""
    return records.list_runs(core, name, limit)


@router.get("/runs/{run_id}")
def get_run(run_id: int, request: Request, core: Core = Depends(get_core)):
    """Everything a run recorded: spec, candidates, metrics, per-sample predictions, log."""
    run = records.run_detail(core, run_id)
    if not request.state.caller.sees(run["project"]):  # as if absent: a scoped token learns no other ids
        raise NotFound(f"run {run_id} does not exist")
    authorize(request, "read", run["project"])  # the path names no project: check the run's own
    return run
