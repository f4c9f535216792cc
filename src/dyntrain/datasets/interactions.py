"""Interactions of a recommendation project: checked, appended, versioned by watermark.

Interactions (a user, an item, an optional rating, a weight, when it happened) arrive by the
thousand and stay cheap at 10^6: they live in one append-only table, and a dataset version
records only a *watermark* — the last interaction id it includes — with its counts. Ids are
handed out under the project's lock and never reused, so "id ≤ watermark" names a version's
interactions exactly, and a version costs one row however many interactions it covers.

Hashes: a version's hash chains its parent's hash with a digest of the interactions added since
(sha256 over their canonical lines — user, item, rating, weight, time — in id order), so equal
histories have equal hashes and a new batch is hashed in time proportional to the batch. Deleting a person's interactions
(privacy) is the one change that is not an append: the new version's hash is a digest of every
remaining interaction (a full recount, prefixed ``recount``), and older versions that included
deleted interactions count them in ``purged`` (they can no longer be reproduced exactly, as with
purged samples).

Every request or import is ONE new version; the scheduler (subscribed to new versions) then
trains after its usual delay. All-or-nothing: every record is checked first and each bad one
is named; nothing is written if any is bad.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

import numpy as np
from sqlalchemy import delete, extract, func, insert, select, update
from sqlalchemy.orm import Session

from .. import tasks
from ..codecs.interactions import MAX_IMPORT_ROWS, check_id, parse_records, read_file
from ..kernel.core import Core
from ..kernel.errors import Invalid, NotFound, TooLarge
from ..kernel.events import publish
from ..kernel.projects import project_row
from ..storage.rows import DatasetVersionRow, InteractionRow, ProjectRow, utcnow
from . import versions

__all__ = ["MAX_BATCH", "MAX_IMPORT_ROWS", "SOURCES", "InteractionLog", "parse_records", "read_file",
           "add_interactions", "check_batch", "delete_user", "history", "load_log", "interaction_project", "stats"]

#: Most interactions one JSON request may carry (split larger sets into batches, or import a file).
MAX_BATCH = 10_000
#: Where an interaction came from.
SOURCES = ("api", "import", "feedback", "ingest")


@dataclass(frozen=True, eq=False)
class InteractionLog:
    """A version's interactions as parallel columns, oldest id first (what training loads)."""

    ids: np.ndarray
    users: list[str]
    items: list[str]
    ratings: np.ndarray  # NaN where no rating was given
    weights: np.ndarray
    times: np.ndarray  # event time, Unix seconds
    watermark: int
    #: The version's item catalogue: item id → {"category", "attributes", "text", "image"} (may be empty).
    catalogue: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


# -- writing and versions --------------------------------------------------------------------
def interaction_project(s: Session, name: str, *, lock: bool = False) -> ProjectRow:
    """The project, refused unless its task takes interactions.

    ``lock``: FOR NO KEY UPDATE on PostgreSQL — it serialises this project's changes like FOR
    UPDATE, but lets a running job's heartbeat add its event row (whose foreign key takes a key
    share on the project) while this transaction waits on that job's row to cancel it; under FOR
    UPDATE the two deadlocked (measured: the second 10,000-interaction batch of an import)."""
    if lock:
        row = s.scalars(select(ProjectRow).where(ProjectRow.name == name).with_for_update(key_share=True)).first()
        if row is None:
            project_row(s, name)  # its NotFound
    else:
        row = project_row(s, name)
    if tasks.get(row.task).modality.upload_format != "interactions":
        takes = [n for n in tasks.names() if tasks.get(n).modality.upload_format == "interactions"]
        raise Invalid(f"project {name!r} is a {row.task} project; interactions go into projects of: "
                      f"{', '.join(takes)}")
    return row


def check_batch(n: int, limit: int = MAX_BATCH) -> None:
    """Refuse a request of more than ``limit`` interactions (413), saying what to do instead."""
    if n > limit:
        raise TooLarge(f"{n:,} interactions in one request; the limit is {limit:,}: send batches of at most "
                       f"{limit:,}, or import a file (POST …/interactions/import)")


def add_interactions(core: Core, project: str, records: list[dict], *, source: str = "api",
                     message: str | None = None, limit: int | None = MAX_BATCH) -> dict[str, Any]:
    """Append checked interactions (see :func:`parse_records`) as ONE new dataset version.

    >>> add_interactions(core, "shop", parse_records([{"user": 1, "item": "a"}]))  # doctest: +SKIP
    {'added': 1, 'version': 3, 'first_id': 12, 'last_id': 12}
    """
    if source not in SOURCES:
        raise Invalid(f"source must be one of {', '.join(SOURCES)}")
    if limit is not None:
        check_batch(len(records), limit)
    if not records:
        raise Invalid("no interactions were sent")
    now = utcnow()
    rows = [{**r, "at": r["at"] or now, "source": source, "created_at": now} for r in records]
    with core.db.write() as s:
        # The lock first: ids are handed out in lock order, so a version's watermark never passes
        # an id another transaction has not committed yet.
        row = interaction_project(s, project, lock=True)
        first = (s.scalar(select(func.max(InteractionRow.id)).where(InteractionRow.project_id == row.id)) or 0) + 1
        table = InteractionRow.__table__  # a Core insert: the ORM's bulk path cost more than SQLite's own
        for k in range(0, len(rows), 5_000):
            s.execute(insert(table), [{**r, "project_id": row.id} for r in rows[k:k + 5_000]])
        # ids follow the insert order under the lock, so the added lines hash from memory (reading
        # 10^6 rows back to hash them took longer than writing them)
        added = hashlib.sha256("".join(_line_of(r["user_id"], r["item_id"], r["rating"], r["weight"], r["at"])
                                       for r in rows).encode()).hexdigest()
        last = s.scalar(select(func.max(InteractionRow.id)).where(InteractionRow.project_id == row.id))
        version = _append_version(s, row, message or f"{len(rows):,} interactions ({source})",
                                  added=(added, len(rows), last))
        last = version.watermark
        first = s.scalar(select(func.min(InteractionRow.id)).where(InteractionRow.project_id == row.id,
                                                                   InteractionRow.id >= first))
        return {"added": len(rows), "version": version.number, "first_id": first, "last_id": last}


def _line(r) -> str:
    return _line_of(r.user_id, r.item_id, r.rating, r.weight, r.at)


def _line_of(user_id: str, item_id: str, rating: float | None, weight: float, at) -> str:
    rating_text = "" if rating is None else repr(float(rating))
    at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    # the content, not the id: two projects given the same interactions in the same order have the
    # same version hashes (the order is in the chain)
    return f"{user_id}\t{item_id}\t{rating_text}\t{float(weight)!r}\t{at.timestamp():.6f}\n"


def _digest(s: Session, project_id: int, after: int, up_to: int | None = None) -> tuple[str, int, int]:
    """(sha256 of the canonical lines of the interactions with after < id ≤ up_to, how many, the last id)."""
    h, n, last = hashlib.sha256(), 0, after
    where = [InteractionRow.project_id == project_id, InteractionRow.id > after]
    if up_to is not None:
        where.append(InteractionRow.id <= up_to)
    query = (select(InteractionRow.id, InteractionRow.user_id, InteractionRow.item_id, InteractionRow.rating,
                    InteractionRow.weight, InteractionRow.at).where(*where).order_by(InteractionRow.id)
             .execution_options(yield_per=20_000))
    for r in s.execute(query):
        h.update(_line(r).encode())
        n, last = n + 1, r.id
    return h.hexdigest(), n, last


def _new_ids(s: Session, project_id: int, column, watermark: int) -> int:
    """Distinct ids (users or items) among the interactions after ``watermark`` that no earlier
    interaction has: a version's counts grow by these without recounting the whole history."""
    earlier = InteractionRow.__table__.alias("earlier")
    exists = (select(earlier.c.id).where(earlier.c.project_id == project_id, earlier.c[column.key] == column,
                                         earlier.c.id <= watermark).exists())
    return s.scalar(select(func.count(func.distinct(column))).where(
        InteractionRow.project_id == project_id, InteractionRow.id > watermark, ~exists)) or 0


def _head(s: Session, project: ProjectRow) -> DatasetVersionRow | None:
    if not project.head_version:
        return None
    return s.scalars(select(DatasetVersionRow).where(DatasetVersionRow.project_id == project.id,
                                                     DatasetVersionRow.number == project.head_version)).first()


def _append_version(s: Session, project: ProjectRow, message: str,
                    added: tuple[str, int, int] | None = None) -> DatasetVersionRow:
    """A version of everything after the head's watermark; ``added``: their (digest, count, last
    id) when the caller hashed them already."""
    head = _head(s, project)
    watermark = (head.watermark or 0) if head is not None else 0
    digest, n, last = added or _digest(s, project.id, watermark)
    parent = head.counts if head is not None else {}
    counts = {"interactions": int(parent.get("interactions", 0)) + n,
              "users": int(parent.get("users", 0)) + _new_ids(s, project.id, InteractionRow.user_id, watermark),
              "items": int(parent.get("items", 0)) + _new_ids(s, project.id, InteractionRow.item_id, watermark)}
    chained = hashlib.sha256(f"{head.hash if head is not None else ''}\n{digest}".encode()).hexdigest()
    return _new_version(s, project, chained, counts, last, message)


def _new_version(s: Session, project: ProjectRow, digest: str, counts: dict[str, int], watermark: int,
                 message: str, catalogue_mark: int | None = None) -> DatasetVersionRow:
    """The next version; the catalogue (datasets/catalogue.py) carries over from the head unless
    ``catalogue_mark`` moves it, and so does its count."""
    number = (project.head_version or 0) + 1
    head = _head(s, project)
    if catalogue_mark is None and head is not None:
        catalogue_mark = head.catalogue_mark
        if "catalogue" in (head.counts or {}):
            counts = {**counts, "catalogue": head.counts["catalogue"]}
    version = DatasetVersionRow(project_id=project.id, number=number, parent=project.head_version or None,
                                hash=digest, counts=counts, size=counts["interactions"], message=message,
                                watermark=watermark, catalogue_mark=catalogue_mark)
    s.add(version)
    s.flush()
    project.head_version = number
    publish(s, project.id, "data.changed", {"version": number, "message": message, "size": counts["interactions"]})
    versions.notify(s, project, number)
    return version


def delete_user(core: Core, project: str, user: Any) -> dict[str, Any]:
    """Delete every interaction of ``user`` (privacy) as one new version whose hash and counts
    are a full recount of what remains; older versions that held them count them as purged."""
    user_id = check_id(user, "user")
    with core.db.write() as s:
        row = interaction_project(s, project, lock=True)
        ids = sorted(s.scalars(select(InteractionRow.id).where(InteractionRow.project_id == row.id,
                                                               InteractionRow.user_id == user_id)))
        if not ids:
            raise NotFound(f"project {project!r} has no interactions of user {user_id!r}")
        s.execute(delete(InteractionRow).where(InteractionRow.project_id == row.id, InteractionRow.user_id == user_id))
        for version_id, mark in s.execute(select(DatasetVersionRow.id, DatasetVersionRow.watermark).where(
                DatasetVersionRow.project_id == row.id, DatasetVersionRow.watermark >= ids[0])).all():
            gone = bisect_left(ids, (mark or 0) + 1)
            s.execute(update(DatasetVersionRow).where(DatasetVersionRow.id == version_id)
                      .values(purged=DatasetVersionRow.purged + gone))
        digest, n, last = _digest(s, row.id, 0)
        counts = {"interactions": n, **_distinct(s, row.id)}
        version = _new_version(s, row, hashlib.sha256(f"recount\n{digest}".encode()).hexdigest(), counts,
                               max(last, (_head(s, row).watermark or 0) if row.head_version else 0),
                               f"deleted {len(ids):,} interactions of user {user_id} (privacy)")
        return {"deleted": len(ids), "version": version.number}


def _distinct(s: Session, project_id: int) -> dict[str, int]:
    where = InteractionRow.project_id == project_id
    return {"users": s.scalar(select(func.count(func.distinct(InteractionRow.user_id))).where(where)) or 0,
            "items": s.scalar(select(func.count(func.distinct(InteractionRow.item_id))).where(where)) or 0}


# -- reading -------------------------------------------------------------------------------
def load_log(s: Session, project: ProjectRow, number: int) -> InteractionLog:
    """The interactions of version ``number`` (id ≤ its watermark), oldest id first.

    Event times come back as Unix seconds computed by the database (whole seconds on SQLite:
    ties keep their arrival order): parsing 10^6 stored datetimes in Python took longer than the
    rest of the load."""
    from .catalogue import load_catalogue

    version = versions.get_version(s, project, number)
    watermark = version.watermark or 0
    catalogue = load_catalogue(s, project.id, version.catalogue_mark)
    query = (select(InteractionRow.id, InteractionRow.user_id, InteractionRow.item_id, InteractionRow.rating,
                    InteractionRow.weight, extract("epoch", InteractionRow.at))
             .where(InteractionRow.project_id == project.id, InteractionRow.id <= watermark)
             .order_by(InteractionRow.id))
    rows = s.execute(query).all()
    if not rows:
        empty = np.zeros(0)
        return InteractionLog(empty.astype(np.int64), [], [], empty, empty, empty, watermark, catalogue)
    ids, users, items, ratings, weights, times = zip(*rows)
    return InteractionLog(np.asarray(ids, np.int64), list(users), list(items),
                          np.asarray([np.nan if r is None else r for r in ratings], np.float64),
                          np.asarray(weights, np.float64), np.asarray(times, np.float64), watermark, catalogue)


def history(core: Core, project: str, user: Any, *, limit: int = 50) -> list[dict[str, Any]]:
    """A person's latest interactions, newest first."""
    user_id = check_id(user, "user")
    with core.db.read() as s:
        row = interaction_project(s, project)
        rows = s.execute(select(InteractionRow).where(InteractionRow.project_id == row.id,
                                                      InteractionRow.user_id == user_id)
                         .order_by(InteractionRow.at.desc(), InteractionRow.id.desc()).limit(limit)).scalars()
        return [{"id": r.id, "item": r.item_id, "rating": r.rating, "weight": r.weight, "at": r.at,
                 "source": r.source} for r in rows]


def stats(core: Core, project: str) -> dict[str, Any]:
    """The newest version's counts, and the newest interactions (the data page)."""
    with core.db.read() as s:
        row = interaction_project(s, project)
        head = _head(s, row)
        latest = s.execute(select(InteractionRow).where(InteractionRow.project_id == row.id)
                           .order_by(InteractionRow.id.desc()).limit(20)).scalars()
        return {"version": row.head_version or 0, "counts": dict(head.counts) if head is not None else {},
                "latest": [{"id": r.id, "user": r.user_id, "item": r.item_id, "rating": r.rating,
                            "weight": r.weight, "at": r.at, "source": r.source} for r in latest]}
