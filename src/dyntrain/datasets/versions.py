"""Immutable dataset versions: a new one after every change batch, never edited afterwards."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import tasks
from ..kernel.core import Core
from ..kernel.entities import DatasetVersion, VersionItem
from ..kernel.errors import Invalid, NotFound
from ..kernel.events import publish
from ..kernel.projects import project_row
from ..storage.rows import DatasetVersionRow, ProjectRow, SampleRow, VersionItemRow

__all__ = ["snapshot", "list_versions", "get_version", "version_items", "diff_versions", "version_hash",
           "MIN_EXAMPLES_PER_CLASS", "waiting_classes", "waiting_sentence", "subscribe", "notify", "sample_versions"]

#: Told ``(session, project row, version number)`` of every new version, inside the transaction
#: that made it (so what they write commits or rolls back with it). The scheduler subscribes:
#: the data layer does not know who retrains.
_SUBSCRIBERS: list[Callable[[Session, ProjectRow, int], None]] = []


def subscribe(fn: Callable[[Session, ProjectRow, int], None]) -> None:
    """Call ``fn`` for every new dataset version (once, however often it subscribes)."""
    if fn not in _SUBSCRIBERS:
        _SUBSCRIBERS.append(fn)

# Fewer examples than this and a class cannot be both trained on and evaluated (stratified splits).
MIN_EXAMPLES_PER_CLASS = 2


def waiting_classes(counts: dict[str, int]) -> dict[str, int]:
    """Classes too small to learn yet ({label: examples}): training leaves them out until they grow.

    >>> waiting_classes({"cup": 5, "mug": 1, "empty": 0})
    {'empty': 0, 'mug': 1}
    """
    return {label: c for label, c in sorted(counts.items()) if c < MIN_EXAMPLES_PER_CLASS}


def waiting_sentence(label: str, count: int) -> str:
    """What a waiting class still needs, in words.

    >>> waiting_sentence("mug", 1)
    "'mug' needs 1 more example before the model can learn it"
    """
    missing = MIN_EXAMPLES_PER_CLASS - count
    return f"{label!r} needs {missing} more example{'' if missing == 1 else 's'} before the model can learn it"


def version_hash(items: list[tuple]) -> str:
    """sha256 over the sorted (content hash, label[, annotation]) items: equal data, equal hash.

    An annotation (boxes, a mask …) enters as canonical JSON, so a moved box changes the hash;
    items without one hash as they always did (old versions keep their hashes).

    >>> version_hash([("c1", "cat")]) == version_hash([("c1", "cat", None)])
    True
    >>> version_hash([("c1", "", [{"x": 1}])]) != version_hash([("c1", "", [{"x": 2}])])
    True
    """
    h = hashlib.sha256()
    lines = []
    for content_hash, label, *rest in items:
        annotation = rest[0] if rest else None
        extra = "" if annotation is None else "\t" + json.dumps(annotation, sort_keys=True, separators=(",", ":"))
        lines.append(f"{content_hash}\t{label}{extra}\n")
    for line in sorted(lines):
        h.update(line.encode())
    return h.hexdigest()


def snapshot(session: Session, project: ProjectRow, message: str) -> DatasetVersion | None:
    """Freeze the project's active samples into a new version, inside the caller's transaction.

    Returns None when the data equals the newest version (nothing to train on anew).
    The caller must hold the project lock (``project_row(..., lock=True)``). A project whose
    examples are not samples (interactions) versions its data its own way: refused here.
    """
    modality = tasks.get(project.task).modality
    if not modality.sample_versions:
        raise Invalid(f"project {project.name!r} learns from {modality.plural}, not samples: its dataset versions "
                      f"grow as {modality.plural} are added (older ones are not restored)")
    rows = session.execute(
        select(SampleRow.id, SampleRow.content_hash, SampleRow.label, SampleRow.annotation)
        .where(SampleRow.project_id == project.id, SampleRow.status == "active")
    ).all()
    digest = version_hash([(r.content_hash, r.label, r.annotation) for r in rows])
    head = _version_row(session, project.id, project.head_version) if project.head_version else None
    if head is not None and head.hash == digest:
        return None
    number = (project.head_version or 0) + 1
    counts = tasks.get(project.task).target.counts([r.label for r in rows])  # by key
    version = DatasetVersionRow(project_id=project.id, number=number, parent=project.head_version or None,
                                hash=digest, counts=counts,
                                size=len(rows), message=message)
    session.add(version)
    session.flush()
    session.add_all(VersionItemRow(version_id=version.id, sample_id=r.id, content_hash=r.content_hash,
                                   label=r.label, annotation=r.annotation) for r in rows)
    project.head_version = number
    publish(session, project.id, "data.changed", {"version": number, "message": message, "size": len(rows)})
    notify(session, project, number)
    return version.to_entity()


def notify(session: Session, project: ProjectRow, number: int) -> None:
    """Tell the subscribers of a new version, in the transaction that made it (the loop: the
    scheduler's subscription may retrain on it)."""
    for fn in _SUBSCRIBERS:
        fn(session, project, number)


def _version_row(session: Session, project_id: int, number: int) -> DatasetVersionRow | None:
    return session.scalars(select(DatasetVersionRow).where(
        DatasetVersionRow.project_id == project_id, DatasetVersionRow.number == number)).first()


def list_versions(core: Core, project: str) -> list[DatasetVersion]:
    with core.db.read() as s:
        pid = project_row(s, project).id
        rows = s.scalars(select(DatasetVersionRow).where(DatasetVersionRow.project_id == pid)
                         .order_by(DatasetVersionRow.number.desc()))
        return [r.to_entity() for r in rows]


def get_version(session: Session, project: ProjectRow, number: int) -> DatasetVersionRow:
    row = _version_row(session, project.id, number)
    if row is None:
        raise NotFound(f"project {project.name!r} has no dataset version {number} "
                       f"(newest is {project.head_version or 'none'})")
    return row


def version_items(session: Session, project: ProjectRow, number: int) -> list[VersionItem]:
    """The exact (sample, content, label, annotation) items of a version, ordered by sample id."""
    version = get_version(session, project, number)
    rows = session.scalars(select(VersionItemRow).where(VersionItemRow.version_id == version.id)
                           .order_by(VersionItemRow.sample_id))
    return [VersionItem(r.sample_id, r.content_hash, r.label, r.annotation) for r in rows]


def diff_versions(core: Core, project: str, number: int, against: int) -> dict:
    """Samples added, removed and relabelled going from ``against`` to ``number``."""
    with core.db.read() as s:
        row = project_row(s, project)
        new = {i.sample_id: i for i in version_items(s, row, number)}
        old = {i.sample_id: i for i in version_items(s, row, against)}
    def item(i: VersionItem) -> dict:
        return {"sample_id": i.sample_id, "content_hash": i.content_hash, "label": i.label,
                **({"annotation": i.annotation} if i.annotation is not None else {})}

    return {
        "version": number,
        "against": against,
        "added": [item(new[k]) for k in sorted(new.keys() - old.keys())],
        "removed": [item(old[k]) for k in sorted(old.keys() - new.keys())],
        "relabelled": [{"sample_id": k, "content_hash": new[k].content_hash, "from": old[k].label,
                        "to": new[k].label} for k in sorted(new.keys() & old.keys())
                       if (new[k].label, new[k].annotation) != (old[k].label, old[k].annotation)],
    }


def sample_versions(core: Core, project: str, sample_id: int, limit: int = 200) -> list[dict]:
    """The dataset versions a sample was in, newest first, with its label in each (a deleted
    sample's too: versions keep their items). Each version is looked up by its own key
    (version, sample), so the cost follows the project's versions, not their items."""
    with core.db.read() as s:
        row = project_row(s, project)
        found = s.execute(
            select(DatasetVersionRow.number, DatasetVersionRow.created_at, VersionItemRow.label)
            .join(VersionItemRow, (VersionItemRow.version_id == DatasetVersionRow.id)
                  & (VersionItemRow.sample_id == sample_id))
            .where(DatasetVersionRow.project_id == row.id)
            .order_by(DatasetVersionRow.number.desc()).limit(limit)).all()
    return [{"number": n, "created_at": at, "label": label} for n, at, label in found]

