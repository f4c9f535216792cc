"""Executors run claimed jobs. The local one trains in this process on a worker thread.

``ray_executor.RayExecutor`` implements the same three methods on a Ray cluster.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from ..kernel.core import Core
from ..kernel.entities import Job

__all__ = ["Executor", "LocalExecutor"]

log = logging.getLogger(__name__)


class Executor(Protocol):
    def has_capacity(self) -> bool: ...
    def submit(self, core: Core, job: Job) -> None: ...
    def shutdown(self) -> None: ...


class LocalExecutor:
    """One training at a time by default: two cores cannot train two models well at once,
    and the warm backbone session is shared."""

    def __init__(self, workers: int = 1):
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dyntrain-train")
        self._running: set[Future] = set()
        self._lock = threading.Lock()

    def has_capacity(self) -> bool:
        with self._lock:
            self._running = {f for f in self._running if not f.done()}
            return len(self._running) < self.workers

    def submit(self, core: Core, job: Job) -> None:
        from .jobs import run_job  # imported late: the training stack is heavy

        future = self._pool.submit(run_job, core, job)
        future.add_done_callback(_log_failure)
        with self._lock:
            self._running.add(future)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(future: Future) -> None:
    if future.exception() is not None:
        log.error("training job crashed", exc_info=future.exception())
