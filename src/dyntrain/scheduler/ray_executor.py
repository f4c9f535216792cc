"""Training jobs as Ray tasks: the same ``run_job`` on the cluster's workers.

Who owns what
    The API process claims a job in the job table (``claim_next``) and hands it to a
    *detached, named actor* (one per database, in the ``dyntrain`` namespace). The actor
    submits the Ray task and owns it, so training survives an API restart: the next API
    process (or another leader) re-attaches to the actor by name. Workers reach the same
    database and artifact store; progress, events and the final state flow through the
    job table exactly as with the local executor.

Leases, attempts and Ray retries (see ``queue.py``)
    A dispatch is named by its token ``ray-<job>.<claim attempt>``, kept in ``jobs.worker``.
    While the task is in flight the actor renews the job's lease (besides the worker's own
    heartbeat), so a task that waits for resources or for a Ray retry after a killed worker
    is never recovered and dispatched a second time. Each execution starts by *adopting*
    the job (``begin_attempt``): the first one writes ``<token>@host:pid``; an execution
    that finds that mark is a Ray retry, so it closes the lost attempt's run, counts
    ``attempt += 1`` (the job row shows it) and gives up past ``max_attempts``. An
    execution whose token no longer matches (the job was recovered, cancelled or finished)
    does nothing.

Cancellation
    ``cancel_requested`` (set when a newer dataset version supersedes the job, or by hand)
    is read by the actor each second and mapped to ``ray.cancel``: a pending task never
    starts, a running one gets ``KeyboardInterrupt`` at once; the cooperative check inside
    ``run_job`` stays as the fallback. Not during the final "gate" stage, whose registry
    writes should complete.

Resources
    ``num_cpus=ray_num_cpus``; ``num_gpus=1`` for projects listed in ``ray_gpu_projects`` (or
    whose settings carry ``"gpu": true``). A job whose resources no node of the cluster has
    fails after ``ray_resource_timeout_s`` with the request and what the nodes offer — it
    does not wait forever. (Resources that exist but are busy are simply waited for.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .. import __version__
from ..kernel.config import Settings
from ..kernel.core import Core
from ..kernel.entities import Job
from ..kernel.errors import MissingExtra
from ..kernel.events import publish
from ..serving.live import LiveModels
from ..storage.rows import JobRow, ProjectRow, RunRow, utcnow

__all__ = ["NAMESPACE", "RayExecutor", "connect", "job_resources", "begin_attempt", "train_task", "actor_name"]

log = logging.getLogger(__name__)
NAMESPACE = "dyntrain"
_HOST = socket.gethostname()[:40]


def _ray():
    try:
        import ray
    except ImportError:
        raise MissingExtra("training on Ray", "ray") from None
    return ray


def connect(settings: Settings) -> None:
    """Join the cluster at ``ray_address``, or start one in this process for ``"local"``.

    Never a bare ``ray.init()``: it would join whatever cluster this machine saw last.
    """
    ray = _ray()
    if ray.is_initialized():
        return
    common = {"namespace": NAMESPACE, "log_to_driver": False, "configure_logging": False}
    if settings.ray_address == "local":
        ray.init(address="local", object_store_memory=settings.ray_object_store_mb * 1024 * 1024,
                 include_dashboard=False, **common)
    else:
        _reachable(settings.ray_address)
        ray.init(address=settings.ray_address, **common)


def _reachable(address: str, timeout: float = 3.0) -> None:
    """Fail in seconds when nothing listens at host:port (``ray.init`` would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in host:
        return  # another address form: let Ray interpret it
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
        pass


def actor_name(settings: Settings) -> str:
    """One dispatcher actor per database (and dyntrain version) on a shared cluster."""
    db = hashlib.sha256(settings.database_url.encode()).hexdigest()[:12]
    return f"dyntrain-dispatcher-{db}-{__version__}"


def _settings_data(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(mode="json")


def job_resources(core: Core, job: Job) -> dict[str, float]:
    """What the job asks of Ray: CPUs always, one GPU when its project asks for one."""
    s = core.settings
    with core.db.read() as session:
        project = session.get(ProjectRow, job.project_id)
    names = {n.strip() for n in s.ray_gpu_projects.split(",") if n.strip()}
    gpu = bool((project.settings or {}).get("gpu")) or "*" in names or project.name in names
    return {"num_cpus": float(s.ray_num_cpus), "num_gpus": 1.0 if gpu else 0.0}


# --- the job-table side of a Ray execution -------------------------------------------------------

def _ours(row: JobRow | None, token: str) -> bool:
    return (row is not None and row.status == "running" and row.worker is not None
            and (row.worker == token or row.worker.startswith(token + "@")))


def _event(s, row: JobRow, type_: str, **extra) -> None:
    publish(s, row.project_id, type_, {"job_id": row.id, "dataset_version": row.dataset_version,
                                        "trigger": row.trigger, "attempt": row.attempt, **extra})


def _close_run(s, run_id: int | None, status: str, error: str) -> None:
    run = s.get(RunRow, run_id) if run_id else None
    if run is not None and run.status == "running":
        run.status, run.error, run.finished_at = status, error, utcnow()


def begin_attempt(core: Core, job_id: int, token: str) -> Job | None:
    """Adopt the job for this execution (see the module docstring); None = nothing to do."""
    with core.db.write() as s:
        row = s.get(JobRow, job_id, with_for_update=True)
        if not _ours(row, token):
            return None
        now = utcnow()
        if row.worker != token:  # an earlier execution of this dispatch started: Ray retried us
            lost = f"attempt {row.attempt} lost its Ray worker ({row.worker.split('@', 1)[1]})"
            _close_run(s, row.run_id, "failed", lost + "; retried")
            if row.attempt >= row.max_attempts:
                row.status, row.finished_at, row.lease_until = "failed", now, None
                row.error = f"the worker died {row.attempt} time(s) while training; giving up after max_attempts"
                _event(s, row, "job.failed", reason=row.error)
                return None
            row.attempt += 1
            row.error = lost + "; retrying"
        row.worker = f"{token}@{_HOST}:{os.getpid()}"
        row.started_at, row.lease_until = now, now + timedelta(seconds=core.settings.job_lease_s)
        row.run_id, row.progress = None, {}
        s.flush()
        _event(s, row, "job.started", worker=row.worker)
        return row.to_entity()


def close_if_ours(core: Core, job_id: int, token: str, status: str, reason: str) -> bool:
    """Close a job this dispatch still holds (and its run), e.g. after ``ray.cancel``."""
    with core.db.write() as s:
        row = s.get(JobRow, job_id, with_for_update=True)
        if not _ours(row, token):
            return False
        row.status, row.error, row.finished_at, row.lease_until = status, reason, utcnow(), None
        _close_run(s, row.run_id, status, reason)
        kind = {"failed": "job.failed", "cancelled": "job.cancelled"}[status]
        _event(s, row, kind, run_id=row.run_id, reason=reason)
        return True


class _WorkerModels(LiveModels):
    """Workers train and register; the API and inference processes serve (so nothing here ever
    swaps). A run still opens the version in service on demand, from the shared artifact store:
    the gate scores the model actually served, and some targets start from its outputs."""

    def refresh(self, project_id: int) -> None:
        return None


_worker_cores: dict[str, Core] = {}


def _worker_core(settings_data: dict[str, Any]) -> Core:
    """One Core per settings and worker process (Ray reuses workers: the backbone stays warm)."""
    key = json.dumps(settings_data, sort_keys=True)
    if key not in _worker_cores:
        data = dict(settings_data)
        # A worker machine may keep its caches elsewhere; blobs and models come from the shared store.
        if os.environ.get("DYNTRAIN_WORKER_DATA_DIR") and data.get("artifacts"):
            data["data_dir"] = os.environ["DYNTRAIN_WORKER_DATA_DIR"]
        core = Core.create(Settings(**data), migrate=False)
        core._live = core.open_models(_WorkerModels)
        _worker_cores[key] = core
    return _worker_cores[key]


def _cancel_reason(core: Core, job_id: int) -> str:
    with core.db.read() as s:
        row = s.get(JobRow, job_id)
    superseded = row is not None and row.trigger != "manual"
    return ("a newer dataset version superseded this job" if superseded else "cancelled") + " (Ray task cancelled)"


def train_task(settings_data: dict[str, Any], job_id: int, token: str) -> str:
    """The Ray task: adopt the job, then the very same ``run_job`` as the local executor."""
    core = _worker_core(settings_data)
    job = begin_attempt(core, job_id, token)
    if job is None:
        return "skipped"
    from .jobs import run_job  # the training stack: only on workers

    try:
        run_job(core, job)
    except KeyboardInterrupt:  # ray.cancel: close the job now rather than at lease expiry
        close_if_ours(core, job_id, token, "cancelled", _cancel_reason(core, job_id))
        raise
    return "done"


# --- the dispatcher actor ------------------------------------------------------------------------

@dataclass
class _InFlight:
    job_id: int
    token: str
    ref: Any
    resources: dict[str, float]
    submitted: float = field(default_factory=time.monotonic)
    cancelled: bool = False


class DispatcherActor:
    """Owns the training tasks (detached: outlives any API process). Threaded actor."""

    def __init__(self, settings_data: dict[str, Any]):
        import ray

        self.settings_data = settings_data
        self.core = Core.create(Settings(**settings_data), migrate=False)
        self.jobs: dict[int, _InFlight] = {}
        self._lock = threading.Lock()
        self._train = ray.remote(train_task)
        self._limit: tuple[float, int] = (0.0, 1)
        threading.Thread(target=self._monitor, daemon=True, name="dyntrain-ray-monitor").start()

    # called by the API process -----------------------------------------------------------------
    def ping(self) -> str:
        return __version__

    def in_flight(self) -> list[int]:
        with self._lock:
            return sorted(self.jobs)

    def limit(self) -> int:
        import ray

        if self.core.settings.ray_max_jobs > 0:
            return self.core.settings.ray_max_jobs
        at, value = self._limit
        if time.monotonic() - at > 10:
            cpus = ray.cluster_resources().get("CPU", 1.0)
            value = max(1, int(cpus // max(self.core.settings.ray_num_cpus, 0.01)))
            self._limit = (time.monotonic(), value)
        return value

    def has_capacity(self) -> bool:
        with self._lock:
            running = len(self.jobs)
        return running < self.limit()

    def submit(self, job_id: int, claim_attempt: int, resources: dict[str, float],
               settings_data: dict[str, Any]) -> bool:
        """Mark the job as this dispatch's, then start its task; False if the claim is stale."""
        token = f"ray-{job_id}.{claim_attempt}"
        with self.core.db.write() as s:
            row = s.get(JobRow, job_id, with_for_update=True)
            if row is None or row.status != "running" or row.attempt != claim_attempt:
                return False
            row.worker = token
            row.lease_until = utcnow() + timedelta(seconds=self.core.settings.job_lease_s)
            retries = max(0, row.max_attempts - row.attempt)
        options = {"num_cpus": resources.get("num_cpus", 1.0), "max_retries": retries, "retry_exceptions": False,
                   "name": f"dyntrain-job-{job_id}"}
        if resources.get("num_gpus"):
            options["num_gpus"] = resources["num_gpus"]
        ref = self._train.options(**options).remote(settings_data, job_id, token)
        with self._lock:
            self.jobs[job_id] = _InFlight(job_id, token, ref, resources)
        log.info("job %s submitted to Ray as %s with %s", job_id, token, resources)
        return True

    # the monitor thread ------------------------------------------------------------------------
    def _monitor(self) -> None:
        interval = min(1.0, self.core.settings.job_lease_s / 4)
        while True:
            time.sleep(interval)
            try:
                self.check()
            except Exception:
                log.exception("Ray dispatcher check failed")

    def check(self) -> None:
        import ray

        with self._lock:
            items = list(self.jobs.values())
        if not items:
            return
        ready, _ = ray.wait([i.ref for i in items], num_returns=len(items), timeout=0)
        done = set(ready)
        for item in items:
            if item.ref in done:
                self._finished(item)
                with self._lock:
                    self.jobs.pop(item.job_id, None)
        running = [i for i in items if i.ref not in done]
        if not running:
            return
        lease = timedelta(seconds=self.core.settings.job_lease_s)
        actions: list[tuple[_InFlight, str]] = []
        with self.core.db.write() as s:
            for item in running:
                row = s.get(JobRow, item.job_id)
                if not _ours(row, item.token):
                    actions.append((item, "gone"))
                    continue
                row.lease_until = utcnow() + lease  # still in Ray's hands: never recovered meanwhile
                if row.cancel_requested and (row.progress or {}).get("stage") != "gate":
                    actions.append((item, "cancel"))
                elif row.worker == item.token and time.monotonic() - item.submitted > \
                        self.core.settings.ray_resource_timeout_s:
                    actions.append((item, "waiting"))
        for item, what in actions:
            if what in ("gone", "cancel") and not item.cancelled:
                item.cancelled = True
                ray.cancel(item.ref)
                log.info("job %s: Ray task cancelled (%s)", item.job_id, what)
            elif what == "waiting":
                reason = self._infeasible(item.resources)
                if reason and close_if_ours(self.core, item.job_id, item.token, "failed", reason):
                    item.cancelled = True
                    ray.cancel(item.ref)

    def _infeasible(self, resources: dict[str, float]) -> str | None:
        """Why no node can ever run this task, or None when one could (it is just busy)."""
        import ray

        want = {"CPU": resources.get("num_cpus", 0.0), "GPU": resources.get("num_gpus", 0.0)}
        want = {k: v for k, v in want.items() if v > 0}
        offers = []
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            have = node.get("Resources", {})
            if all(have.get(k, 0.0) >= v for k, v in want.items()):
                return None
            offers.append({k: have.get(k, 0.0) for k in ("CPU", "GPU")})
        waited = self.core.settings.ray_resource_timeout_s
        return (f"no node of the Ray cluster offers {want} (nodes offer {offers or 'nothing'}); gave up after "
                f"waiting {waited:.0f} s — add a node with these resources or change the project's request")

    def _finished(self, item: _InFlight) -> None:
        import ray
        from ray.exceptions import TaskCancelledError

        try:
            ray.get(item.ref, timeout=0)
            return  # run_job closed the job itself (or the execution was stale)
        except TaskCancelledError:
            status, reason = "cancelled", _cancel_reason(self.core, item.job_id)
        except Exception as exc:  # retries exhausted (WorkerCrashedError, node lost) or a crash outside run_job
            if isinstance(getattr(exc, "cause", None), KeyboardInterrupt) or "TaskCancelledError" in type(exc).__name__:
                status, reason = "cancelled", _cancel_reason(self.core, item.job_id)
            else:
                status, reason = "failed", f"the Ray task failed: {type(exc).__name__}: {str(exc)[:500]}"
        if close_if_ours(self.core, item.job_id, item.token, status, reason):
            log.info("job %s closed by the Ray dispatcher: %s", item.job_id, reason)


# --- the executor the API process uses ----------------------------------------------------------

class RayExecutor:
    """Implements the ``Executor`` protocol by talking to the dispatcher actor.

    Connecting is deferred to the first call (the scheduler thread), so an unreachable
    cluster never delays the API's start; until it answers, jobs simply stay queued.
    """

    def __init__(self, settings: Settings, call_timeout_s: float = 30.0, retry_s: float = 10.0):
        _ray()  # a missing extra fails at start, with the pip hint, not on every tick
        self.settings = settings
        self.call_timeout_s, self.retry_s = call_timeout_s, retry_s
        self._actor = None
        self._retry_at = 0.0

    def actor(self):
        if self._actor is None:
            ray = _ray()
            connect(self.settings)
            cls = ray.remote(DispatcherActor)
            self._actor = cls.options(
                name=actor_name(self.settings), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                num_cpus=0, max_concurrency=16, max_restarts=-1,
            ).remote(_settings_data(self.settings))
            ray.get(self._actor.ping.remote(), timeout=120)
        return self._actor

    def _call(self, method: str, *args):
        ray = _ray()
        try:
            return ray.get(getattr(self.actor(), method).remote(*args), timeout=self.call_timeout_s)
        except Exception:
            self._actor = None  # look it up again next time (it may have been restarted)
            raise

    def has_capacity(self) -> bool:
        """False while the cluster is unreachable: jobs stay queued, one warning per retry period."""
        if time.monotonic() < self._retry_at:
            return False
        try:
            return bool(self._call("has_capacity"))
        except Exception as exc:
            self._retry_at = time.monotonic() + self.retry_s
            log.warning("Ray at %s is unreachable (%s: %s); jobs wait; retrying in %.0f s",
                        self.settings.ray_address, type(exc).__name__, exc, self.retry_s)
            return False

    def submit(self, core: Core, job: Job) -> None:
        resources = job_resources(core, job)
        if not self._call("submit", job.id, job.attempt, resources, _settings_data(core.settings)):
            log.warning("job %s changed before it reached Ray; not submitted", job.id)

    def in_flight(self) -> list[int]:
        return list(self._call("in_flight"))

    def shutdown(self) -> None:
        """Leaves the actor and its tasks running: they belong to the cluster, not to this process."""
        self._actor = None
