"""Backup and restore of an installation on SQLite: one archive holds everything.

A backup is a tar file (gzip-compressed when its name ends in ``.gz``/``.tgz``) with:

* ``manifest.json`` first — format, dyntrain version, date, schema revision, counts, bytes;
* ``dyntrain.db`` — a consistent snapshot taken with SQLite's online backup API, so the
  server keeps running (and writing) meanwhile;
* ``blobs/…`` — every blob the snapshot references (samples, dataset versions, stored
  prediction inputs), taken *after* the snapshot, so nothing it names is missing;
* ``models/…`` — every model version's ONNX file and card;
* ``files/…`` — the data dir's own small files (webhook and session secrets, admin token).

Feature caches are not included: they are recomputed on demand. On PostgreSQL, back up with
``pg_dump`` plus a copy of the artifact store instead (docs/deployment.md); this module says so.

These act on the data dir and the database directly — the one exception to "the CLI is a
client of the server" (``dyntrain backup`` / ``dyntrain restore``).

>>> backup(Settings(data_dir="dyntrain-data"), Path("dyntrain.tar"))  # doctest: +SKIP
>>> restore(Settings(data_dir="/srv/new-data"), Path("dyntrain.tar"))  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url

from .. import __version__
from ..kernel.config import Settings
from ..kernel.errors import Conflict, Invalid, NotFound
from ..storage.files import SERVER_LOCK, UnsafePath, path_inside

__all__ = ["backup", "restore", "read_manifest", "FORMAT", "FORMAT_VERSION"]

FORMAT = "dyntrain-backup"
FORMAT_VERSION = 1
DB_MEMBER = "dyntrain.db"
ProgressFn = Callable[[int, int], None]  # (bytes done, bytes in all)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_POSTGRES_HELP = ("the database is PostgreSQL: back it up with pg_dump (restore with pg_restore) and copy the "
                  "artifact store's blobs/ and models/ — see 'Backup and restore' in docs/deployment.md")
_S3_HELP = ("blobs and models live in an S3 bucket: back the bucket up with its own tools (versioning or "
            "replication) and the database with pg_dump — see 'Backup and restore' in docs/deployment.md")


def _sqlite_file(settings: Settings, doing: str) -> Path:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        raise Invalid(f"cannot {doing} here: {_POSTGRES_HELP}")
    if not url.database or url.database == ":memory:":
        raise Invalid(f"cannot {doing} an in-memory SQLite database")
    if settings.artifacts.startswith("s3://"):
        raise Invalid(f"cannot {doing} here: {_S3_HELP}")
    return Path(url.database).resolve()


def _own_file(name: str, db_file: Path) -> bool:
    """A data-dir file a backup carries (secrets, tokens): not the database or its -wal/-shm/-journal
    files, not the server lock (it belongs to a running process), nothing hidden."""
    return not name.startswith((".", db_file.name)) and name != SERVER_LOCK


def _own_files(settings: Settings, db_file: Path) -> list[Path]:
    """The data dir's top-level files worth keeping (secrets, tokens), not the database itself."""
    if not settings.data_dir.is_dir():
        return []
    return sorted(p for p in settings.data_dir.iterdir()
                  if p.is_file() and not p.is_symlink() and _own_file(p.name, db_file))


def _snapshot(db_file: Path, target: Path) -> None:
    """A consistent copy of a live database (SQLite's online backup API), as one self-contained file."""
    src = sqlite3.connect(str(db_file), timeout=30)
    try:
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)  # one step: a consistent read of the whole database
            dst.execute("PRAGMA journal_mode=DELETE")  # no -wal file beside the copy
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if check != "ok":
        raise Invalid(f"the database snapshot failed its integrity check: {check}")


def _inventory(db: Path) -> dict[str, Any]:
    """Schema revision, row counts, referenced blobs and model files of a database file."""
    conn = sqlite3.connect(str(db))
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        revision = one("SELECT version_num FROM alembic_version")
        counts = {t: one(f"SELECT count(*) FROM {t}") for t in
                  ("projects", "samples", "dataset_versions", "runs", "model_versions", "predictions")}
        hashes = {r[0] for r in conn.execute(
            "SELECT content_hash FROM samples UNION SELECT content_hash FROM dataset_version_items "
            "UNION SELECT input_hash FROM predictions WHERE input_stored AND input_hash IS NOT NULL")}
        hashes |= _annotation_blobs(conn) | _output_blobs(conn)
        models = [r[0] for r in conn.execute("SELECT path FROM model_versions ORDER BY project_id, version")]
    finally:
        conn.close()
    return {"revision": revision, "counts": counts, "hashes": sorted(hashes), "models": models}


def _annotation_blobs(conn: sqlite3.Connection) -> set[str]:
    """Blobs the snapshot's annotations name (a mask's PNG; see tasks.blob_holders)."""
    from .. import tasks

    holders = tasks.blob_holders()
    projects = {pid: task for pid, task in conn.execute("SELECT id, task FROM projects") if task in holders}
    if not projects:
        return set()
    marks = ",".join("?" * len(projects))
    rows = conn.execute(
        f"SELECT project_id, annotation FROM samples WHERE annotation IS NOT NULL AND project_id IN ({marks}) "
        "UNION ALL SELECT v.project_id, i.annotation FROM dataset_version_items i JOIN dataset_versions v "
        f"ON v.id = i.version_id WHERE i.annotation IS NOT NULL AND v.project_id IN ({marks}) "
        "UNION ALL SELECT project_id, feedback FROM predictions WHERE feedback IS NOT NULL "
        f"AND project_id IN ({marks})", [*projects] * 3)
    return tasks.annotation_blobs((projects[pid], annotation) for pid, annotation in rows)


def _output_blobs(conn: sqlite3.Connection) -> set[str]:
    """Blobs the snapshot's prediction records keep while their input is (a predicted mask's PNG;
    see tasks.file_keepers)."""
    from .. import tasks

    keepers = tasks.file_keepers()
    projects = {pid: task for pid, task in conn.execute("SELECT id, task FROM projects") if task in keepers}
    if not projects:
        return set()
    marks = ",".join("?" * len(projects))
    rows = conn.execute(f"SELECT project_id, output FROM predictions WHERE input_stored AND project_id IN ({marks})",
                        list(projects))
    return tasks.output_blobs((projects[pid], output) for pid, output in rows)


def backup(settings: Settings, out: Path, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Write a backup archive of the installation ``settings`` names; returns its manifest.

    Safe while the server runs. The archive is written under a temporary name and renamed,
    so ``out`` is either the previous file or the complete new one.
    """
    db_file = _sqlite_file(settings, "back up")
    if not db_file.exists():
        raise NotFound(f"no database at {db_file}: is {settings.data_dir} the data dir (--data-dir, "
                       "env DYNTRAIN_DATA_DIR)?")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".dyntrain-backup-") as tmp:
        snap = Path(tmp) / DB_MEMBER
        _snapshot(db_file, snap)
        inv = _inventory(snap)
        members: list[tuple[str, Path]] = []
        missing: list[str] = []
        for digest in inv["hashes"]:
            path = settings.blob_dir / digest[:2] / digest[2:]
            (members.append((f"blobs/{digest[:2]}/{digest[2:]}", path)) if path.is_file()
             else missing.append(f"blob {digest}"))
        for key in inv["models"]:
            try:
                onnx = path_inside(settings.model_dir, key, "model file")
            except UnsafePath:  # a damaged row: never copy a file from outside the store into the archive
                missing.append(f"model file {key} (outside the model store)")
                continue
            for path in (onnx, onnx.with_suffix(".json")):
                if path.is_file():
                    members.append((f"models/{Path(key).with_suffix(path.suffix).as_posix()}", path))
                elif path is onnx:
                    missing.append(f"model file {key}")
        members += [(f"files/{p.name}", p) for p in _own_files(settings, db_file)]
        sizes = [p.stat().st_size for _, p in members]
        total = snap.stat().st_size + sum(sizes)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "dyntrain_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "database": "sqlite", "schema_revision": inv["revision"], "counts": inv["counts"],
            "blobs": sum(1 for a, _ in members if a.startswith("blobs/")),
            "model_files": sum(1 for a, _ in members if a.startswith("models/") and a.endswith(".onnx")),
            "bytes": total, "missing": missing,
        }
        partial = out.with_name(f".{out.name}.partial")
        mode = "w:gz" if out.name.endswith((".gz", ".tgz")) else "w"
        try:
            partial.unlink(missing_ok=True)
            # Owner-only: the archive holds the server's secrets and everyone's data.
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode=mode) as tar:
                data = json.dumps(manifest, indent=2).encode()
                info = tarfile.TarInfo("manifest.json")
                info.size, info.mtime, info.mode = len(data), int(datetime.now().timestamp()), 0o644
                tar.addfile(info, io.BytesIO(data))
                done = snap.stat().st_size
                tar.add(snap, arcname=DB_MEMBER, recursive=False)
                if progress:
                    progress(done, total)
                for (arcname, path), size in zip(members, sizes):
                    tar.add(path, arcname=arcname, recursive=False)
                    done += size
                    if progress:
                        progress(done, total)
            os.replace(partial, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return manifest


def read_manifest(archive: Path) -> dict[str, Any]:
    """The manifest of a backup archive (its first member), checked to be one we can restore."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            first = tar.next()
            if first is None or first.name != "manifest.json" or not first.isfile():
                raise Invalid(f"{archive} is not a dyntrain backup (no manifest.json first)")
            manifest = json.load(tar.extractfile(first))
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise Invalid(f"cannot read {archive} as a dyntrain backup: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise Invalid(f"{archive} is not a dyntrain backup (format {manifest.get('format')!r})")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise Invalid(f"{archive} was written by a newer dyntrain ({manifest.get('dyntrain_version')}): "
                      "upgrade dyntrain to restore it")
    return manifest


def _known_revisions() -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ..storage.db import _MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}


def _not_empty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def restore(settings: Settings, archive: Path, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Unpack a backup into the EMPTY data dir (and artifact path) ``settings`` names.

    Nothing in the archive is trusted: every entry must be a regular file at an expected name
    (no links, devices or duplicates), blobs must hash to their names, model files to the
    sha256 their version row records, and every model path the database names must lie inside
    the model store. Files are written owner-only, whatever modes the archive claims.

    All of it is unpacked into temporary folders beside the targets, checked, and the schema
    migrated to this dyntrain's newest revision (an older backup restores into a newer
    release); only then are the folders renamed into place. A refused or failed restore leaves
    the targets as they were: absent or empty. Returns the backup's manifest.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise NotFound(f"no backup file at {archive}")
    db_file = _sqlite_file(settings, "restore")
    manifest = read_manifest(archive)
    if manifest["schema_revision"] not in _known_revisions():
        raise Invalid(f"the backup's schema revision {manifest['schema_revision']!r} is unknown to dyntrain "
                      f"{__version__}: it was made by a newer release; upgrade dyntrain first")
    folders = list(dict.fromkeys([settings.data_dir, settings.blob_dir, settings.model_dir]))
    for path in folders:
        if _not_empty(path):
            raise Conflict(f"{path} is not empty: restore only into an empty data dir (move the current one "
                           "aside, or name a new one with --data-dir)")
    if db_file.exists():
        raise Conflict(f"a database already exists at {db_file}: restore only into a new one")
    stage = _Staging(folders, db_file)
    try:
        model_hashes = _unpack(settings, archive, stage, db_file, int(manifest.get("bytes") or 0), progress)
        staged_db = stage.place(db_file)
        if not staged_db.is_file():
            raise Invalid(f"the backup {archive} holds no database")
        _check_models(settings, staged_db, model_hashes)
        from ..storage.db import Database

        db = Database(f"sqlite:///{staged_db}")
        try:
            db.upgrade()
        finally:
            db.dispose()
        stage.commit()
    finally:
        stage.discard()
    return manifest


class _Staging:
    """A temporary folder beside each restore target; :meth:`commit` renames them into place.

    Beside, not inside: on the same filesystem (a rename, not a copy) and invisible at the
    target until the end. A folder target must be absent or empty (``rename`` replaces an
    empty folder); a database file outside these folders gets a staging folder of its own.
    """

    def __init__(self, folders: list[Path], db_file: Path):
        self.targets: list[tuple[Path, Path]] = []  # (target, staged), outermost first
        self.temps: list[Path] = []
        try:
            for target in [*folders, db_file]:
                if any(target.is_relative_to(t) for t, _ in self.targets):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.restoring-"))  # mode 0700
                self.temps.append(tmp)
                self.targets.append((target, tmp if target is not db_file else tmp / db_file.name))
        except BaseException:
            self.discard()
            raise

    def place(self, final: Path) -> Path:
        """Where the file that belongs at ``final`` is staged."""
        for target, staged in self.targets:
            if final.is_relative_to(target):
                return staged / final.relative_to(target)
        raise AssertionError(f"{final} is under no restore target")  # pragma: no cover - _target's names

    def commit(self) -> None:
        # The data dir last: once it is in place, so is everything else.
        for target, staged in reversed(self.targets):
            os.replace(staged, target)

    def discard(self) -> None:
        """Remove whatever is still staged (everything, unless :meth:`commit` ran)."""
        import shutil

        for tmp in self.temps:
            shutil.rmtree(tmp, ignore_errors=True)


def _unpack(settings: Settings, archive: Path, stage: _Staging, db_file: Path, total: int,
            progress: ProgressFn | None) -> dict[str, str]:
    """Write every member to its staged place; returns the sha256 of each model file (by key)."""
    seen: set[Path] = set()
    model_hashes: dict[str, str] = {}
    done = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for i, member in enumerate(tar):
                if i == 0 or member.isdir():  # the manifest, read already; folders are made as needed
                    continue
                target = _target(settings, db_file, member)
                if target in seen:
                    raise Invalid(f"refusing the backup: {member.name!r} appears twice (a tampered archive)")
                seen.add(target)
                staged = stage.place(target)
                staged.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest = hashlib.sha256()
                source = tar.extractfile(member)
                # Owner-only, not the archive's mode: no setuid or exec bits, secrets stay private.
                fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    while chunk := source.read(1 << 20):
                        f.write(chunk)
                        digest.update(chunk)
                parts = PurePosixPath(member.name).parts
                if parts[0] == "blobs" and digest.hexdigest() != parts[1] + parts[2]:
                    raise Invalid(f"refusing the backup: blob {member.name!r} does not match its content hash")
                if parts[0] == "models":
                    model_hashes[PurePosixPath(*parts[1:]).as_posix()] = digest.hexdigest()
                done += member.size
                if progress:
                    progress(done, total)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise Invalid(f"the backup {archive} is damaged ({exc}); nothing was restored") from None
    return model_hashes


def _check_models(settings: Settings, db: Path, model_hashes: dict[str, str]) -> None:
    """Every model path the database names stays inside the model store and, when the archive
    holds its file, matches its recorded sha256; the archive holds no model file of no version."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT path, sha256 FROM model_versions").fetchall()
    except sqlite3.DatabaseError as exc:
        raise Invalid(f"refusing the backup: its database cannot be read ({exc})") from None
    finally:
        conn.close()
    expected: set[str] = set()
    for key, sha in rows:
        try:
            path_inside(settings.model_dir, key, "model file")
        except UnsafePath as exc:
            raise Invalid(f"refusing the backup: {exc.message}") from None
        card = PurePosixPath(key).with_suffix(".json").as_posix()
        expected.update((PurePosixPath(key).as_posix(), card))
        if key in model_hashes and model_hashes[key] != sha:
            raise Invalid(f"refusing the backup: model file {key!r} does not match the sha256 its version records")
    if stray := sorted(set(model_hashes) - expected):
        raise Invalid(f"refusing the backup: model files no version names: {', '.join(stray[:5])}")


def _target(settings: Settings, db_file: Path, member: tarfile.TarInfo) -> Path:
    """Where an archive member goes; anything unexpected or unsafe is refused.

    Only regular files (``isfile``: no symlinks, hard links, devices or fifos), at names this
    module writes, each resolved inside its folder."""
    name = member.name
    parts = PurePosixPath(name).parts
    if not member.isfile() or name.startswith("/") or ".." in parts or not parts or "\0" in name:
        raise Invalid(f"refusing the backup: unexpected entry {name!r}")
    if name == DB_MEMBER:
        return db_file
    if parts[0] == "blobs" and len(parts) == 3 and _HEX64.match(parts[1] + parts[2]) and len(parts[1]) == 2:
        return settings.blob_dir / parts[1] / parts[2]
    if parts[0] == "models" and len(parts) >= 2:
        return _inside(settings.model_dir, PurePosixPath(*parts[1:]).as_posix())
    if parts[0] == "files" and len(parts) == 2 and _own_file(parts[1], db_file):
        return _inside(settings.data_dir, parts[1])
    raise Invalid(f"refusing the backup: unexpected entry {name!r}")


def _inside(root: Path, relative: str) -> Path:
    """``root / relative``, refused unless it lies inside ``root`` (named as given, so staging maps it)."""
    try:
        path_inside(root, relative, "entry")
    except UnsafePath as exc:
        raise Invalid(f"refusing the backup: {exc.message}") from None
    return root / relative
