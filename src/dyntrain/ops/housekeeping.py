"""Housekeeping: retention of prediction records and inputs, old model versions, feature caches
of content no data uses any more, and orphan files — never anything still referenced.

Never deleted:

* a blob named by a sample (active, or staged in an open upload batch), by an item of any
  dataset version (old ones included, so every run's data stays replayable), or by a
  prediction whose input is still stored (its input, and the files its answer kept: a mask's
  PNG, see ``Target.output_files``);
* a model version among its project's ``keep_model_versions`` newest, one an alias points
  at or could roll back to, one served here, or one a running training needs;
* any file younger than ``gc_grace_s``: an upload in progress has its blob before its row,
  a model being registered has its file before its version row.

The leader runs :func:`gc` every ``gc_interval_s`` (``scheduler/runner.py``); ``POST
/api/v1/admin/gc`` and ``dyntrain gc [--dry-run]`` run it by hand.

>>> report = gc(core, dry_run=True)  # doctest: +SKIP
>>> print("\\n".join(report.lines()))  # doctest: +SKIP
orphan blobs             3 files  1.2 MB
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, func, not_, select, update

from ..kernel.core import Core
from ..kernel.errors import Conflict
from ..kernel.project_settings import ProjectSettings
from ..storage.blobs import FileBlobStore
from ..storage.files import UnsafePath, path_inside
from ..storage.rows import (
    AliasRow, ModelVersionRow, PredictionRow, ProjectRow, RunRow, SampleRow, VersionItemRow, utcnow,
)

__all__ = ["Freed", "GcReport", "gc", "content_in_use", "feature_cache_files", "delete_feature_cache",
           "collect_blob", "human_bytes"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RUNNING = threading.Lock()
log = logging.getLogger(__name__)


@dataclass
class Freed:
    """What one category freed (or would free, in a dry run)."""

    count: int = 0  # records, model versions, cache entries or blob files
    files: int = 0  # files deleted (stored inputs: input files; model versions: their ONNX files)
    bytes: int = 0


@dataclass
class GcReport:
    """Per category: how many and how many bytes. ``removed_models`` names each model version."""

    dry_run: bool
    prediction_records: Freed = field(default_factory=Freed)
    stored_inputs: Freed = field(default_factory=Freed)
    model_versions: Freed = field(default_factory=Freed)
    model_files: Freed = field(default_factory=Freed)  # files of no version (a deleted project's, crash leftovers)
    feature_cache: Freed = field(default_factory=Freed)
    orphan_blobs: Freed = field(default_factory=Freed)
    work_dirs: Freed = field(default_factory=Freed)  # temporary folders of runs that died (killed process)
    removed_models: list[str] = field(default_factory=list)
    seconds: float = 0.0

    CATEGORIES = ("prediction_records", "stored_inputs", "model_versions", "model_files", "feature_cache",
                  "orphan_blobs", "work_dirs")

    @property
    def total_bytes(self) -> int:
        return sum(getattr(self, c).bytes for c in self.CATEGORIES)

    @property
    def anything(self) -> bool:
        return any(getattr(self, c).count or getattr(self, c).files for c in self.CATEGORIES)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total_bytes"] = self.total_bytes
        return out

    def lines(self) -> list[str]:
        """A readable report, one line per category."""
        return report_lines(self.to_dict())


_LABELS = {
    "prediction_records": ("prediction records", "records"),
    "stored_inputs": ("stored prediction inputs", "inputs"),
    "model_versions": ("old model versions", "versions"),
    "model_files": ("orphan model files", "files"),
    "feature_cache": ("feature cache entries", "entries"),
    "orphan_blobs": ("orphan blobs", "files"),
    "work_dirs": ("dead runs' work folders", "folders"),
}


def report_lines(report: dict[str, Any]) -> list[str]:
    """Lines for a report given as :meth:`GcReport.to_dict` (the API's JSON); used by the CLI."""
    verb = "would free" if report["dry_run"] else "freed"
    lines = []
    for key, (label, unit) in _LABELS.items():
        c = report[key]
        extra = f" ({c['files']} files)" if key in ("stored_inputs", "model_versions") and c["files"] else ""
        lines.append(f"{label:<26}{c['count']:>7} {unit:<8}{extra:<14}{human_bytes(c['bytes']):>10}")
    if report["removed_models"]:
        lines.append(("would remove " if report["dry_run"] else "removed ") + ", ".join(report["removed_models"][:30])
                     + (" …" if len(report["removed_models"]) > 30 else ""))
    lines.append(f"{verb} {human_bytes(report['total_bytes'])} in {report['seconds']:.1f} s")
    return lines


def human_bytes(n: int) -> str:
    """>>> human_bytes(1536)
    '1.5 KB'
    """
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


@dataclass(frozen=True)
class _Policy:
    project_id: int
    name: str
    inputs_before: datetime  # stored inputs older than this are forgotten
    records_before: datetime | None  # records older than this are deleted (None = kept forever)
    keep: int


def gc(core: Core, *, dry_run: bool = False, actor: str = "housekeeping", now: datetime | None = None) -> GcReport:
    """Apply every retention rule once and delete what nothing references; ``dry_run`` only counts.

    >>> gc(core).orphan_blobs  # doctest: +SKIP
    Freed(count=2, files=0, bytes=20480)
    """
    if not _RUNNING.acquire(blocking=False):
        raise Conflict("housekeeping is already running in this process; try again when it has finished")
    try:
        started = time.monotonic()
        now = now or utcnow()
        cutoff_ts = now.timestamp() - core.settings.gc_grace_s  # files touched after this are too fresh
        report = GcReport(dry_run)
        policies = _policies(core, now)
        forgotten = _predictions(core, policies, report, dry_run)
        _model_versions(core, policies, report, dry_run, now - timedelta(seconds=core.settings.gc_grace_s))
        _orphan_model_files(core, report, dry_run, cutoff_ts)
        used = content_in_use(core)
        _feature_cache(core, used, report, dry_run, cutoff_ts)
        stored = _stored_inputs(core, policies if dry_run else None)
        _blobs(core, used | stored, forgotten, report, dry_run, cutoff_ts)
        _work_dirs(core, report, dry_run, cutoff_ts)
        report.seconds = round(time.monotonic() - started, 3)
        if not dry_run and report.anything:
            from ..access import audit

            log.info("housekeeping freed %s: %s", human_bytes(report.total_bytes),
                     ", ".join(f"{c} {getattr(report, c).count}" for c in report.CATEGORIES
                               if getattr(report, c).count))
            audit.record(core, actor, "housekeeping", None, **{c: asdict(getattr(report, c))
                                                               for c in report.CATEGORIES},
                         removed_models=report.removed_models[:100], total_bytes=report.total_bytes)
        return report
    finally:
        _RUNNING.release()


# -- predictions ---------------------------------------------------------------------------

def _policies(core: Core, now: datetime) -> list[_Policy]:
    with core.db.read() as s:
        rows = s.execute(select(ProjectRow.id, ProjectRow.name, ProjectRow.settings)).all()
    out = []
    for pid, name, raw in rows:
        settings = ProjectSettings(**(raw or {}))
        inputs_before = now - timedelta(days=settings.prediction_retention_days)
        records_before = None
        if settings.prediction_record_retention_days is not None:
            records_before = now - timedelta(days=settings.prediction_record_retention_days)
            inputs_before = max(inputs_before, records_before)  # a deleted record's input goes with it
        out.append(_Policy(pid, name, inputs_before, records_before, settings.keep_model_versions))
    return out


def _predictions(core: Core, policies: list[_Policy], report: GcReport, dry_run: bool) -> set[str]:
    """Forget expired inputs and delete expired records; returns the content hashes forgotten."""
    forgotten: set[str] = set()
    session = core.db.read() if dry_run else core.db.write()
    with session as s:
        for p in policies:
            inputs = (PredictionRow.project_id == p.project_id, PredictionRow.input_stored.is_(True),
                      PredictionRow.created_at < p.inputs_before)
            forgotten.update(h for h in s.scalars(select(PredictionRow.input_hash).where(*inputs).distinct()) if h)
            forgotten.update(output_blobs_kept(s, *inputs))  # what the model said goes with what it was asked
            report.stored_inputs.count += s.scalar(select(func.count()).select_from(PredictionRow).where(*inputs))
            records = (PredictionRow.project_id == p.project_id,
                       PredictionRow.created_at < (p.records_before or p.inputs_before))
            if p.records_before is not None:
                report.prediction_records.count += s.scalar(
                    select(func.count()).select_from(PredictionRow).where(*records))
            if not dry_run:
                s.execute(update(PredictionRow).where(*inputs).values(input_stored=False)
                          .execution_options(synchronize_session=False))
                if p.records_before is not None:
                    s.execute(delete(PredictionRow).where(*records).execution_options(synchronize_session=False))
    return forgotten


def _stored_inputs(core: Core, expiring: list[_Policy] | None) -> set[str]:
    """Content hashes of inputs still stored (in a dry run: that the run would keep)."""
    where = [PredictionRow.input_stored.is_(True), PredictionRow.input_hash.is_not(None)]
    for p in expiring or ():
        where.append(not_(and_(PredictionRow.project_id == p.project_id, PredictionRow.created_at < p.inputs_before)))
    with core.db.read() as s:
        return set(s.scalars(select(PredictionRow.input_hash).where(*where).distinct())) | output_blobs_kept(s, *where)


def output_blobs_kept(s, *where) -> set[str]:
    """Blobs kept by the outputs of predictions whose input is stored (and match ``where``), in
    projects whose task keeps files with its records (see tasks.file_keepers)."""
    from .. import tasks

    keepers = tasks.file_keepers()
    if not keepers:
        return set()
    projects = dict(s.execute(select(ProjectRow.id, ProjectRow.task).where(ProjectRow.task.in_(keepers))).all())
    if not projects:
        return set()
    rows = s.execute(select(PredictionRow.project_id, PredictionRow.output).where(
        PredictionRow.project_id.in_(list(projects)), PredictionRow.input_stored.is_(True), *where))
    return tasks.output_blobs((projects[pid], output) for pid, output in rows)


def content_in_use(core: Core) -> set[str]:
    """Every content hash a sample (any status, any project) or a dataset version item names, every
    blob their annotations or a prediction's correction name (a mask's PNG), and every picture
    of a catalogue entry (any entry: older versions' catalogues name them too)."""
    from ..storage.rows import CatalogueRow

    with core.db.read() as s:
        return (set(s.scalars(select(SampleRow.content_hash).distinct()))
                | set(s.scalars(select(VersionItemRow.content_hash).distinct())) | annotation_blobs_in_use(s)
                | set(s.scalars(select(CatalogueRow.image).where(CatalogueRow.image.is_not(None)).distinct())))


def annotation_blobs_in_use(s) -> set[str]:
    """Blobs named by annotations (samples, dataset versions, prediction corrections) of projects
    whose task keeps some there (see tasks.blob_holders)."""
    from .. import tasks
    from ..storage.rows import DatasetVersionRow, PredictionRow, ProjectRow

    holders = tasks.blob_holders()
    if not holders:
        return set()
    projects = dict(s.execute(select(ProjectRow.id, ProjectRow.task).where(ProjectRow.task.in_(holders))).all())
    if not projects:
        return set()
    ids = list(projects)
    rows = [*s.execute(select(SampleRow.project_id, SampleRow.annotation).where(
                SampleRow.project_id.in_(ids), SampleRow.annotation.is_not(None))),
            *s.execute(select(DatasetVersionRow.project_id, VersionItemRow.annotation)
                       .join(DatasetVersionRow, DatasetVersionRow.id == VersionItemRow.version_id)
                       .where(DatasetVersionRow.project_id.in_(ids), VersionItemRow.annotation.is_not(None))),
            *s.execute(select(PredictionRow.project_id, PredictionRow.feedback).where(
                PredictionRow.project_id.in_(ids), PredictionRow.feedback.is_not(None)))]
    return tasks.annotation_blobs((projects[pid], annotation) for pid, annotation in rows)


# -- model versions -----------------------------------------------------------------------

def needed_versions(s, project_id: int) -> set[int]:
    """Versions an alias points at, the one each alias would roll back to, and running runs' models."""
    from ..registry.models import rollback_target

    needed: set[int] = set()
    for alias, version in s.execute(select(AliasRow.name, AliasRow.version).where(AliasRow.project_id == project_id)):
        needed.add(version)
        previous = rollback_target(s, project_id, alias)
        if previous is not None:
            needed.add(previous)
    needed.update(s.scalars(select(RunRow.model_version).where(
        RunRow.project_id == project_id, RunRow.status == "running", RunRow.model_version.is_not(None))))
    return needed


def _model_versions(core: Core, policies: list[_Policy], report: GcReport, dry_run: bool,
                    fresh_after: datetime) -> None:
    served = core._live.served_versions() if core._live is not None else {}
    doomed: list[str] = []
    session = core.db.read() if dry_run else core.db.write()
    with session as s:
        for p in policies:
            rows = s.execute(select(ModelVersionRow.id, ModelVersionRow.version, ModelVersionRow.path,
                                    ModelVersionRow.created_at)
                             .where(ModelVersionRow.project_id == p.project_id)
                             .order_by(ModelVersionRow.version.desc())).all()
            if len(rows) <= p.keep:
                continue
            if not dry_run:  # serialise with promotions (they lock the project row too)
                s.execute(select(ProjectRow.id).where(ProjectRow.id == p.project_id).with_for_update())
            keep = needed_versions(s, p.project_id)
            if p.project_id in served:
                keep.add(served[p.project_id])
            for row in rows[p.keep:]:
                if row.version in keep or row.created_at > fresh_after:
                    continue
                doomed.append(row.path)
                report.removed_models.append(f"{p.name} v{row.version}")
                report.model_versions.count += 1
                if not dry_run:
                    s.execute(delete(ModelVersionRow).where(ModelVersionRow.id == row.id))
    # Files go after the rows commit: a crash in between leaves an orphan file, collected next time.
    for key in doomed:
        try:
            freed = _model_bytes(core, key) if dry_run else _delete_model(core, key)
        except UnsafePath as exc:  # a forged or damaged row: its version goes, nothing outside the store
            log.warning("housekeeping left a model file alone: %s", exc.message)
            continue
        report.model_versions.files += 1 if freed else 0
        report.model_versions.bytes += freed


def _model_bytes(core: Core, key: str) -> int:
    path = path_inside(core.settings.model_dir, key, "model file")
    return sum(p.stat().st_size for p in (path, path.with_suffix(".json")) if p.exists())


def _delete_model(core: Core, key: str) -> int:
    if core.artifacts is not None:
        return core.artifacts.delete_model(key)
    from ..storage.artifacts import PathArtifacts

    return PathArtifacts(core.settings.blob_dir, core.settings.model_dir).delete_model(key)


def _orphan_model_files(core: Core, report: GcReport, dry_run: bool, cutoff_ts: float) -> None:
    """Model files no version row names (a deleted project's, a crashed registration's)."""
    root = core.settings.model_dir
    if not root.is_dir():
        return
    found = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_mtime <= cutoff_ts:
                found.append((path, st.st_size))
    if not found:
        return
    with core.db.read() as s:  # read after listing: a row committed meanwhile is seen
        known = set(s.scalars(select(ModelVersionRow.path)))
    for path, size in found:
        key = path.relative_to(root).with_suffix(".onnx").as_posix()
        if not path.name.startswith(".tmp-") and key in known:
            continue
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
        report.model_files.count += 1
        report.model_files.bytes += size


# -- feature caches -----------------------------------------------------------------------

def feature_cache_files(cache_dir: Path) -> Iterator[tuple[Path, str]]:
    """Every cached feature file with the content hash it was computed from.

    Keys are a blob's sha256 or ``sha256.<augmentation>.<seed>`` (``learners/features.py``,
    ``learners/text.py``); files whose name names no content are never yielded.
    """
    root = Path(cache_dir) / "features"
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".npy"):
                content = name[:-4].split(".", 1)[0]
                if _HEX64.match(content):
                    yield Path(dirpath) / name, content


def delete_feature_cache(cache_dir: Path, content_hash: str) -> int:
    """Delete every cached feature of one content (all kinds, augmented copies too); returns the count."""
    n = 0
    for path, content in feature_cache_files(cache_dir):
        if content == content_hash:
            try:
                path.unlink()
                n += 1
            except FileNotFoundError:
                pass
    return n


def _feature_cache(core: Core, used: set[str], report: GcReport, dry_run: bool, cutoff_ts: float) -> None:
    for path, content in feature_cache_files(core.settings.cache_dir):
        if content in used:
            continue
        try:
            st = path.stat()
            if st.st_mtime > cutoff_ts:
                continue
            if not dry_run:
                path.unlink()
        except FileNotFoundError:
            continue
        report.feature_cache.count += 1
        report.feature_cache.bytes += st.st_size


# -- blobs --------------------------------------------------------------------------------

def collect_blob(path: Path, cutoff_ts: float) -> int | None:
    """Delete a blob file unless it was written or re-uploaded after ``cutoff_ts``; returns the bytes
    freed, or None when the file stays (or was gone already).

    The file is first renamed aside, then its time re-checked: an upload that found it just
    before (``FileBlobStore.put`` touches an existing file) is seen and the file put back; an
    upload just after finds no file and writes a fresh one.
    """
    aside = path.with_name(f".gc-{path.name}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    st = aside.stat()
    if st.st_mtime > cutoff_ts:
        os.replace(aside, path)
        return None
    aside.unlink()
    return st.st_size


def _blob_files(root: Path) -> Iterator[tuple[str | None, Path]]:
    """(digest, path) of each blob; (None, path) for a leftover temp file of an interrupted write."""
    if not root.is_dir():
        return
    for sub in os.scandir(root):
        if not sub.is_dir(follow_symlinks=False) or len(sub.name) != 2:  # a linked folder leads elsewhere
            continue
        for f in os.scandir(sub.path):
            if f.name.startswith((".tmp-", ".gc-")):
                yield None, Path(f.path)
            elif _HEX64.match(sub.name + f.name):
                yield sub.name + f.name, Path(f.path)


def _blobs(core: Core, referenced: set[str], forgotten: set[str], report: GcReport, dry_run: bool,
           cutoff_ts: float) -> None:
    if not isinstance(core.blobs, FileBlobStore):
        # An object store (S3): delete the objects of forgotten inputs; orphan objects are not
        # listed (its local read-through cache is just a cache).
        for digest in sorted(forgotten - referenced):
            if not dry_run:
                core.blobs.delete(digest)
            report.stored_inputs.files += 1
        return
    for digest, path in _blob_files(core.blobs.root):
        if digest is not None and digest in referenced:
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if st.st_mtime > cutoff_ts:
            continue
        freed = st.st_size if dry_run else collect_blob(path, cutoff_ts) if digest else _unlink(path)
        if freed is None:
            continue
        if digest is not None and digest in forgotten:
            report.stored_inputs.files += 1
            report.stored_inputs.bytes += freed
        else:
            report.orphan_blobs.count += 1
            report.orphan_blobs.bytes += freed


# -- work folders of runs that died ------------------------------------------------------------

_WORK_DIR = re.compile(r"^run-(\d+)-")


def _work_dirs(core: Core, report: GcReport, dry_run: bool, cutoff_ts: float) -> None:
    """``run-<id>-*`` folders (scheduler/jobs.py) left by a killed process: its run is no longer running."""
    found = [(int(m.group(1)), p) for p in core.settings.data_dir.glob("run-*-*")
             # a link is never a work folder: one to data_dir/blobs would pass the inside-check below
             if p.is_dir() and not p.is_symlink() and (m := _WORK_DIR.match(p.name))]
    if not found:
        return
    with core.db.read() as s:
        running = set(s.scalars(select(RunRow.id).where(RunRow.id.in_([i for i, _ in found]),
                                                         RunRow.status == "running")))
    for run_id, path in found:
        if run_id in running or path.stat().st_mtime > cutoff_ts:
            continue
        try:
            path = path_inside(core.settings.data_dir, path.name, "work folder")
        except UnsafePath as exc:  # a link to elsewhere (planted, or a damaged restore): never delete through it
            log.warning("housekeeping left a work folder alone: %s", exc.message)
            continue
        files = [f for f in path.rglob("*") if f.is_file()]
        report.work_dirs.count += 1
        report.work_dirs.files += len(files)
        report.work_dirs.bytes += sum(f.stat().st_size for f in files)
        if not dry_run:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


def _unlink(path: Path) -> int | None:
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return None
