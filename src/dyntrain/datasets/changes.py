"""Changes to a project's data. Each request or committed batch is ONE new dataset version.

Every action here is all-or-nothing: inputs are validated before anything is written,
and database changes happen in one transaction (blobs written first are content-addressed
and harmless if the transaction then fails).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..codecs.archive import validate_label  # one check for labels everywhere; export needs it without a database
from ..kernel.core import Core
from .. import tasks
from ..kernel.entities import ClassInfo, DatasetVersion, Sample
from ..kernel.errors import Conflict, Invalid, NotFound, TooLarge
from ..kernel.limits import exceeded
from ..kernel.projects import project_row
from ..storage.rows import BatchRow, ClassRow, ProjectRow, SampleRow
from .versions import snapshot, version_items

__all__ = [
    "Upload", "add_samples", "list_samples", "get_sample", "relabel_sample", "delete_sample",
    "list_classes", "create_class", "update_class", "delete_class",
    "open_batch", "commit_batch", "discard_batch", "restore_version", "validate_label",
    "validate_label_for", "project_task", "add_rows", "label_counts", "bulk_change", "MAX_BULK",
]

#: Samples one bulk request may change (a request names them all; a bigger change is several).
MAX_BULK = 10_000


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    #: Kept in the sample's meta beside what the modality reads from the content (e.g. a row's
    #: column order as sent: the stored row is canonical, its keys sorted).
    meta: dict | None = None


def validate_label_for(task: str, label) -> str:
    """A label in the task's target format: a class, or for a number target its canonical text ("151")."""
    return tasks.get(task).target.validate_label(label)


def _check_uploads(core: Core, task: str, uploads: list[Upload], labels: list) -> list[tuple[Upload, str, object, dict]]:
    """Validate every file and its label first and name every rejected one: nothing is written on
    failure. Each accepted upload comes with its label's key and annotation (see Target.read_label)."""
    modality, target = tasks.get(task).modality, tasks.get(task).target
    limit, setting, what = modality.upload_limit(core.settings)
    if not uploads:
        raise Invalid("no files were sent (multipart field 'files')")
    if len(uploads) > limit:
        raise exceeded(f"{len(uploads)} {what} in one request", limit, setting, "split them into batches")
    if len(labels) == 1:
        labels = labels * len(uploads)
    if len(labels) != len(uploads):
        raise Invalid(f"got {len(uploads)} files but {len(labels)} labels: send one 'label' for all, "
                      "or one 'labels' entry per file")
    accepted, rejected = [], []
    for upload, label in zip(uploads, labels):
        try:
            extra = upload.meta or {}
            upload = Upload(upload.filename, modality.canonical(upload.data))
            meta = {**modality.content_meta(core.settings, upload.filename, upload.data), **extra}
            key, annotation = target.stored_label(label, meta, core.blobs)
            accepted.append((upload, key, annotation, meta))
        except (Invalid, TooLarge) as exc:
            rejected.append({"file": upload.filename, "reason": exc.message})
    if rejected:
        raise Invalid(f"{len(rejected)} of {len(uploads)} files were rejected; nothing was added",
                      details=rejected)
    return accepted


def _ensure_classes(s: Session, project: ProjectRow, labels: set[str]) -> None:
    """Add the classes ``labels`` names to the project's class list (see Target.label_classes)."""
    if not labels:
        return
    existing = set(s.scalars(select(ClassRow.label).where(ClassRow.project_id == project.id)))
    s.add_all(ClassRow(project_id=project.id, label=label) for label in sorted(labels - existing))
    _pin_colors(project, existing, labels - existing)


def _pin_colors(project: ProjectRow, existing: set[str], new: set[str]) -> None:
    """Give new classes their colours where the task colours classes (a mask's): each class keeps
    the colour it was first shown in (see Target.pin_colors)."""
    if not new:
        return
    settings = dict(project.settings or {})
    pinned = tasks.get(project.task).target.pin_colors(settings.get("class_colors"), existing, new)
    if pinned is not None and pinned != settings.get("class_colors"):
        project.settings = {**settings, "class_colors": pinned}  # a new dict: the JSON column is written


def project_task(core: Core, project: str) -> str:
    with core.db.read() as s:
        return project_row(s, project).task


def _open_batch(s: Session, project: ProjectRow, batch_id: str) -> BatchRow:
    batch = s.get(BatchRow, batch_id)
    if batch is None or batch.project_id != project.id:
        raise NotFound(f"upload batch {batch_id!r} does not exist in project {project.name!r}")
    if batch.status != "open":
        raise Conflict(f"upload batch {batch_id!r} is already {batch.status}; open a new one")
    return batch


def add_samples(core: Core, project: str, uploads: list[Upload], labels: list, *,
                batch: str | None = None, source: str = "upload") -> tuple[list[Sample], DatasetVersion | None]:
    """Add items (images, or UTF-8 texts in a text project) with their labels (in the task target's
    format: a class, a number, an image's boxes …).

    Without a batch they become a new dataset version at once.

    >>> add_samples(core, "products", [Upload("a.jpg", data)], ["mug"])  # doctest: +SKIP
    """
    task = project_task(core, project)
    kind, target = tasks.get(task).modality.kind, tasks.get(task).target
    accepted = _check_uploads(core, task, uploads, labels)
    hashes = [core.blobs.put(upload.data) for upload, _, _, _ in accepted]
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        if batch is not None:
            _open_batch(s, row, batch)
        _ensure_classes(s, row, set().union(*(target.label_classes(k, a) for _, k, a, _ in accepted)))
        samples = [SampleRow(project_id=row.id, kind=kind, content_hash=h, label=key, annotation=annotation,
                             source=source, meta=meta, status="staged" if batch else "active", batch_id=batch)
                   for h, (_, key, annotation, meta) in zip(hashes, accepted)]
        s.add_all(samples)
        s.flush()
        version = None if batch else snapshot(s, row, f"added {len(samples)} sample(s)")
        return [r.to_entity() for r in samples], version


def add_rows(core: Core, project: str, rows: list[dict], target: str, *, batch: str | None = None,
             source: str = "upload") -> tuple[list[Sample], DatasetVersion | None]:
    """Add table rows to a tabular project; ``target`` names the column to predict (a class,
    or a number in a regression project). Every row is checked first; nothing is written
    if any is bad.

    >>> add_rows(core, "houses", [{"rooms": 3, "city": "Oslo", "price": 310000}], "price")  # doctest: +SKIP
    """
    from ..codecs.tables import split_target

    task = project_task(core, project)
    if tasks.get(task).modality.upload_format != "rows":
        raise Invalid(f"project {project!r} is a {task} project; rows go into projects of: "
                      + ", ".join(n for n in tasks.names() if tasks.get(n).modality.upload_format == "rows"))
    limit = getattr(core.settings, "max_csv_rows", 100_000)
    if len(rows) > limit:
        raise exceeded(f"{len(rows)} rows in one request", limit, "max_csv_rows", "split them into batches")
    contents, labels = split_target(rows, target, task)
    # The stored row's keys are sorted (its hash is the content's); the table shows the columns
    # in the order they were sent, kept per row (the first 40: what the data page shows).
    orders = [[str(k).strip() for k in row if k != target][:40] for row in rows]
    return add_samples(core, project, [Upload(f"row-{i + 1}", c, {"order": o})
                                       for i, (c, o) in enumerate(zip(contents, orders))], labels,
                       batch=batch, source=source)


def _sample_row(s: Session, project: ProjectRow, sample_id: int) -> SampleRow:
    row = s.get(SampleRow, sample_id)
    if row is None or row.project_id != project.id or row.status != "active":
        raise NotFound(f"sample {sample_id} does not exist in project {project.name!r}")
    return row


def get_sample(core: Core, project: str, sample_id: int) -> Sample:
    with core.db.read() as s:
        return _sample_row(s, project_row(s, project), sample_id).to_entity()


def list_samples(core: Core, project: str, *, label: str | None = None, offset: int = 0,
                 limit: int = 100) -> tuple[list[Sample], int]:
    with core.db.read() as s:
        pid = project_row(s, project).id
        where = [SampleRow.project_id == pid, SampleRow.status == "active"]
        if label is not None:
            where.append(SampleRow.label == label)
        total = s.scalar(select(func.count()).select_from(SampleRow).where(*where))
        rows = s.scalars(select(SampleRow).where(*where).order_by(SampleRow.id).offset(offset).limit(limit))
        return [r.to_entity() for r in rows], total


def relabel_sample(core: Core, project: str, sample_id: int, label) -> tuple[Sample, DatasetVersion | None]:
    """Give a sample a new label (in the task target's format); a changed label is a new version."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        target = tasks.get(row.task).target
        sample = _sample_row(s, row, sample_id)
        key, annotation = target.stored_label(label, dict(sample.meta or {}), core.blobs)
        old = sample.label
        sample.label, sample.annotation = key, annotation
        _ensure_classes(s, row, target.label_classes(key, annotation))
        s.flush()
        what = f"from {old!r} to {key!r}" if old != key else "(its annotation)"
        return sample.to_entity(), snapshot(s, row, f"relabelled sample {sample_id} {what}")


def delete_sample(core: Core, project: str, sample_id: int) -> DatasetVersion | None:
    """Remove a sample from the project. Older versions and runs keep its content."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        s.delete(_sample_row(s, row, sample_id))
        s.flush()
        return snapshot(s, row, f"deleted sample {sample_id}")


def bulk_change(core: Core, project: str, sample_ids: list[int], *, label=None,
                delete_them: bool = False) -> tuple[list[Sample], DatasetVersion | None]:
    """Relabel (to ``label``, in the target's format) or delete many samples as ONE dataset
    version: all of them or none (an id that is not an active sample of the project refuses the
    whole request, naming it). Samples already carrying the label are left as they are."""
    ids = list(dict.fromkeys(int(i) for i in sample_ids))
    if not ids:
        raise Invalid("name at least one sample")
    if len(ids) > MAX_BULK:
        raise TooLarge(f"{len(ids)} samples in one request; at most {MAX_BULK}")
    if delete_them == (label is not None):
        raise Invalid("either give the new label or delete, not both or neither")
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        found = {r.id: r for r in s.scalars(select(SampleRow).where(
            SampleRow.project_id == row.id, SampleRow.status == "active", SampleRow.id.in_(ids)))}
        missing = [i for i in ids if i not in found]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise NotFound(f"no sample {shown} in project {project!r} (deleted since?): nothing was changed")
        samples = [found[i] for i in ids]
        if delete_them:
            for sample in samples:
                s.delete(sample)
            s.flush()
            return [], snapshot(s, row, f"deleted {len(samples)} sample(s) at once")
        target = tasks.get(row.task).target
        moved = 0
        for sample in samples:
            key, annotation = target.stored_label(label, dict(sample.meta or {}), core.blobs)
            if (sample.label, sample.annotation) != (key, annotation):
                sample.label, sample.annotation, moved = key, annotation, moved + 1
            _ensure_classes(s, row, target.label_classes(key, annotation))
        s.flush()
        return [x.to_entity() for x in samples], snapshot(s, row, f"relabelled {moved} sample(s) to {key!r} at once")


def label_counts(core: Core, project: str) -> dict[str, int]:
    """How many active samples carry each label (a class, or a target value)."""
    with core.db.read() as s:
        return _label_counts(s, project_row(s, project).id)


def _label_counts(s: Session, pid: int) -> dict[str, int]:
    return dict(s.execute(select(SampleRow.label, func.count()).where(
        SampleRow.project_id == pid, SampleRow.status == "active").group_by(SampleRow.label)).all())


def list_classes(core: Core, project: str) -> list[ClassInfo]:
    with core.db.read() as s:
        row = project_row(s, project)
        pid, keys = row.id, _label_counts(s, row.id)
        # the target counts its classes from the samples' keys (an image of boxes shows several)
        counts = tasks.get(row.task).target.counts([k for k, n in keys.items() for _ in range(n)])
        rows = s.scalars(select(ClassRow).where(ClassRow.project_id == pid).order_by(ClassRow.label))
        return [ClassInfo(r.label, r.description or "", counts.get(r.label, 0)) for r in rows]


def _class_row(s: Session, project: ProjectRow, label: str) -> ClassRow:
    row = s.scalars(select(ClassRow).where(ClassRow.project_id == project.id, ClassRow.label == label)).first()
    if row is None:
        raise NotFound(f"class {label!r} does not exist in project {project.name!r}")
    return row


def create_class(core: Core, project: str, label: str, description: str = "") -> ClassInfo:
    label = validate_label(label)
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        if s.scalar(select(ClassRow.id).where(ClassRow.project_id == row.id, ClassRow.label == label)):
            raise Conflict(f"class {label!r} already exists in project {project!r}")
        existing = set(s.scalars(select(ClassRow.label).where(ClassRow.project_id == row.id)))
        s.add(ClassRow(project_id=row.id, label=label, description=description))
        _pin_colors(row, existing, {label})
    return ClassInfo(label, description, 0)


def update_class(core: Core, project: str, label: str, *, new_label: str | None = None,
                 description: str | None = None) -> tuple[ClassInfo, DatasetVersion | None]:
    """Rename (relabelling all its samples in ONE version) and/or describe a class."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        cls = _class_row(s, row, label)
        version = None
        if description is not None:
            cls.description = description
        if new_label is not None and validate_label(new_label) != label:
            new_label = validate_label(new_label)
            if s.scalar(select(ClassRow.id).where(ClassRow.project_id == row.id, ClassRow.label == new_label)):
                raise Conflict(f"class {new_label!r} already exists; relabel samples into it instead of renaming")
            cls.label = new_label
            colors = dict((row.settings or {}).get("class_colors") or {})
            if label in colors:  # the class keeps its colour under its new name
                colors[new_label] = colors.pop(label)
                row.settings = {**(row.settings or {}), "class_colors": colors}
            s.execute(update(SampleRow).where(SampleRow.project_id == row.id, SampleRow.label == label,
                                              SampleRow.annotation.is_(None)).values(label=new_label))
            # labels held whole (an image's boxes): the target renames the class inside them
            target = tasks.get(row.task).target
            for sample in s.scalars(select(SampleRow).where(SampleRow.project_id == row.id,
                                                            SampleRow.annotation.is_not(None))):
                if label in target.label_classes(sample.label, sample.annotation):
                    sample.label, sample.annotation = target.renamed(sample.label, sample.annotation, label, new_label)
            version = snapshot(s, row, f"renamed class {label!r} to {new_label!r}")
        count = s.scalar(select(func.count()).select_from(SampleRow).where(
            SampleRow.project_id == row.id, SampleRow.label == cls.label, SampleRow.status == "active"))
        return ClassInfo(cls.label, cls.description or "", count), version


def delete_class(core: Core, project: str, label: str) -> DatasetVersion | None:
    """Delete a class and its samples in one version (restore an older version to undo). Where a
    label holds several classes (an image's boxes) the target says what is left of each sample
    naming the class (the image without that class's boxes)."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        s.delete(_class_row(s, row, label))
        gone = s.execute(delete(SampleRow).where(SampleRow.project_id == row.id, SampleRow.label == label,
                                                 SampleRow.annotation.is_(None), SampleRow.status == "active")).rowcount
        target, changed = tasks.get(row.task).target, 0
        for sample in s.scalars(select(SampleRow).where(SampleRow.project_id == row.id, SampleRow.status == "active",
                                                        SampleRow.annotation.is_not(None))):
            if label not in target.label_classes(sample.label, sample.annotation):
                continue
            left = target.without_class(sample.label, sample.annotation, label)
            if left is None:
                s.delete(sample)
                gone += 1
            else:
                (sample.label, sample.annotation), changed = left, changed + 1
        s.flush()
        return snapshot(s, row, f"deleted class {label!r}: {gone} sample(s) removed"
                                + (f", {changed} kept without it" if changed else ""))


def open_batch(core: Core, project: str) -> str:
    with core.db.write() as s:
        row = project_row(s, project)
        batch = BatchRow(id=uuid.uuid4().hex, project_id=row.id)
        s.add(batch)
        return batch.id


def commit_batch(core: Core, project: str, batch: str) -> DatasetVersion | None:
    """Everything uploaded in the batch becomes ONE dataset version."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        b = _open_batch(s, row, batch)
        n = s.execute(update(SampleRow).where(SampleRow.batch_id == batch, SampleRow.status == "staged")
                      .values(status="active")).rowcount
        b.status = "committed"
        return snapshot(s, row, f"added {n} sample(s) in batch {batch[:8]}")


def discard_batch(core: Core, project: str, batch: str) -> None:
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        b = _open_batch(s, row, batch)
        s.execute(delete(SampleRow).where(SampleRow.batch_id == batch, SampleRow.status == "staged"))
        s.delete(b)


def restore_version(core: Core, project: str, number: int) -> DatasetVersion | None:
    """Make the project's data equal to an older version's, as a NEW version."""
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        target = {i.sample_id: i for i in version_items(s, row, number)}
        current = {r.id: r for r in s.scalars(select(SampleRow).where(
            SampleRow.project_id == row.id, SampleRow.status == "active"))}
        for sid, sample in current.items():
            if sid not in target:
                s.delete(sample)
            elif (sample.label, sample.annotation) != (target[sid].label, target[sid].annotation):
                sample.label, sample.annotation = target[sid].label, target[sid].annotation
        for sid in target.keys() - current.keys():
            item = target[sid]
            old = s.get(SampleRow, sid)
            if old is None:  # deleted since: bring it back under its old id
                s.add(SampleRow(id=sid, project_id=row.id, kind=tasks.get(row.task).modality.kind, content_hash=item.content_hash,
                                label=item.label, annotation=item.annotation, source="restore", meta={},
                                status="active"))
        names = tasks.get(row.task).target.label_classes
        _ensure_classes(s, row, set().union(*(names(i.label, i.annotation) for i in target.values())))
        s.flush()
        return snapshot(s, row, f"restored dataset version {number}")
