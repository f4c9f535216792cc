"""Predictions: run the served model on a batch and record every answer."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from ..core import Core
from ..errors import DyntrainError, Invalid, NotFound, TooLarge
from ..entities import TASKS
from ..project_settings import ProjectSettings
from ..projects import project_row
from ..storage import sha256_hex
from ..storage.rows import PredictionRow, utcnow
from .inputs import decode_content

__all__ = ["predict_items", "list_predictions", "set_feedback", "prediction_row", "purge_old_inputs"]


def predict_items(core: Core, project: str, files: list[tuple[str, bytes]], *, version: int | None = None,
                   client: str = "") -> list[dict[str, Any]]:
    """Predict each item (image files, or UTF-8 texts in a text project); a bad item gets its
    own ``error`` entry without failing the others.

    >>> predict_items(core, "products", [("a.jpg", data)])  # doctest: +SKIP
    [{'label': 'mug', 'confidence': 0.93, 'scores': {...}, 'model_version': 3, 'prediction_id': 17}]
    """
    start = time.perf_counter()
    if not files:
        raise Invalid("no files were sent (multipart field 'files')")
    if len(files) > core.settings.max_files_per_request:
        raise TooLarge(f"{len(files)} files in one request; the limit is {core.settings.max_files_per_request}")
    with core.db.read() as s:
        row = project_row(s, project)
        pid, settings, kind = row.id, ProjectSettings(**(row.settings or {})), TASKS[row.task]
    # Read the model reference ONCE: the whole batch uses one version even during a swap.
    model = core.live.version(pid, version) if version is not None else core.live.production(pid)
    decoded: list[Any] = []
    errors: dict[int, str] = {}
    for i, (_, data) in enumerate(files):
        try:
            if len(data) > core.settings.max_upload_bytes:
                raise TooLarge(f"file is {len(data)} bytes; the limit is {core.settings.max_upload_bytes}")
            decoded.append(decode_content(kind, data, max_pixels=core.settings.max_image_pixels))
        except DyntrainError as exc:
            decoded.append(None)
            errors[i] = exc.message
    ok = [i for i, d in enumerate(decoded) if d is not None]
    probs = model.predict_items([decoded[i] for i in ok]) if ok else np.zeros((0, len(model.labels)))
    latency_ms = (time.perf_counter() - start) * 1000 / max(1, len(files))
    results: list[dict[str, Any]] = [{} for _ in files]
    records = []
    for j, i in enumerate(ok):
        p = probs[j]
        best = int(np.argmax(p))
        confidence = float(p[best])
        label = model.labels[best] if confidence >= settings.confidence_threshold else None
        scores = {lab: float(v) for lab, v in zip(model.labels, p)}
        data = files[i][1]
        digest = core.blobs.put(data) if settings.store_prediction_inputs else sha256_hex(data)
        records.append((i, PredictionRow(project_id=pid, model_version=model.version, label=label,
                                         confidence=confidence, scores=scores, input_hash=digest,
                                         input_stored=settings.store_prediction_inputs, latency_ms=latency_ms,
                                         client=client[:100])))
        results[i] = {"label": label, "confidence": confidence, "scores": scores, "model_version": model.version}
    if records:
        with core.db.write() as s:
            s.add_all(r for _, r in records)
            s.flush()
            for i, r in records:
                results[i]["prediction_id"] = r.id
    for i, message in errors.items():
        results[i] = {"file": files[i][0], "error": message}
    return results


def prediction_row(s, project_id: int, prediction_id: int) -> PredictionRow:
    row = s.get(PredictionRow, prediction_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"prediction {prediction_id} does not exist in this project")
    return row


def list_predictions(core: Core, project: str, *, label: str | None = None, min_confidence: float | None = None,
                     max_confidence: float | None = None, version: int | None = None, order: str = "newest",
                     offset: int = 0, limit: int = 100) -> tuple[list, int]:
    from sqlalchemy import func

    with core.db.read() as s:
        pid = project_row(s, project).id
        where = [PredictionRow.project_id == pid]
        if label is not None:
            where.append(PredictionRow.label == label)
        if min_confidence is not None:
            where.append(PredictionRow.confidence >= min_confidence)
        if max_confidence is not None:
            where.append(PredictionRow.confidence <= max_confidence)
        if version is not None:
            where.append(PredictionRow.model_version == version)
        ordering = {"newest": PredictionRow.id.desc(), "least_confident": PredictionRow.confidence.asc()}
        if order not in ordering:
            raise Invalid(f"order must be one of {', '.join(ordering)}")
        total = s.scalar(select(func.count()).select_from(PredictionRow).where(*where))
        rows = s.scalars(select(PredictionRow).where(*where).order_by(ordering[order], PredictionRow.id.desc())
                         .offset(offset).limit(limit))
        return [r.to_entity() for r in rows], total


def set_feedback(core: Core, project: str, prediction_id: int, label: str) -> None:
    from ..datasets.changes import validate_label

    label = validate_label(label)
    with core.db.write() as s:
        row = prediction_row(s, project_row(s, project).id, prediction_id)
        row.feedback_label = label


def purge_old_inputs(core: Core) -> int:
    """Forget prediction inputs older than each project's retention; the record itself stays.

    A forgotten input's file is deleted unless a sample, a dataset version or a newer
    prediction still uses the same content.
    """
    from ..storage.rows import ProjectRow, SampleRow, VersionItemRow

    expired: set[str] = set()
    count = 0
    with core.db.write() as s:
        for project in s.scalars(select(ProjectRow)):
            days = ProjectSettings(**(project.settings or {})).prediction_retention_days
            cutoff = utcnow() - timedelta(days=days)
            for row in s.scalars(select(PredictionRow).where(PredictionRow.project_id == project.id,
                                                             PredictionRow.input_stored.is_(True),
                                                             PredictionRow.created_at < cutoff)):
                row.input_stored = False
                expired.add(row.input_hash)
                count += 1
        s.flush()
        for digest in expired:
            in_use = (s.scalar(select(SampleRow.id).where(SampleRow.content_hash == digest).limit(1))
                      or s.scalar(select(VersionItemRow.sample_id).where(VersionItemRow.content_hash == digest).limit(1))
                      or s.scalar(select(PredictionRow.id).where(PredictionRow.input_hash == digest,
                                                                 PredictionRow.input_stored.is_(True)).limit(1)))
            if not in_use:
                core.blobs.delete(digest)
    return count
