"""Domain entities: frozen dataclasses that know nothing of the database or HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Project",
    "ClassInfo",
    "Sample",
    "DatasetVersion",
    "VersionItem",
    "Job",
    "Run",
    "ModelVersion",
    "Prediction",
    "Event",
]


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    task: str
    description: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ClassInfo:
    label: str
    description: str
    count: int = 0


@dataclass(frozen=True)
class Sample:
    id: int
    project_id: int
    kind: str  # its task modality's kind: "image", "text", "row", … (dyntrain.tasks)
    content_hash: str  # sha256 of the content blob (image bytes, UTF-8 text, canonical JSON row)
    label: str  # the key: a class, a number's canonical text (what the data view groups by)
    source: str
    meta: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    annotation: Any = None  # the whole label where the key does not say everything (boxes, a mask)


@dataclass(frozen=True)
class VersionItem:
    sample_id: int
    content_hash: str
    label: str
    annotation: Any = None


@dataclass(frozen=True)
class DatasetVersion:
    project_id: int
    number: int
    parent: int | None
    hash: str  # sha256 over the sorted (content_hash, label[, annotation]) items (versions.version_hash)
    counts: dict[str, int]
    size: int
    message: str
    created_at: datetime
    purged: int = 0  # items removed since by a privacy purge (datasets/purge.py); hash and counts unchanged


@dataclass(frozen=True)
class Job:
    id: int
    project_id: int
    status: str  # delayed | queued | running | succeeded | failed | cancelled
    trigger: str  # manual | auto | cap
    dataset_version: int | None
    run_at: datetime
    first_change_at: datetime | None
    attempt: int
    max_attempts: int
    lease_until: datetime | None
    cancel_requested: bool
    progress: dict[str, Any]
    run_id: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Run:
    id: int
    project_id: int
    job_id: int | None
    dataset_version: int
    status: str  # running | succeeded | failed | cancelled
    spec: dict[str, Any]
    result: dict[str, Any]
    model_version: int | None
    error: str | None
    log: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class ModelVersion:
    project_id: int
    version: int
    run_id: int | None
    source: str  # trained | external
    path: str
    sha256: str
    card: dict[str, Any]
    created_at: datetime
    aliases: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Prediction:
    id: int
    project_id: int
    model_version: int
    label: str | None  # the answer's class, where the target has one (what the list filters on)
    confidence: float
    output: dict[str, Any]  # the whole decoded answer, as the API gave it (scores, a value, boxes …)
    input_hash: str | None
    input_stored: bool
    latency_ms: float
    client: str
    feedback_label: str | None  # the correction's key (a class, a number's text)
    created_at: datetime
    feedback: Any = None  # the correction's annotation where the key does not say everything

    @property
    def scores(self) -> dict[str, float]:
        return self.output.get("scores") or {}

    @property
    def value(self) -> float | None:
        return self.output.get("value")


@dataclass(frozen=True)
class Event:
    id: int
    project_id: int
    type: str
    data: dict[str, Any]
    created_at: datetime
