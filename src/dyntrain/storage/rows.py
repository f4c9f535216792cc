"""Database rows (SQLAlchemy 2). Each ``*Row`` turns itself into an entity with ``to_entity()``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..kernel import entities as e

__all__ = [
    "Base",
    "utcnow",
    "ProjectRow",
    "ClassRow",
    "SampleRow",
    "BatchRow",
    "DatasetVersionRow",
    "VersionItemRow",
    "JobRow",
    "RunRow",
    "ModelVersionRow",
    "AliasRow",
    "AliasHistoryRow",
    "PredictionRow",
    "EventRow",
    "EventCursorRow",
    "IngestedMessageRow",
    "InteractionRow",
    "PENDING_JOB_STATES",
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware on both backends (SQLite stores naive values; we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}


PENDING_JOB_STATES = ("delayed", "queued")

# SQLite hands a deleted row's id to the next row unless the table is AUTOINCREMENT: a worker
# still training for a deleted project (job, run) must never reach the new owner of its ids.
# PostgreSQL sequences never reuse ids. (Migration 0003 rebuilds the SQLite tables.)
_NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class ProjectRow(Base):
    __tablename__ = "projects"
    __table_args__ = (_NEVER_REUSE_IDS,)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    task: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    head_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def to_entity(self) -> e.Project:
        return e.Project(self.id, self.name, self.task, self.description, dict(self.settings or {}),
                         self.created_at, self.updated_at)


class ClassRow(Base):
    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("project_id", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchRow(Base):
    """An upload batch: its staged samples become ONE dataset version when committed."""

    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | committed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SampleRow(Base):
    __tablename__ = "samples"
    __table_args__ = (Index("ix_samples_project_status_label", "project_id", "status", "label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # image | text | row
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(200))  # the key: a class, a number's text (see the target)
    # The whole label where the key does not say everything (boxes, a mask), as the target validated it.
    annotation: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    source: Mapped[str] = mapped_column(String(200), default="upload")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # staged: uploaded inside a batch not yet committed; active: part of the project's data.
    status: Mapped[str] = mapped_column(String(10), default="active")
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def to_entity(self) -> e.Sample:
        return e.Sample(self.id, self.project_id, self.kind, self.content_hash, self.label, self.source,
                        dict(self.meta or {}), self.created_at, self.updated_at, self.annotation)


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("project_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    parent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hash: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    size: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    # Items whose content was purged for privacy after the version was made (see datasets/purge.py).
    purged: Mapped[int] = mapped_column(Integer, default=0)
    # An interaction project's version: the last interaction id it includes (its items are not
    # copied; see datasets/interactions.py). None for a version of samples.
    watermark: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # ... and the last catalogue entry id it includes (None: no catalogue; see datasets/catalogue.py).
    catalogue_mark: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.DatasetVersion:
        return e.DatasetVersion(self.project_id, self.number, self.parent, self.hash, dict(self.counts),
                                self.size, self.message, self.created_at, self.purged or 0)


class VersionItemRow(Base):
    """One (sample, content, label) of an immutable dataset version; survives sample deletion."""

    __tablename__ = "dataset_version_items"
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True)
    sample_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # no FK: the sample may be deleted
    content_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    annotation: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)  # as the sample's


class InteractionRow(Base):
    """One interaction of a recommendation project (append-only; deleted only for privacy)."""

    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_project_id", "project_id", "id"),
                      Index("ix_interactions_project_user", "project_id", "user_id"),
                      Index("ix_interactions_project_item", "project_id", "item_id"), _NEVER_REUSE_IDS)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(200))
    item_id: Mapped[str] = mapped_column(String(200))
    rating: Mapped[float | None] = mapped_column(Float, nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    at: Mapped[datetime] = mapped_column(default=utcnow)  # when it happened (the temporal split's order)
    source: Mapped[str] = mapped_column(String(20), default="api")  # api, import, feedback, ingest
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CatalogueRow(Base):
    """One entry of a recommendation project's item catalogue (append-only: a change to an item is
    a new row; its newest row up to a version's ``catalogue_mark`` is the item in that version)."""

    __tablename__ = "catalogue_items"
    __table_args__ = (Index("ix_catalogue_project_id", "project_id", "id"),
                      Index("ix_catalogue_project_item", "project_id", "item_id"),
                      Index("ix_catalogue_project_category", "project_id", "category"), _NEVER_REUSE_IDS)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    image: Mapped[str | None] = mapped_column(String(64), nullable=True)  # sha256 of the picture in the blob store
    source: Mapped[str] = mapped_column(String(20), default="api")  # api, import
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # At most one pending job per project: the database enforces coalescing.
        Index("uq_jobs_one_pending", "project_id", unique=True,
              sqlite_where=text("status IN ('delayed', 'queued')"),
              postgresql_where=text("status IN ('delayed', 'queued')")),
        Index("ix_jobs_status_run_at", "status", "run_at"),
        _NEVER_REUSE_IDS,
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(12))
    trigger: Mapped[str] = mapped_column(String(10), default="manual")
    dataset_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_change_at: Mapped[datetime | None] = mapped_column(nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    worker: Mapped[str | None] = mapped_column(String(100), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def to_entity(self) -> e.Job:
        return e.Job(self.id, self.project_id, self.status, self.trigger, self.dataset_version, self.run_at,
                     self.first_change_at, self.attempt, self.max_attempts, self.lease_until,
                     bool(self.cancel_requested), dict(self.progress or {}), self.run_id, self.error,
                     self.created_at, self.started_at, self.finished_at)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (_NEVER_REUSE_IDS,)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dataset_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="running")
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    log: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    def to_entity(self) -> e.Run:
        return e.Run(self.id, self.project_id, self.job_id, self.dataset_version, self.status, dict(self.spec),
                     dict(self.result or {}), self.model_version, self.error, self.log or "",
                     self.created_at, self.finished_at)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("project_id", "version"), _NEVER_REUSE_IDS)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(10), default="trained")
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self, aliases: tuple[str, ...] = ()) -> e.ModelVersion:
        return e.ModelVersion(self.project_id, self.version, self.run_id, self.source, self.path, self.sha256,
                              dict(self.card), self.created_at, aliases)


class AliasRow(Base):
    __tablename__ = "aliases"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AliasHistoryRow(Base):
    __tablename__ = "alias_history"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(40))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # promote | rollback: a rollback undoes a promotion, so the next one walks further back
    action: Mapped[str] = mapped_column(String(10), default="promote", server_default="promote")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PredictionRow(Base):
    __tablename__ = "predictions"
    # The prediction list's orders and filters within a project, each ending in the id so a
    # page is one index range (keyset pagination); retention reads created_at (migration 0006).
    __table_args__ = (Index("ix_predictions_project_created", "project_id", "created_at"),
                      # confidence carried along (PostgreSQL): "newest, confidence ≤ x" filters in the index
                      Index("ix_predictions_project_id", "project_id", "id", postgresql_include=["confidence"]),
                      Index("ix_predictions_project_label", "project_id", "label", "id"),
                      Index("ix_predictions_project_confidence", "project_id", "confidence", "id"),
                      Index("ix_predictions_project_version", "project_id", "model_version", "id"),
                      # a sample's prediction history: the records of one input (migration 0009)
                      Index("ix_predictions_project_input", "project_id", "input_hash", "id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model_version: Mapped[int] = mapped_column(Integer)
    # label and confidence: what the prediction list filters and sorts on (None/0 where a target
    # has no single class); output: the whole decoded answer (class scores, a value, boxes …).
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confidence: Mapped[float] = mapped_column(Float)
    output: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    input_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    input_stored: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    client: Mapped[str] = mapped_column(String(100), default="")
    feedback_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    feedback: Mapped[Any | None] = mapped_column(JSON(none_as_null=True), nullable=True)  # the correction's annotation
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.Prediction:
        return e.Prediction(self.id, self.project_id, self.model_version, self.label, self.confidence,
                            dict(self.output or {}), self.input_hash, bool(self.input_stored), self.latency_ms,
                            self.client, self.feedback_label, self.created_at, self.feedback)


class EventRow(Base):
    __tablename__ = "events"
    # Never reused ids: a sink's cursor (EventCursorRow) and a consumer's deduplication rely on them.
    __table_args__ = (Index("ix_events_project_id", "project_id", "id"), _NEVER_REUSE_IDS)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_entity(self) -> e.Event:
        return e.Event(self.id, self.project_id, self.type, dict(self.data), self.created_at)


class EventCursorRow(Base):
    """How far one sink of the events table (webhooks, the broker …) has delivered: the outbox's cursor."""

    __tablename__ = "event_cursors"
    sink: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IngestedMessageRow(Base):
    """A broker message already applied (CloudEvents ``source`` + ``id``), written in the change's own
    transaction: a redelivered message (crash after commit, before the ack) is not applied twice."""

    __tablename__ = "ingested_messages"
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TokenRow(Base):
    """An API token: only its sha256 is stored; the secret is shown once at creation."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | trainer | predictor | viewer
    projects: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"names": [...]}; empty = every project
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuditRow(Base):
    """Who changed what, when: data edits, training, promotions, rollbacks, tokens, purges."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_project_id", "project", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    project: Mapped[str | None] = mapped_column(String(100), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
