"""Purge: remove a content from a project everywhere, old dataset versions included (privacy).

Deleting a sample keeps its content for older versions and runs; purging does not. In one
transaction it deletes every sample of the project with that content (active or staged),
every item of the project's dataset versions naming it (the version keeps its recorded hash
and counts, and ``purged`` counts what it lost), forgets the project's stored prediction
inputs with it, marks the runs trained on those versions (``result["purged_samples"]``) and
their models (``card["trained_on_purged_data"]``), asks running trainings on them to stop,
and — if the project's current data changed — makes a new version, which retrains without it.
Then, unless another project still uses the content, its blob and cached features go.

>>> purge(core, "faces", "ab12…", actor="alice")  # doctest: +SKIP
{'content_hash': 'ab12…', 'samples': 1, 'versions': [1, 2], 'runs': [4], 'models': [2], ...}
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from sqlalchemy import func, select, update

from .. import tasks
from ..kernel.core import Core
from ..kernel.errors import Invalid, NotFound
from ..kernel.projects import project_row
from ..storage.blobs import FileBlobStore
from ..storage.rows import (
    DatasetVersionRow, JobRow, ModelVersionRow, PredictionRow, RunRow, SampleRow, VersionItemRow,
)
from .versions import snapshot

__all__ = ["purge", "purge_sample", "content_of_sample"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def content_of_sample(core: Core, project: str, sample_id: int) -> str:
    """The content hash of a sample of the project: a current one, or one only old versions hold."""
    with core.db.read() as s:
        pid = project_row(s, project).id
        row = s.get(SampleRow, sample_id)
        if row is not None and row.project_id == pid:
            return row.content_hash
        digest = s.scalar(select(VersionItemRow.content_hash)
                          .join(DatasetVersionRow, DatasetVersionRow.id == VersionItemRow.version_id)
                          .where(DatasetVersionRow.project_id == pid, VersionItemRow.sample_id == sample_id)
                          .limit(1))
    if digest is None:
        raise NotFound(f"sample {sample_id} is in neither the data nor any dataset version of project {project!r}")
    return digest


def purge_sample(core: Core, project: str, sample_id: int, actor: str = "") -> dict[str, Any]:
    """Purge the content of sample ``sample_id`` (see :func:`purge`)."""
    return purge(core, project, content_of_sample(core, project, sample_id), actor=actor)


def purge(core: Core, project: str, content_hash: str, actor: str = "") -> dict[str, Any]:
    """Remove ``content_hash`` from ``project`` everywhere; returns what was removed and marked."""
    content_hash = (content_hash or "").strip().lower()
    if not _HEX64.match(content_hash):
        raise Invalid("content_hash must be a sha256 in hex (64 characters), as samples and predictions show it")
    started = time.time()
    with core.db.write() as s:
        row = project_row(s, project, lock=True)
        per_version = dict(s.execute(
            select(DatasetVersionRow.id, func.count())
            .join(VersionItemRow, VersionItemRow.version_id == DatasetVersionRow.id)
            .where(DatasetVersionRow.project_id == row.id, VersionItemRow.content_hash == content_hash)
            .group_by(DatasetVersionRow.id)).all())
        samples = list(s.scalars(select(SampleRow).where(SampleRow.project_id == row.id,
                                                         SampleRow.content_hash == content_hash)))
        from ..ops.housekeeping import output_blobs_kept

        # what the model answered about the purged input (a mask's PNG) goes with it
        answered = output_blobs_kept(s, PredictionRow.project_id == row.id, PredictionRow.input_hash == content_hash)
        predictions = s.execute(update(PredictionRow).where(
            PredictionRow.project_id == row.id, PredictionRow.input_hash == content_hash,
            PredictionRow.input_stored.is_(True)).values(input_stored=False)
            .execution_options(synchronize_session=False)).rowcount
        if not per_version and not samples and not predictions:
            raise NotFound(f"project {project!r} holds no sample, dataset version item or stored prediction "
                           f"input with content {content_hash[:12]}…")
        data_changed = any(x.status == "active" for x in samples)
        # files the purged items' annotations name (a mask's PNG) go with them unless still named elsewhere
        named = tasks.annotation_blobs([(row.task, x.annotation) for x in samples] + [
            (row.task, a) for a in s.scalars(select(VersionItemRow.annotation).where(
                VersionItemRow.version_id.in_(list(per_version)), VersionItemRow.content_hash == content_hash,
                VersionItemRow.annotation.is_not(None)))])
        for sample in samples:
            s.delete(sample)
        numbers: dict[int, int] = {}  # version number -> items purged
        for version in s.scalars(select(DatasetVersionRow).where(DatasetVersionRow.id.in_(list(per_version)))):
            version.purged = (version.purged or 0) + per_version[version.id]
            numbers[version.number] = per_version[version.id]
        s.execute(VersionItemRow.__table__.delete().where(VersionItemRow.version_id.in_(list(per_version)),
                                                          VersionItemRow.content_hash == content_hash))
        runs = list(s.scalars(select(RunRow).where(RunRow.project_id == row.id,
                                                   RunRow.dataset_version.in_(list(numbers))))) if numbers else []
        for run in runs:
            result = dict(run.result or {})
            result["purged_samples"] = int(result.get("purged_samples", 0)) + numbers[run.dataset_version]
            run.result = result  # a new dict, so the JSON column is written
        run_versions = {r.id: r.dataset_version for r in runs}
        models = list(s.scalars(select(ModelVersionRow).where(ModelVersionRow.project_id == row.id,
                                                              ModelVersionRow.run_id.in_(list(run_versions))))) \
            if run_versions else []
        for model in models:
            card = dict(model.card or {})
            card["trained_on_purged_data"] = True
            card["purged_samples"] = int(card.get("purged_samples", 0)) + numbers[run_versions[model.run_id]]
            model.card = card
        cancelled = s.execute(update(JobRow).where(
            JobRow.project_id == row.id, JobRow.status == "running", JobRow.dataset_version.in_(list(numbers)),
            JobRow.cancel_requested.is_(False)).values(cancel_requested=True)
            .execution_options(synchronize_session=False)).rowcount if numbers else 0
        s.flush()
        new_version = snapshot(s, row, f"purged content {content_hash[:12]}…") if data_changed else None
        report = {"content_hash": content_hash, "samples": len(samples), "versions": sorted(numbers),
                  "items": sum(numbers.values()), "runs": sorted(r.id for r in runs),
                  "models": sorted(m.version for m in models), "predictions": predictions,
                  "jobs_cancelled": cancelled, "new_version": new_version.number if new_version else None}
        from ..access import audit

        audit.record(s, actor or "unknown", "purge", project, **report)
    _rewrite_cards(core, models)
    report.update(_delete_if_unused(core, content_hash, started))
    report["annotation_files_deleted"] = sum(_delete_if_unused(core, h, started)["blob_deleted"] for h in sorted(named))
    report["answer_files_deleted"] = sum(_delete_if_unused(core, h, started)["blob_deleted"] for h in sorted(answered))
    return report


def _rewrite_cards(core: Core, models: list[ModelVersionRow]) -> None:
    """Keep the card file beside each local model file in step with the database."""
    from ..storage.files import UnsafePath, path_inside

    for model in models:
        try:
            path = path_inside(core.settings.model_dir, model.path, "model file").with_suffix(".json")
        except UnsafePath:
            continue  # a damaged row's path: never write outside the model store
        if path.exists():
            path.write_text(json.dumps(model.card, indent=2, default=str))


def _delete_if_unused(core: Core, content_hash: str, since: float) -> dict[str, Any]:
    """Delete the blob and its cached features unless any project still references the content."""
    from ..ops.housekeeping import annotation_blobs_in_use, collect_blob, delete_feature_cache, output_blobs_kept

    with core.db.read() as s:
        still = (s.scalar(select(SampleRow.id).where(SampleRow.content_hash == content_hash).limit(1))
                 or s.scalar(select(VersionItemRow.sample_id).where(VersionItemRow.content_hash == content_hash)
                             .limit(1))
                 or s.scalar(select(PredictionRow.id).where(PredictionRow.input_hash == content_hash,
                                                            PredictionRow.input_stored.is_(True)).limit(1))
                 or (content_hash in annotation_blobs_in_use(s) or None)
                 or (content_hash in output_blobs_kept(s) or None))
    if still is not None:
        return {"blob_deleted": False, "still_used_elsewhere": True, "cache_entries": 0}
    if isinstance(core.blobs, FileBlobStore):
        # Kept only if someone uploaded the same content again after the purge began.
        collect_blob(core.blobs.root / content_hash[:2] / content_hash[2:], since)
    else:
        core.blobs.delete(content_hash)
    return {"blob_deleted": not core.blobs.exists(content_hash), "still_used_elsewhere": False,
            "cache_entries": delete_feature_cache(core.settings.cache_dir, content_hash)}
