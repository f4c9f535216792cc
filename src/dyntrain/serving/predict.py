"""Predictions: run the served model on a batch and record every answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from .. import tasks
from ..kernel.core import Core
from ..kernel.errors import DyntrainError, Invalid, NotFound
from ..kernel.project_settings import ProjectSettings
from ..kernel.limits import exceeded
from ..kernel.projects import project_row
from ..storage import sha256_hex
from ..storage.rows import PredictionRow, utcnow
from .records import writer_for

__all__ = ["predict_items", "predict_rows", "list_predictions", "next_cursor", "set_feedback", "prediction_row"]


def predict_items(core: Core, project: str, files: list[tuple[str, bytes]], *, version: int | None = None,
                   client: str = "", detail: bool = False,
                   file_url: Callable[[int, str], str] | None = None) -> list[dict[str, Any]]:
    """Predict each item (image files, or UTF-8 texts in a text project); a bad item gets its
    own ``error`` entry without failing the others. ``detail`` adds what the target gives of the
    model's full output (a mask's per-class probabilities; see ``Target.detail``), not recorded.

    Where the project keeps inputs, the record also keeps the files the answer hands it (a mask's
    PNG: ``Answer.files``) as blobs named in its ``output["files"]``; ``file_url(prediction id,
    name)`` (the API's route to them) then adds ``urls: {name: url}`` to the answer.

    >>> predict_items(core, "products", [("a.jpg", data)])  # doctest: +SKIP
    [{'label': 'mug', 'confidence': 0.93, 'scores': {...}, 'model_version': 3, 'prediction_id': 17}]
    """
    start = time.perf_counter()
    if not files:
        raise Invalid("no files were sent (multipart field 'files')")
    if len(files) > core.settings.max_files_per_request:
        raise exceeded(f"{len(files)} files in one request", core.settings.max_files_per_request,
                       "max_files_per_request")
    with core.db.read() as s:
        row = project_row(s, project)
        pid, settings, task = row.id, ProjectSettings(**(row.settings or {})), tasks.get(row.task)
    modality = task.modality
    # Read the model reference ONCE: the whole batch uses one version even during a swap.
    model = core.live.version(pid, version) if version is not None else core.live.production(pid)
    decoded: list[Any] = []
    errors: dict[int, str] = {}
    columns: list[dict[str, Any]] = []  # rows whose columns differ from the model's: the request is refused
    for i, (_, data) in enumerate(files):
        try:
            if len(data) > core.settings.max_upload_bytes:
                raise exceeded(f"file is {len(data)} bytes", core.settings.max_upload_bytes, "max_upload_bytes")
            item = modality.decode(data, max_pixels=core.settings.max_image_pixels)
            columns += modality.item_problems(model.schema, i, item)
            decoded.append(item)
        except DyntrainError as exc:
            decoded.append(None)
            errors[i] = exc.message
    if columns:
        names = ", ".join(c["name"] for c in model.schema or ())
        raise Invalid(f"{columns[0]['reason']} (row {columns[0]['row']}); the model's columns are: {names}",
                      details=columns[:100])
    ok = [i for i, d in enumerate(decoded) if d is not None]
    outputs = model.predict_items([decoded[i] for i in ok]) if ok else []  # one per item (see Target.split)
    latency_ms = (time.perf_counter() - start) * 1000 / max(1, len(files))
    results: list[dict[str, Any]] = [{} for _ in files]
    records = []
    now = utcnow()
    for j, i in enumerate(ok):
        answer = task.target.answer(outputs[j], model.labels, settings.confidence_threshold)
        data = files[i][1]
        digest = core.blobs.put(data) if settings.store_prediction_inputs else sha256_hex(data)
        record = answer.record
        if settings.store_prediction_inputs and answer.files:
            # what the model said, kept as long as what it was asked (housekeeping keeps and
            # forgets them together: ops.housekeeping, tasks.output_blobs)
            record["output"] = {**record["output"], "files": {k: core.blobs.put(v) for k, v in answer.files.items()}}
        records.append({"project_id": pid, "model_version": model.version, **record, "input_hash": digest,
                        "input_stored": settings.store_prediction_inputs, "latency_ms": latency_ms,
                        "client": client[:100], "feedback_label": None, "feedback": None, "created_at": now})
        results[i] = {**answer.public, "model_version": model.version}
        if detail:
            results[i].update(task.target.detail(outputs[j], model.labels))
    if records:
        # Committed before the answer leaves (its id is in it); concurrent requests share the commit.
        for i, record, prediction_id in zip(ok, records, writer_for(core.db).write(records)):
            results[i]["prediction_id"] = prediction_id
            if file_url is not None and record["output"].get("files"):
                results[i]["urls"] = {k: file_url(prediction_id, k) for k in record["output"]["files"]}
        core.metrics.prediction(project, model.version, len(records))
    for i, message in errors.items():
        results[i] = {"file": files[i][0], "error": message}
    return results


def predict_rows(core: Core, project: str, rows: list[dict[str, Any]], *, version: int | None = None,
                 client: str = "") -> list[dict[str, Any]]:
    """Predict table rows (tabular projects): each row is an object with exactly the model's
    columns (null for a missing value). Unknown or missing columns refuse the request (422,
    naming them); a bad value (text in a numeric column) gets that row its own ``error``.

    >>> predict_rows(core, "houses", [{"rooms": 3, "city": "Oslo"}])  # doctest: +SKIP
    [{'value': 305112.5, 'model_version': 2, 'prediction_id': 41}]
    """
    from ..datasets.changes import project_task
    from ..codecs.tables import row_bytes

    if tasks.get(project_task(core, project)).modality.upload_format != "rows":
        raise Invalid(f"project {project!r} does not take table rows; use /predict (images) or /predict/texts")
    if not rows:
        raise Invalid("no rows were sent")
    files = []
    for i, row in enumerate(rows):
        try:
            files.append((f"row-{i}", row_bytes(row)))
        except DyntrainError as exc:
            raise Invalid(f"row {i + 1}: {exc.message}", details=[{"row": i + 1, "reason": exc.message}]) from None
    return predict_items(core, project, files, version=version, client=client)


def prediction_row(s, project_id: int, prediction_id: int) -> PredictionRow:
    row = s.get(PredictionRow, prediction_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"prediction {prediction_id} does not exist in this project")
    return row


def list_predictions(core: Core, project: str, *, label: str | None = None, min_confidence: float | None = None,
                     max_confidence: float | None = None, version: int | None = None, order: str = "newest",
                     offset: int = 0, limit: int = 100, cursor: str | None = None,
                     count_limit: int | None = None) -> tuple[list, int]:
    """(one page of prediction records, how many match).

    ``cursor`` (from :func:`next_cursor`) continues after the last record of the previous page:
    keyset pagination, as fast on the thousandth page as on the first, where ``offset`` makes the
    database walk past every skipped row. ``count_limit`` stops counting there (the count is then
    ``count_limit + 1``, a lower bound): an exact count of a million records costs the database
    tens of milliseconds on every page.
    """
    from sqlalchemy import and_, func, or_

    if order not in _ORDERS:
        raise Invalid(f"order must be one of {', '.join(_ORDERS)}")
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
        counted = select(PredictionRow.id).where(*where)
        if count_limit is not None:
            counted = counted.limit(count_limit + 1)
        total = s.scalar(select(func.count()).select_from(counted.subquery()))
        page = list(where)
        if cursor is not None:
            confidence, after = _read_cursor(cursor, order)
            if confidence is None:
                page.append(PredictionRow.id < after)
            else:  # (confidence ascending, id descending): strictly after the cursor's record
                page.append(or_(PredictionRow.confidence > confidence,
                                and_(PredictionRow.confidence == confidence, PredictionRow.id < after)))
        # The page's ids first, then its records: an id-only query is answered from the project's
        # indexes alone, where a whole-row query may walk the primary key through other projects'
        # newer records (PostgreSQL guesses from the project's share of the table).
        query = select(PredictionRow.id).where(*page).order_by(*_ORDERS[order]).limit(limit)
        ids = list(s.scalars(query if cursor is not None else query.offset(offset)))
        rows = {r.id: r for r in s.scalars(select(PredictionRow).where(PredictionRow.id.in_(ids)))} if ids else {}
        return [rows[i].to_entity() for i in ids], total


# Each order's sort keys; every one ends in the id, so a (value, id) cursor names one place.
_ORDERS = {"newest": (PredictionRow.id.desc(),),
           "least_confident": (PredictionRow.confidence.asc(), PredictionRow.id.desc())}


def next_cursor(items: list, order: str, limit: int) -> str | None:
    """The cursor of the page after ``items`` (a full page of :func:`list_predictions`), or None."""
    if len(items) < limit or not items:
        return None
    last = items[-1]
    return str(last.id) if order == "newest" else f"{last.confidence!r}_{last.id}"


def _read_cursor(cursor: str, order: str) -> tuple[float | None, int]:
    try:
        if order == "newest":
            return None, int(cursor)
        confidence, _, after = cursor.partition("_")
        return float(confidence), int(after)
    except ValueError:
        raise Invalid(f"cursor {cursor!r} is not one this list gave for order={order}: pass the "
                      "next_cursor of the previous page, with the same order and filters") from None


def set_feedback(core: Core, project: str, prediction_id: int, label: Any) -> None:
    """Record the right answer to a prediction, in the task target's label format (a class, a
    number, an image's boxes …); checked against the input where it was kept (boxes inside it)."""
    with core.db.read() as s:
        project_ = project_row(s, project)
        row = prediction_row(s, project_.id, prediction_id)
        task, stored, digest = tasks.get(project_.task), row.input_stored, row.input_hash
    meta = {}
    if stored and digest and core.blobs.exists(digest):
        meta = task.modality.content_meta(core.settings, f"prediction-{prediction_id}", core.blobs.get(digest))
    key, annotation = task.target.stored_label(label, meta, core.blobs)
    with core.db.write() as s:
        row = prediction_row(s, project_row(s, project).id, prediction_id)
        row.feedback_label, row.feedback = key, annotation
