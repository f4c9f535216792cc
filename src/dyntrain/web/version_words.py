"""Dataset versions for people: what each version changed against its parent, in words
("added 3 images of mug, relabelled 1"), and who made it (from the audit log).

Pure of HTTP; the versions page (web/extra_pages.py) renders what these return.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from ..access.audit import AuditEntry, entries
from sqlalchemy import select

from ..datasets import versions
from ..kernel.core import Core
from ..kernel.projects import project_row
from ..storage.rows import DatasetVersionRow, VersionItemRow
from .views import activity_sentence

__all__ = ["change_words", "made_by", "version_rows"]

#: Audited actions that never make a dataset version (so they are not mistaken for its maker).
_NOT_DATA = frozenset({"train_now", "cancel_job", "promote", "keep_back", "rollback", "patch_project", "upload_model",
                       "create_project", "delete_project", "create_token", "revoke_token", "feedback", "open_batch",
                       "discard_batch", "create_class", "login", "logout", "run_gc", "housekeeping"})
#: The audit entry is written once the change's answer is ready: within this of the version.
_MATCH = timedelta(seconds=30)


def _count(n: int, noun: str, plural: str) -> str:
    return f"{n} {noun if n == 1 else plural}"


def change_words(diff: dict[str, Any], noun: str, plural: str, by_class: bool) -> str:
    """One sentence for a diff (``versions.diff_versions``): added / removed by class where the
    target has classes, then how many were relabelled.

    >>> change_words({"added": [{"label": "mug"}] * 3, "removed": [], "relabelled": [{}]}, "image", "images", True)
    'added 3 images of mug, relabelled 1'
    >>> change_words({"relabelled": [{"from": "cup", "to": "mug"}]}, "image", "images", True)
    'relabelled 1 image from cup to mug'
    >>> change_words({"added": [], "removed": [], "relabelled": []}, "row", "rows", False)
    'no change to the examples'
    """
    parts = []
    for verb, key in (("added", "added"), ("removed", "removed")):
        items = diff.get(key) or []
        if not items:
            continue
        labels = Counter(str(i.get("label") or "") for i in items)
        if by_class and "" not in labels and len(labels) <= 3:
            parts.append(f"{verb} " + ", ".join(f"{_count(n, noun, plural)} of {label}"
                                                 for label, n in labels.most_common()))
        else:
            parts.append(f"{verb} {_count(len(items), noun, plural)}")
    moved = diff.get("relabelled") or []
    pairs = Counter((str(i.get("from") or ""), str(i.get("to") or "")) for i in moved)
    if moved and by_class and len(pairs) <= 2 and all(a and b for a, b in pairs):
        parts.append("relabelled " + ", ".join(f"{_count(n, noun, plural)} from {a} to {b}"
                                                for (a, b), n in pairs.most_common()))
    elif moved:
        parts.append(f"relabelled {len(moved)}")
    return ", ".join(parts) if parts else "no change to the examples"


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def made_by(stamps: list[tuple[int, datetime]], log: list[AuditEntry]) -> dict[int, AuditEntry]:
    """Which audited data change made which version (``stamps``: (number, created_at)). The log
    records a request once it has answered, so an entry belongs to the newest version made at or
    before it, if that is at most ``_MATCH`` earlier; each entry makes one version at most, and a
    version with none was made on the server without a request (a script, a scheduled job)."""
    ordered = sorted((_naive_utc(t), n) for n, t in stamps)
    times = [at for at, _ in ordered]
    found: dict[int, AuditEntry] = {}
    for e in sorted(log, key=lambda x: x.created_at):  # oldest first: the first entry after a version wins
        if e.action in _NOT_DATA:
            continue
        t = _naive_utc(e.created_at)
        k = bisect_right(times, t)  # versions made before this entry (both stamped by this code's clock)
        if k and t - ordered[k - 1][0] <= _MATCH and ordered[k - 1][1] not in found:
            found[ordered[k - 1][1]] = e
    return found


def _contents(core: Core, project: str, numbers: set[int]) -> dict[int, dict[int, tuple]]:
    """sample id → (label, annotation) of each version in ``numbers``, in one query of plain rows:
    a page of 30 versions of 5,000 samples through ``versions.diff_versions`` (ORM items, two
    loads per version) took 14 s; most versions' parent is on the page too, so each loads once."""
    with core.db.read() as s:
        pid = project_row(s, project).id
        ids = dict(s.execute(select(DatasetVersionRow.id, DatasetVersionRow.number).where(
            DatasetVersionRow.project_id == pid, DatasetVersionRow.number.in_(sorted(numbers)))).all())
        found: dict[int, dict[int, tuple]] = {n: {} for n in ids.values()}
        for vid, sid, label, annotation in s.execute(
                select(VersionItemRow.version_id, VersionItemRow.sample_id, VersionItemRow.label,
                       VersionItemRow.annotation).where(VersionItemRow.version_id.in_(sorted(ids)))):
            found[ids[vid]][sid] = (label, annotation)
    return found


def _diff(contents: dict[int, dict[int, tuple]], number: int, against: int) -> dict[str, list[dict]]:
    """``versions.diff_versions``'s lists (the fields the words use) from loaded contents."""
    new, old = contents[number], contents[against]
    return {"added": [{"label": new[k][0]} for k in new.keys() - old.keys()],
            "removed": [{"label": old[k][0]} for k in old.keys() - new.keys()],
            "relabelled": [{"from": old[k][0], "to": new[k][0]} for k in new.keys() & old.keys() if new[k] != old[k]]}


def version_rows(core: Core, project: str, noun: str, plural: str, by_class: bool,
                 limit: int = 30, before: int | None = None, items: bool = True) -> dict[str, Any]:
    """The newest ``limit`` versions (older than ``before``) with their change in words and maker.
    ``items``: the versions list their samples (the modality's ``sample_versions``); otherwise
    (interactions, which only grow) the change is told from the sizes."""
    every = versions.list_versions(core, project)
    shown = [v for v in every if before is None or v.number < before][:limit]
    log = entries(core, project, limit=1000) if shown else []
    by_number = {v.number: v for v in every}
    contents = _contents(core, project, {n for v in shown for n in (v.number, v.parent) if n}) if items else {}
    makers = made_by([(v.number, v.created_at) for v in every], log)
    rows = []
    for v in shown:
        words = "the first version"
        parent = by_number.get(v.parent) if v.parent else None
        if v.parent and items:
            words = change_words(_diff(contents, v.number, v.parent), noun, plural, by_class)
        elif parent is not None:
            grew = v.size - parent.size
            words = f"added {_count(grew, noun, plural)}" if grew > 0 else "no change to the size"
        who = makers.get(v.number)
        rows.append({"version": v, "words": words, "by": activity_sentence(who.actor, who.action, who.details) if who
                     else "not recorded: made on the server itself, not through a request."})
    older = shown[-1].number if shown and shown[-1].number > min(x.number for x in every) else None
    return {"rows": rows, "head": every[0].number if every else None, "all": [v.number for v in every],
            "older": older, "parent_of_head": every[0].parent if every else None,
            "head_words": rows[0]["words"] if rows and before is None else None}
