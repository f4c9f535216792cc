"""Observability: Prometheus metrics and structured (JSON) logs with request and job ids.

Metrics live in one :class:`Metrics` object per :class:`~dyntrain.kernel.core.Core`, each with its
own ``CollectorRegistry`` (tests build many apps in one process; the global registry would
refuse the second one). Hooks elsewhere are one call on ``core.metrics``. The queue depth is
read from the jobs table when scraped, so every API process reports the same, true figure.

Logs: :func:`configure_logging` installs one stderr handler whose records carry the
``request_id`` of the HTTP request and the ``job_id`` / ``project`` of the training job being
run (context variables, set by the request middleware and by :func:`job_context`).

>>> m = Metrics()
>>> m.prediction("shop", 3)
>>> b"dyntrain_predictions_total" in m.render()[0]
True
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

__all__ = ["Metrics", "configure_logging", "JsonFormatter", "TextFormatter", "ContextFilter", "job_context",
           "add_log_context", "request_id_var", "QUEUE_STATUSES"]

# The job states that make up the queue (finished jobs are history, not depth).
QUEUE_STATUSES = ("delayed", "queued", "running")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("dyntrain_request_id", default=None)
_job_var: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("dyntrain_job", default=None)


class _QueueDepth:
    """Custom collector: jobs per queue state, counted in the database at scrape time."""

    def __init__(self, db):
        self.db = db

    def describe(self):  # no query at registration time
        return [GaugeMetricFamily("dyntrain_queue_depth", "Training jobs per state (delayed, queued, running).",
                                  labels=["status"])]

    def collect(self):
        from sqlalchemy import func, select

        from ..storage.rows import JobRow

        family = GaugeMetricFamily("dyntrain_queue_depth", "Training jobs per state (delayed, queued, running).",
                                   labels=["status"])
        try:
            with self.db.read() as s:
                counts = dict(s.execute(select(JobRow.status, func.count()).where(JobRow.status.in_(QUEUE_STATUSES))
                                        .group_by(JobRow.status)).all())
        except Exception:  # a scrape must not fail because the database blinked: report nothing
            logging.getLogger(__name__).warning("queue depth: the database did not answer", exc_info=True)
            return
        for status in QUEUE_STATUSES:
            family.add_metric([status], counts.get(status, 0))
        yield family


class Metrics:
    """The platform's Prometheus metrics, in a registry of their own.

    ``db`` (a :class:`~dyntrain.storage.Database`) enables ``dyntrain_queue_depth``.
    """

    def __init__(self, db=None):
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "dyntrain_http_request_duration_seconds", "HTTP request latency by method, route template and status.",
            ["method", "route", "status"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter(
            "dyntrain_predictions", "Items predicted, by project and model version.", ["project", "model_version"],
            registry=self.registry)
        self.training_stage_seconds = Histogram(
            "dyntrain_training_stage_seconds", "Duration of each stage of a training run (and its total).",
            ["stage"], buckets=_STAGE_BUCKETS, registry=self.registry)
        self.swaps = Counter(
            "dyntrain_model_swaps", "Served model rebinds (first load and every hot swap) in this process.",
            ["project"], registry=self.registry)
        if db is not None:
            self.registry.register(_QueueDepth(db))

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.request_seconds.labels(method, route, str(status)).observe(seconds)

    def prediction(self, project: str, model_version: int, count: int = 1) -> None:
        if count > 0:
            self.predictions.labels(project, str(model_version)).inc(count)

    def training(self, timings: Mapping[str, float]) -> None:
        """Observe a run's stage durations (``result["timings"]`` of a training run)."""
        for stage, seconds in timings.items():
            self.training_stage_seconds.labels(stage).observe(float(seconds))

    def swap(self, project: str) -> None:
        self.swaps.labels(project).inc()

    def render(self, projects: frozenset[str] = frozenset()) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type.

        ``projects`` (a caller limited to some projects) keeps only the series of those projects
        and the series that name none (latency per route, queue depth, stage durations).
        """
        registry = _ProjectScoped(self.registry, projects) if projects else self.registry
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _ProjectScoped:
    """A registry view without the series labelled with a project outside ``projects``."""

    def __init__(self, registry: CollectorRegistry, projects: frozenset[str]):
        self.registry, self.projects = registry, projects

    def collect(self):
        for family in self.registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples
                            if "project" not in s.labels or s.labels["project"] in self.projects]
            yield kept


# --------------------------------------------------------------------------------------------- logs

@contextlib.contextmanager
def job_context(**fields: Any) -> Iterator[None]:
    """Tag every log record emitted inside (this thread/task) with these fields, e.g. job_id, project."""
    token = _job_var.set({**(_job_var.get() or {}), **fields})
    try:
        yield
    finally:
        _job_var.reset(token)


def add_log_context(**fields: Any) -> None:
    """Add fields to the enclosing :func:`job_context` (e.g. the project's name once it is known)."""
    current = _job_var.get()
    if current is not None:
        current.update(fields)


class ContextFilter(logging.Filter):
    """Copies the current request id and job fields onto each record (``record.request_id`` …)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        for key, value in (_job_var.get() or {}).items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


# Attributes every LogRecord has; anything else on a record was passed with ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName",
                                                                            "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request/job ids and ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For a human at a terminal: the usual line, with the ids in brackets when there are any."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{k}={getattr(record, k)}" for k in ("request_id", "job_id", "project")
               if getattr(record, k, None) is not None]
        return f"{line} [{' '.join(ids)}]" if ids else line


def configure_logging(fmt: str = "auto", level: str | int = "INFO", stream=None) -> str:
    """Send every log record (ours, uvicorn's) to stderr as JSON lines or as text.

    ``auto`` = text on a terminal, JSON otherwise (a service manager, a container, a file).
    Replaces the handlers of the root logger; returns the format chosen (json or text).
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    if fmt not in ("json", "text"):
        raise ValueError(f"log format must be json, text or auto, not {fmt!r}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # let uvicorn's records reach our handler
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return fmt
