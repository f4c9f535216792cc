"""A sample's prediction history: the recorded predictions linked to one training sample.

Two links exist in the data model: a sample added from a prediction names it in its ``source``
(``prediction:12``), and a prediction made on the same content has the sample's content hash as
its ``input_hash``. Both are read through indexes (the primary key, and migration 0009's
(project_id, input_hash, id)), so the enlarged sample in the data grid asks for them per click.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from ..kernel.core import Core
from ..kernel.errors import NotFound
from ..kernel.projects import project_row
from ..storage.rows import PredictionRow, SampleRow

__all__ = ["sample_predictions", "origin_prediction"]


def origin_prediction(source: str | None) -> int | None:
    """The prediction a sample was added from, by its source.

    >>> origin_prediction("prediction:12"), origin_prediction("upload"), origin_prediction("prediction:x")
    (12, None, None)
    """
    kind, _, rest = (source or "").partition(":")
    return int(rest) if kind == "prediction" and rest.isdigit() else None


def sample_predictions(core: Core, project: str, sample_id: int, limit: int = 20) -> dict[str, Any]:
    """The newest ``limit`` predictions linked to the sample, newest first; each says whether the
    sample was added from it (``origin``) and whether its input is the sample's content."""
    with core.db.read() as s:
        proj = project_row(s, project)
        sample = s.get(SampleRow, sample_id)
        if sample is None or sample.project_id != proj.id:
            raise NotFound(f"sample {sample_id} does not exist in project {project!r}")
        origin = origin_prediction(sample.source)
        links = [PredictionRow.input_hash == sample.content_hash]
        if origin is not None:
            links.append(PredictionRow.id == origin)
        where = [PredictionRow.project_id == proj.id, or_(*links)]
        total = s.scalar(select(func.count()).select_from(PredictionRow).where(*where))
        rows = s.scalars(select(PredictionRow).where(*where).order_by(PredictionRow.id.desc()).limit(limit)).all()
        items = [{"id": r.id, "created_at": r.created_at, "model_version": r.model_version, "label": r.label,
                  "value": (r.output or {}).get("value"), "confidence": r.confidence,
                  "feedback_label": r.feedback_label, "origin": r.id == origin,
                  "same_content": r.input_hash == sample.content_hash} for r in rows]
    return {"total": total, "items": items, "origin": origin}
