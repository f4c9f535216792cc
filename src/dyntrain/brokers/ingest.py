"""Data changes arriving from a broker as CloudEvents, applied exactly like API calls.

Other services send structured-mode CloudEvents 1.0 (JSON) to ``ingest_subject``: ``subject`` is
the project, ``source`` who sent it (the audit log's actor), ``type`` one of :data:`MESSAGE_TYPES`
with its ``data``. Each message goes through the same functions, validation, dataset version and
retrain trigger as the REST API. A message that can never apply (not a CloudEvent, unknown type
or project, bad data) goes to ``<ingest_subject>.dead`` with the reason and is acknowledged; one
that cannot apply yet (database unavailable) is redelivered later.

Exactly once: the message's (source, id) and its audit entry are written in the transaction of
the change itself, and the message is acknowledged only after that committed. A crash before the
commit leaves nothing and the broker redelivers; a crash after it finds the mark and only acks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..ops.background import AsyncioThread
from ..datasets import changes
from ..kernel.errors import DyntrainError, Invalid
from ..storage.rows import AuditRow, IngestedMessageRow
from .clients import open_client

__all__ = ["MESSAGE_TYPES", "Rejected", "apply_message", "IngestConsumer"]

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Rejected(Exception):
    """The message can never be applied: it goes to the dead-letter subject with this reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SampleItem(_Data):
    label: str
    image_base64: str | None = Field(None, description="The image file's bytes, base64.")
    blob: str | None = Field(None, description="The sha256 of content already in dyntrain's blob store.")
    text: str | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _one_content(self) -> "SampleItem":
        if sum(x is not None for x in (self.image_base64, self.blob, self.text)) != 1:
            raise ValueError("give exactly one of image_base64, blob or text")
        return self


class SamplesAdd(_Data):
    samples: list[SampleItem] = Field(..., min_length=1)


class RowsAdd(_Data):
    rows: list[dict[str, Any]] = Field(..., min_length=1)
    target: str


class SampleRelabel(_Data):
    sample_id: int
    label: str


class SampleDelete(_Data):
    sample_id: int


def _content(core, item: SampleItem) -> bytes:
    if item.text is not None:
        return item.text.encode("utf-8")
    if item.blob is not None:
        if not _SHA256.match(item.blob) or not core.blobs.exists(item.blob):
            raise Invalid(f"blob {item.blob!r} is not in dyntrain's blob store; send the bytes as image_base64")
        return core.blobs.get(item.blob)
    try:
        return base64.b64decode(item.image_base64, validate=True)
    except binascii.Error:
        raise Invalid("image_base64 is not valid base64") from None


def _add_samples(core, project: str, data: SamplesAdd) -> dict:
    uploads = [changes.Upload(item.filename or f"message-item-{i + 1}", _content(core, item))
               for i, item in enumerate(data.samples)]
    changes.add_samples(core, project, uploads, [item.label for item in data.samples], source="broker")
    return {}


def _add_rows(core, project: str, data: RowsAdd) -> dict:
    changes.add_rows(core, project, data.rows, data.target, source="broker")
    return {}


def _relabel(core, project: str, data: SampleRelabel) -> dict:
    changes.relabel_sample(core, project, data.sample_id, data.label)
    return {"sample_id": data.sample_id}


def _delete(core, project: str, data: SampleDelete) -> dict:
    changes.delete_sample(core, project, data.sample_id)
    return {"sample_id": data.sample_id}


@dataclass(frozen=True)
class _MessageType:
    data: type[_Data]
    apply: Callable[[Any, str, Any], dict]
    action: str  # the audit action: the REST endpoint's name, as the API records it


MESSAGE_TYPES: dict[str, _MessageType] = {
    "dyntrain.samples.add": _MessageType(SamplesAdd, _add_samples, "add_samples"),
    "dyntrain.rows.add": _MessageType(RowsAdd, _add_rows, "add_rows"),
    "dyntrain.sample.relabel": _MessageType(SampleRelabel, _relabel, "relabel_sample"),
    "dyntrain.sample.delete": _MessageType(SampleDelete, _delete, "delete_sample"),
}


@dataclass
class _Applying:
    """What the change's transaction must also write; ``written`` once it has (a function making
    a second transaction must not write it twice)."""

    mark: IngestedMessageRow
    audit: AuditRow
    written: bool = field(default=False)


_APPLYING: contextvars.ContextVar[_Applying | None] = contextvars.ContextVar("dyntrain_ingest", default=None)


@event.listens_for(Session, "before_commit")
def _write_with_the_change(session: Session) -> None:
    # The change functions open their own write transaction (reads never commit); this puts the
    # message's mark and audit entry into it, so they commit with the change or not at all.
    applying = _APPLYING.get()
    if applying is not None and not applying.written:
        session.add_all([applying.mark, applying.audit])
        applying.written = True


def _parse(body: bytes):
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    try:
        message = JSONFormat().read(CloudEvent, body)
    except Exception as exc:  # JSON, encoding and CloudEvents validation errors alike
        raise Rejected(f"not a CloudEvents 1.0 JSON message: {' '.join(str(exc).split())[:500]}") from None
    if message.get_specversion() != "1.0":
        raise Rejected(f"specversion {message.get_specversion()!r} is not supported; send 1.0")
    return message


def _already_applied(core, source: str, message_id: str) -> bool:
    with core.db.read() as s:
        return s.get(IngestedMessageRow, (source, message_id)) is not None


def apply_message(core, body: bytes) -> bool:
    """Apply one message; False when it had been applied before. Raises :class:`Rejected` when it
    can never apply; any other error means "not now" (it is redelivered)."""
    message = _parse(body)
    kind = MESSAGE_TYPES.get(message.get_type())
    if kind is None:
        raise Rejected(f"unknown type {message.get_type()!r}; expected one of {', '.join(MESSAGE_TYPES)}")
    project, source, message_id = message.get_subject(), message.get_source(), message.get_id()
    if not project:
        raise Rejected("the CloudEvent has no 'subject': set it to the project's name")
    if len(source) > 200 or len(message_id) > 200:
        raise Rejected("'source' and 'id' must be at most 200 characters")
    try:
        data = kind.data.model_validate(message.get_data() or {})
    except ValidationError as exc:
        raise Rejected(f"bad data for {message.get_type()}: {' '.join(str(exc).split())[:800]}") from None
    if _already_applied(core, source, message_id):
        return False
    details = {"via": "broker", "type": message.get_type(), "message_id": message_id}
    if isinstance(data, (SampleRelabel, SampleDelete)):
        details["sample_id"] = data.sample_id
    action = kind.action
    if isinstance(data, SamplesAdd) and all(item.text is not None for item in data.samples):
        action = "add_texts"  # as the API records a batch of texts
    applying = _Applying(IngestedMessageRow(source=source, message_id=message_id),
                         AuditRow(actor=source[:100], action=action, project=project, details=details))
    token = _APPLYING.set(applying)
    try:
        kind.apply(core, project, data)
    except DyntrainError as exc:
        reasons = "; ".join(f"{d.get('file') or d.get('field') or ''}: {d.get('reason')}" for d in exc.details[:20])
        raise Rejected(f"{exc.code}: {exc.message}" + (f" ({reasons})" if reasons else "")) from None
    except IntegrityError:
        if _already_applied(core, source, message_id):  # the same message, applied meanwhile elsewhere
            return False
        raise
    finally:
        _APPLYING.reset(token)
    return True


class IngestConsumer:
    """Consumes ``ingest_subject`` on ``ingest_url`` on its own thread, reconnecting after failures."""

    def __init__(self, core, *, retry_s: float = 2.0):
        self.core, self.retry_s = core, retry_s
        self.client = open_client(core.settings.ingest_url)
        self.applied = 0  # (for observability and tests)
        self.rejected: list[str] = []
        self._loop = AsyncioThread("broker-ingest")
        self._task = None

    def start(self) -> "IngestConsumer":
        self._task = self._loop.run(self._start(), timeout=5)
        return self

    async def _start(self) -> asyncio.Task:
        return asyncio.create_task(self._run())

    def stop(self) -> None:
        try:
            self._loop.run(self._shutdown(), timeout=10)
        except Exception:  # stopping: a broken connection has nothing left to close
            pass
        self._loop.stop()

    async def _shutdown(self) -> None:
        # A message being applied now finishes in its thread; unacknowledged, it is redelivered
        # and then found already applied.
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.reset()

    async def _run(self) -> None:
        settings = self.core.settings
        while True:
            try:
                await self.client.consume(settings.ingest_subject, self._handle, settings.ingest_redeliver_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("ingest from %s: %s; reconnecting in %.1f s", self.client.url, exc, self.retry_s)
                await self.client.reset()
                await asyncio.sleep(self.retry_s)

    async def _handle(self, body: bytes) -> str | None:
        try:
            if await asyncio.to_thread(apply_message, self.core, body):
                self.applied += 1
        except Rejected as exc:
            log.warning("ingest: message rejected (dead-lettered): %s", exc.reason)
            self.rejected.append(exc.reason)
            return exc.reason
        return None
