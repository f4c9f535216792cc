"""Routes that read who and what a recommendation project knows: its people, its items, and a
summary of its interactions (the data page and the Try page's pickers use them).

People and items are listed in id order with how many interactions each has and when the last
one happened; ``prefix`` narrows them for a type-ahead and ``after`` continues after the last id
of the previous page (keyset pagination: one index range of ``(project_id, user_id)`` or
``(project_id, item_id)``, as fast on the thousandth page as on the first).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from ..datasets.interactions import interaction_project
from ..kernel.core import Core
from ..storage.rows import DatasetVersionRow, InteractionRow
from .deps import API_PREFIX, get_core

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["recommendation"])

#: Longest page of people or items.
MAX_PAGE = 500


class Known(BaseModel):
    id: str = Field(..., description="The person's or item's id.")
    interactions: int = Field(..., description="How many interactions they have.")
    last_at: datetime | None = Field(None, description="When the latest of them happened.")


class KnownPage(BaseModel):
    items: list[Known]
    next_after: str | None = Field(None, description="Pass as `after` for the next page; null on the last page.")


class Summary(BaseModel):
    version: int = Field(..., description="The newest dataset version (0: no interactions yet).")
    interactions: int
    people: int
    items: int
    rated: int = Field(..., description="Interactions with a rating.")
    feedback: str = Field(..., description="explicit (every interaction rated), implicit (none rated), mixed "
                                           "(trained as implicit: some lack a rating) or none (no interactions).")
    rating_min: float | None = None
    rating_max: float | None = None
    first_at: datetime | None = Field(None, description="When the earliest interaction happened.")
    last_at: datetime | None = Field(None, description="When the latest interaction happened.")
    sources: dict[str, int] = Field({}, description="Interactions by where they came from (api, import, feedback, "
                                                    "ingest).")


def _page(core: Core, name: str, column, prefix: str | None, after: str | None, limit: int) -> dict[str, Any]:
    """One page of distinct ids of ``column`` (user_id or item_id) with their counts."""
    with core.db.read() as s:
        project = interaction_project(s, name)
        where = [InteractionRow.project_id == project.id]
        if prefix:
            # substr decides (not LIKE: case-sensitive on SQLite as on PostgreSQL, in any
            # collation, no wildcards to escape in ids); the range only narrows the index scan.
            where.append(func.substr(column, 1, len(prefix)) == prefix)
            bounds = _bounds(prefix)
            if bounds is not None:
                where += [column >= bounds[0], column < bounds[1]]
        if after is not None:
            where.append(column > after)
        rows = s.execute(select(column, func.count(), func.max(InteractionRow.at)).where(*where)
                         .group_by(column).order_by(column).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [{"id": r[0], "interactions": r[1], "last_at": r[2]} for r in rows],
            "next_after": rows[-1][0] if more else None}


def _bounds(prefix: str) -> tuple[str, str] | None:
    """An index range holding every id that starts with ``prefix``: [prefix, prefix with its last
    character the next one). Only where that next character sorts after it in any collation (a
    digit, a letter of the same case, but not 9, z or Z); otherwise None and the project's ids are
    scanned. At 10^6 interactions a prefix takes ~10 ms with it, ~0.5 s without (PostgreSQL).

    >>> _bounds("u42"), _bounds("sku-z"), _bounds("")
    (('u42', 'u43'), None, None)
    """
    if not prefix or not re.fullmatch(r"[0-8a-yA-Y]", prefix[-1]):
        return None
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


_PREFIX = Query(None, max_length=1000, description="Only ids that start with this (a type-ahead).")
_AFTER = Query(None, max_length=1000, description="The previous page's `next_after`.")


@router.get("/projects/{name}/people", response_model=KnownPage)
def list_people(name: str, prefix: str | None = _PREFIX, after: str | None = _AFTER,
                limit: int = Query(50, ge=1, le=MAX_PAGE), core: Core = Depends(get_core)):
    """The people of a recommendation project in id order, each with how many interactions they
    have and when the latest happened. One person's history: `GET …/interactions?user=…`."""
    return _page(core, name, InteractionRow.user_id, prefix, after, limit)


@router.get("/projects/{name}/items", response_model=KnownPage)
def list_items(name: str, prefix: str | None = _PREFIX, after: str | None = _AFTER,
               limit: int = Query(50, ge=1, le=MAX_PAGE), core: Core = Depends(get_core)):
    """The items of a recommendation project in id order, each with how many interactions it has
    and when the latest happened. Items like one: `GET …/similar?item=…`."""
    return _page(core, name, InteractionRow.item_id, prefix, after, limit)


#: Summaries of recent versions: a version never changes, and the aggregate reads every
#: interaction (~0.4 s at 10^6 on PostgreSQL), so each process computes it once per version.
_SUMMARIES: dict[tuple, dict[str, Any]] = {}
_KEEP = 64


@router.get("/projects/{name}/interactions/summary", response_model=Summary)
def summary(name: str, core: Core = Depends(get_core)):
    """How many interactions, people and items the project has, whether its feedback is explicit
    (ratings) or implicit, the range of the ratings and of the times, and where they came from."""
    with core.db.read() as s:
        project = interaction_project(s, name)
        head = s.scalars(select(DatasetVersionRow).where(DatasetVersionRow.project_id == project.id,
                                                         DatasetVersionRow.number == project.head_version)).first()
        if head is None:
            return {"version": 0, "interactions": 0, "people": 0, "items": 0, "rated": 0, "feedback": "none",
                    "sources": {}}
        key = (id(core), project.id, head.number, head.hash)
        if key not in _SUMMARIES:
            _SUMMARIES[key] = _aggregate(s, project.id, head)
            while len(_SUMMARIES) > _KEEP:
                _SUMMARIES.pop(next(iter(_SUMMARIES)))
        return _SUMMARIES[key]


def _aggregate(s, project_id: int, head: DatasetVersionRow) -> dict[str, Any]:
    """The summary of the head version: its counts (kept with the version) and one pass over the
    interactions for the ratings, times and sources."""
    by_source = s.execute(select(InteractionRow.source, func.count(), func.count(InteractionRow.rating),
                                 func.min(InteractionRow.rating), func.max(InteractionRow.rating),
                                 func.min(InteractionRow.at), func.max(InteractionRow.at))
                          .where(InteractionRow.project_id == project_id).group_by(InteractionRow.source)).all()
    n = sum(r[1] for r in by_source)
    rated = sum(r[2] for r in by_source)

    def extreme(pick, k):
        values = [r[k] for r in by_source if r[k] is not None]
        return pick(values) if values else None

    counts = head.counts or {}
    return {"version": head.number, "interactions": n, "people": int(counts.get("users", 0)),
            "items": int(counts.get("items", 0)), "rated": rated,
            "feedback": "none" if not n else "explicit" if rated == n else "implicit" if not rated else "mixed",
            "rating_min": extreme(min, 3), "rating_max": extreme(max, 4), "first_at": extreme(min, 5),
            "last_at": extreme(max, 6), "sources": {r[0]: r[1] for r in by_source}}
