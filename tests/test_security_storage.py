"""Storage security: stored paths stay inside their store (restore, read, delete), restores trust
nothing in the archive and are all-or-nothing, labels cannot name folders outside an export, and
one SQLite data dir has one server."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from dyntrain.ops.backup import backup, restore
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core, hold_data_dir
from dyntrain.datasets.changes import Upload, add_samples, validate_label
from dyntrain.kernel.errors import Conflict, Invalid
from dyntrain.ops.housekeeping import gc
from dyntrain.kernel.projects import create_project, project_row
from dyntrain.registry.models import register_model
from dyntrain.storage.files import UnsafePath, path_inside
from dyntrain.storage.rows import ModelVersionRow, SampleRow
from tests.conftest import png_bytes

runner = CliRunner()


def _two_models(core, tmp_path) -> int:
    """Project "p" (keep one model version) with versions 1 and 2; returns its id."""
    create_project(core, "p", settings={"auto_train": False, "keep_model_versions": 1})
    add_samples(core, "p", [Upload("a.png", png_bytes(1)), Upload("b.png", png_bytes(2))], ["a", "b"])
    with core.db.read() as s:
        pid = project_row(s, "p").id
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"model bytes")
    for _ in range(2):
        register_model(core, pid, onnx, {"labels": ["a", "b"]}, run_id=None)
    return pid


def _forge_path(core, version: int, victim: Path) -> str:
    """Point a version's stored path at ``victim`` outside the data dir, as a forged database would."""
    key = os.path.relpath(victim, core.settings.model_dir)
    assert key.startswith("..")
    with core.db.write() as s:
        s.execute(update(ModelVersionRow).where(ModelVersionRow.version == version).values(path=key))
    return key


def _victim(tmp_path) -> Path:
    victim = tmp_path / "outside" / "passwd"
    victim.parent.mkdir()
    victim.write_text("root:x:0:0")
    return victim


# -- finding 1: stored paths on read and delete ---------------------------------------------------

def test_path_inside_refuses_escapes_and_symlinks(tmp_path):
    root = tmp_path / "models"
    (root / "p").mkdir(parents=True)
    assert path_inside(root, "p/v1.onnx") == (root / "p" / "v1.onnx").resolve()
    (root / "link").symlink_to(tmp_path)
    for key in ("../../etc/passwd", "/etc/passwd", "link/x", "", ".", "p/../..", "a\0b"):
        with pytest.raises(UnsafePath, match="outside"):
            path_inside(root, key)


def test_s3_model_keys_stay_under_the_prefix(tmp_path):
    from dyntrain.storage.artifacts import S3Artifacts

    calls = []

    class Client:  # records what would reach the bucket
        def __getattr__(self, name):
            return lambda **kw: calls.append((name, kw))

    store = S3Artifacts("s3://bucket/prod", tmp_path / "blobs", tmp_path / "models", client=Client())
    assert store._key("p/v1.onnx") == "prod/models/p/v1.onnx"
    for key in ("../other/x.onnx", "p/../../x", "/abs", "p//x", "./p", "p\\..\\x"):
        with pytest.raises(UnsafePath):
            store.model_file(key)
        with pytest.raises(UnsafePath):
            store.delete_model(key)
    assert calls == []  # refused before anything was asked of the bucket


def test_forged_model_path_is_neither_served_nor_deleted(client, core, tmp_path):
    _two_models(core, tmp_path)
    victim = _victim(tmp_path)
    _forge_path(core, 1, victim)
    r = client.get("/api/v1/projects/p/models/1/file")
    assert r.status_code == 404 and "outside" in r.json()["error"]["message"]
    assert b"root:x" not in r.content
    assert client.get("/api/v1/projects/p/models/2/file").content == b"model bytes"

    core.settings.gc_grace_s = 0
    for dry_run in (True, False):  # keep_model_versions=1: version 1 goes, its "file" must not
        report = gc(core, dry_run=dry_run)
        assert report.removed_models == ["p v1"]
        assert victim.read_text() == "root:x:0:0"


def test_gc_never_deletes_through_a_planted_work_folder_link(core, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    link = core.settings.data_dir / "run-999-abc"
    link.symlink_to(outside)
    os.utime(link, (0, 0), follow_symlinks=False)
    os.utime(outside, (0, 0))
    core.settings.gc_grace_s = 0
    gc(core)
    assert (outside / "keep.txt").read_text() == "keep"


# -- finding 1: restore trusts nothing ------------------------------------------------------------

@pytest.fixture
def sqlite_core(tmp_path):
    c = Core.create(Settings(data_dir=tmp_path / "data", seed_demo=False, scheduler_enabled=False))
    yield c
    c.db.dispose()


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def _write(archive: Path, members) -> Path:
    with tarfile.open(archive, "w") as tar:
        for info, data in members:
            info = tarfile.TarInfo(info.name) if isinstance(info, str) else info
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return archive


def _tampered(good: Path, out: Path, change) -> Path:
    """A copy of the backup ``good`` with ``change(members)`` applied to its (info, data) list."""
    members = _members(good)
    change(members)
    return _write(out, members)


def _refused(target: Settings, archive: Path, match: str) -> None:
    """Restore is refused with ``match``, and leaves nothing behind: no data dir, no staging folder."""
    before = set(target.data_dir.parent.iterdir())
    with pytest.raises(Invalid, match=match):
        restore(target, archive)
    assert not target.data_dir.exists()
    assert set(target.data_dir.parent.iterdir()) == before


def _good_backup(core, tmp_path) -> Path:
    _two_models(core, tmp_path)
    (core.settings.data_dir / "webhook-secret").write_text("s3cret")
    backup(core.settings, tmp_path / "good.tar")
    return tmp_path / "good.tar"


def _target(tmp_path, name="restored") -> Settings:
    (tmp_path / "targets").mkdir(exist_ok=True)
    return Settings(data_dir=tmp_path / "targets" / name, seed_demo=False, scheduler_enabled=False)


def test_restore_refuses_a_database_naming_files_outside_the_store(sqlite_core, tmp_path):
    _two_models(sqlite_core, tmp_path)
    _forge_path(sqlite_core, 1, _victim(tmp_path))
    manifest = backup(sqlite_core.settings, tmp_path / "forged.tar")
    assert any("outside the model store" in m for m in manifest["missing"])  # never copied into the archive
    assert not any(m.name.endswith("passwd") for m, _ in _members(tmp_path / "forged.tar"))
    _refused(_target(tmp_path), tmp_path / "forged.tar", "outside")


def test_restore_checks_blob_and_model_hashes(sqlite_core, tmp_path):
    good = _good_backup(sqlite_core, tmp_path)

    def flip(prefix, suffix=""):
        def change(members):
            i = next(i for i, (m, _) in enumerate(members) if m.name.startswith(prefix) and m.name.endswith(suffix))
            members[i] = (members[i][0], members[i][1] + b"!")
        return change

    _refused(_target(tmp_path), _tampered(good, tmp_path / "blob.tar", flip("blobs/")), "content hash")
    _refused(_target(tmp_path), _tampered(good, tmp_path / "model.tar", flip("models/", ".onnx")), "sha256")
    # The untouched backup restores.
    restore(_target(tmp_path), good)


def test_restore_refuses_links_devices_and_duplicates(sqlite_core, tmp_path):
    good = _good_backup(sqlite_core, tmp_path)
    secret = next(m for m, _ in _members(good) if m.name == "files/webhook-secret")

    def add(name, data=None, **attrs):
        info = tarfile.TarInfo(name)
        for k, v in attrs.items():
            setattr(info, k, v)
        return lambda members: members.append((info, data))

    cases = {
        "symlink": add("files/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        "hardlink": add("files/hard", type=tarfile.LNKTYPE, linkname="files/webhook-secret"),
        "device": add("files/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
        "fifo": add("files/fifo", type=tarfile.FIFOTYPE),
    }
    for name, change in cases.items():
        _refused(_target(tmp_path), _tampered(good, tmp_path / f"{name}.tar", change), "unexpected entry")
    dup = _tampered(good, tmp_path / "dup.tar", lambda members: members.append((secret, b"evil")))
    _refused(_target(tmp_path), dup, "twice")
    # A second database (as files/dyntrain.db, over the real one) is a duplicate too, or refused.
    db_twice = _tampered(good, tmp_path / "db2.tar",
                         lambda members: members.insert(1, (tarfile.TarInfo("files/dyntrain.db"), b"x")))
    _refused(_target(tmp_path), db_twice, "unexpected entry|twice")


def test_restore_is_all_or_nothing(sqlite_core, tmp_path):
    """A bad entry after the database, blobs and models: nothing of them reaches the target."""
    good = _good_backup(sqlite_core, tmp_path)
    late = _tampered(good, tmp_path / "late.tar",
                     lambda members: members.append((tarfile.TarInfo("files/../../escape"), b"x")))
    target = _target(tmp_path)
    _refused(target, late, "unexpected entry")
    assert not (tmp_path / "escape").exists()
    # An existing empty data dir stays empty.
    target.data_dir.mkdir()
    with pytest.raises(Invalid):
        restore(target, late)
    assert list(target.data_dir.iterdir()) == []
    restore(target, good)
    assert (target.data_dir / "webhook-secret").read_text() == "s3cret"


def test_restore_normalises_modes_and_writes_owner_only(sqlite_core, tmp_path):
    good = _good_backup(sqlite_core, tmp_path)

    def setuid(members):
        for info, _ in members:
            info.mode = 0o6777
    target = _target(tmp_path)
    restore(target, _tampered(good, tmp_path / "modes.tar", setuid))
    files = [p for p in target.data_dir.rglob("*") if p.is_file()]
    assert len(files) > 5
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}
    assert stat.S_IMODE(target.data_dir.stat().st_mode) == 0o700


def test_backup_database_and_data_dir_are_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        core = Core.create(Settings(data_dir=tmp_path / "fresh", seed_demo=False, scheduler_enabled=False))
        create_project(core, "p", settings={"auto_train": False})
        assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "fresh" / "dyntrain.db").stat().st_mode) == 0o600
        for name in ("b.tar", "b.tar.gz"):
            backup(core.settings, tmp_path / name)
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        core.db.dispose()
    finally:
        os.umask(old)


# -- finding 2: labels that name folders, and export ----------------------------------------------

@pytest.mark.parametrize("label", [".", "..", " .. ", "a/b", "a\\b", "a\0b", "   ", "é" * 130, "\ud800x"])
def test_labels_that_cannot_be_folder_names_are_refused(label):
    with pytest.raises(Invalid):
        validate_label(label)


def test_every_label_entry_point_refuses_dot_dot(client, core, tmp_path):
    create_project(core, "p", settings={"auto_train": False})
    api = "/api/v1/projects/p"
    r = client.post(f"{api}/samples", files=[("files", ("a.png", png_bytes(1)))], data={"labels": [".."]})
    assert r.status_code == 422 and "parent folder" in str(r.json())
    sample = client.post(f"{api}/samples", files=[("files", ("a.png", png_bytes(1)))],
                         data={"labels": ["ok"]}).json()["samples"][0]
    r = client.patch(f"{api}/samples/{sample['id']}", json={"label": "."})
    assert r.status_code == 422 and "current or parent folder" in r.json()["error"]["message"]
    r = client.patch(f"{api}/classes/ok", json={"label": ".."})
    assert r.status_code == 422 and "parent folder" in r.json()["error"]["message"]
    r = client.post(f"{api}/classes", json={"label": "a/b"})
    assert r.status_code == 422 and "slashes" in r.json()["error"]["message"]
    assert [c["label"] for c in client.get(f"{api}/classes").json()] == ["ok"]


def test_feedback_and_add_to_training_refuse_dot_dot(client, core, tmp_path):
    from dyntrain.serving.predict import predict_items
    from tests.test_backup import _served_model

    _served_model(core, tmp_path)  # project "digits" with a model in service
    pid = predict_items(core, "digits", [("x.png", png_bytes(9))])[0]["prediction_id"]
    api = f"/api/v1/projects/digits/predictions/{pid}"
    r = client.post(f"{api}/add-to-training", data={"label": ".."})
    assert r.status_code == 422 and "parent folder" in r.json()["error"]["details"][0]["reason"]
    r = client.post(f"{api}/feedback", json={"label": "..", "add_to_training": True})
    assert r.status_code == 422 and "parent folder" in r.json()["error"]["message"]
    assert ".." not in [c["label"] for c in client.get("/api/v1/projects/digits/classes").json()]


def _legacy_label(core, label: str) -> None:
    """A label stored before labels were checked."""
    with core.db.write() as s:
        s.execute(update(SampleRow).values(label=label))


def test_export_refuses_legacy_dot_dot_labels_up_front(live_server, core, tmp_path):
    from dyntrain.cli import app

    create_project(core, "p", settings={"auto_train": False})
    add_samples(core, "p", [Upload("a.png", png_bytes(1)), Upload("b.png", png_bytes(2))], ["x", "y"])
    _legacy_label(core, "..")
    out = tmp_path / "exp" / "out"
    r = runner.invoke(app, ["export", "p", "--out", str(out), "--url", live_server.url])
    assert r.exit_code == 1 and "cannot be folder names" in " ".join(r.output.split()), r.output
    assert not (tmp_path / "exp").exists()  # nothing written: not beside --out, not inside


def test_export_shortens_long_names_and_stays_inside_out(live_server, core, tmp_path):
    from dyntrain.cli import app

    create_project(core, "p", settings={"auto_train": False})
    long_name = "é" * 200 + ".png"  # 404 bytes: more than a file name may hold
    add_samples(core, "p", [Upload(long_name, png_bytes(1)), Upload("..", png_bytes(2)),
                            Upload(".hidden.png", png_bytes(3))], ["x", "x", "x"])
    out = tmp_path / "out"
    before = set(tmp_path.iterdir())
    for _ in range(2):  # deterministic: a second export names the long file the same way
        r = runner.invoke(app, ["export", "p", "--out", str(out), "--url", live_server.url])
        assert r.exit_code == 0, r.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert all(len(os.fsencode(p.name)) <= 255 for p in out.rglob("*"))
    assert all(f.startswith("x/") and not Path(f).name.startswith(".") for f in files)
    assert len([f for f in files if f.endswith(".png") and "é" in f]) == 2  # first export + id-prefixed copy
    assert set(tmp_path.iterdir()) == before | {out}  # nothing beside --out


# -- finding 3: one server per SQLite data dir ----------------------------------------------------

def test_hold_data_dir_locks_sqlite_only(tmp_path):
    settings = Settings(data_dir=tmp_path / "d")
    first = hold_data_dir(settings)
    try:
        with pytest.raises(Conflict, match="already using"):
            hold_data_dir(settings)
    finally:
        first.close()
    hold_data_dir(settings).close()  # released with the file
    assert hold_data_dir(Settings(data_dir=tmp_path / "pg", database_url="postgresql+psycopg://h/db")) is None


@pytest.mark.slow
def test_second_server_on_one_sqlite_data_dir_refuses_to_start(tmp_path):
    from tests.scale.servers import ServerProcess

    data = tmp_path / "data"
    first = ServerProcess(data, {"DYNTRAIN_SCHEDULER_ENABLED": "false"}).start()
    try:
        second = ServerProcess(data, {"DYNTRAIN_SCHEDULER_ENABLED": "false"})
        with pytest.raises(AssertionError, match="exited with 2"):
            second.start(timeout=60)
        assert "already using" in second.tail() and str(first.pid) in second.tail()
        assert first.health()["status"] == "ok"
        first.kill()  # SIGKILL: the OS drops the lock with the process
        third = ServerProcess(data, {"DYNTRAIN_SCHEDULER_ENABLED": "false"}).start()
        third.stop()
        third.proc.wait(30)
    finally:
        first.kill()
