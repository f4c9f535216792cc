"""Housekeeping: every kind of reference is planted and survives; everything unreferenced goes."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from dyntrain.datasets.changes import Upload, add_samples, delete_sample, open_batch
from dyntrain.ops.housekeeping import gc
from dyntrain.kernel.projects import create_project, project_row
from dyntrain.registry.models import promote, register_model
from dyntrain.storage import sha256_hex
from dyntrain.storage.rows import ModelVersionRow, PredictionRow, RunRow, utcnow
from dyntrain.training import records

OLD = time.time() - 7200  # two hours ago: past the grace period the tests use


def _age(path, when=OLD):
    os.utime(path, (when, when))


def _blob(core, digest):
    return core.blobs.root / digest[:2] / digest[2:]


def _put_old(core, data: bytes) -> str:
    digest = core.blobs.put(data)
    _age(_blob(core, digest))
    return digest


def _cache(core, kind_dir: str, key: str, fresh: bool = False):
    path = core.settings.cache_dir / "features" / kind_dir / f"{key}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x93NUMPY fake")
    if not fresh:
        _age(path)
    return path


def _state(core):
    """Everything gc could touch, to check a dry run changes nothing."""
    files = sorted(str(p) for root in (core.settings.data_dir,) for p in root.rglob("*") if p.is_file()
                   and not p.name.startswith("dyntrain.db"))
    with core.db.read() as s:
        rows = (s.scalar(select(func.count()).select_from(ModelVersionRow)),
                s.scalar(select(func.count()).select_from(PredictionRow)),
                s.scalar(select(func.count()).select_from(PredictionRow).where(PredictionRow.input_stored.is_(True))))
    return files, rows


def _plant(core, make_png, tmp_path):
    create_project(core, "p", settings={"auto_train": False, "keep_model_versions": 1,
                                        "prediction_retention_days": 1, "prediction_record_retention_days": 30})
    create_project(core, "q", settings={"auto_train": False})
    old_only, run_data, current, staged = make_png(1), make_png(2), make_png(3), make_png(4)
    samples, _ = add_samples(core, "p", [Upload("a.png", old_only), Upload("b.png", run_data),
                                         Upload("c.png", current)], ["a", "b", "a"])  # v1
    delete_sample(core, "p", samples[0].id)  # v2: old_only is in v1 only
    with core.db.read() as s:
        pid = project_row(s, "p").id
    run_id = records.start_run(core, pid, None, 2, {})  # a run on v2, which holds run_data
    records.finish_run(core, run_id, "succeeded")
    delete_sample(core, "p", samples[1].id)  # v3: run_data only in v1, v2 (the run's)
    batch = open_batch(core, "p")
    add_samples(core, "p", [Upload("d.png", staged)], ["a"], batch=batch)  # staged, not committed
    h = {name: sha256_hex(data) for name, data in
         [("old_only", old_only), ("run_data", run_data), ("current", current), ("staged", staged)]}

    # Predictions: one past input retention, one past record retention, one fresh, one whose
    # input is also a sample's content.
    now = utcnow()
    h["input_expired"] = _put_old(core, b"input past retention")
    h["record_expired"] = _put_old(core, b"record past retention")
    h["input_fresh"] = _put_old(core, b"fresh prediction's input")
    with core.db.write() as s:
        for digest, age_days in [(h["input_expired"], 2), (h["record_expired"], 40), (h["input_fresh"], 0),
                                 (h["current"], 2)]:
            s.add(PredictionRow(project_id=pid, model_version=1, label="a", confidence=0.9, output={},
                                input_hash=digest, input_stored=True, created_at=now - timedelta(days=age_days)))

    # Model versions 1..6 (keep 1): v6 newest, v5 production, v4 the rollback target, v3 a running run's.
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really onnx, but a file")
    for _ in range(6):
        register_model(core, pid, onnx, {"labels": ["a", "b"]}, run_id=None)
    promote(core, "p", 4)
    promote(core, "p", 5)
    running = records.start_run(core, pid, None, 3, {})
    with core.db.write() as s:
        s.get(RunRow, running).model_version = 3
        s.execute(update(ModelVersionRow).values(created_at=now - timedelta(hours=2)))
    with core.db.read() as s:
        model_paths = dict(s.execute(select(ModelVersionRow.version, ModelVersionRow.path)).all())
    for path in core.settings.model_dir.rglob("*"):
        if path.is_file():
            _age(path)
    gone_model = core.settings.model_dir / "deleted-project" / "v1-deadbeef.onnx"  # no row: orphan
    gone_model.parent.mkdir(parents=True)
    gone_model.write_bytes(b"orphan model")
    _age(gone_model)
    registering = core.settings.model_dir / "p" / ".tmp-in-progress"  # a registration under way
    registering.write_bytes(b"half a model")

    # Blobs: every planted one is old; then a real orphan (old) and a fresh one (being uploaded).
    for digest in (h["old_only"], h["run_data"], h["current"], h["staged"]):
        _age(_blob(core, digest))
    h["orphan"] = _put_old(core, b"nobody references me")
    h["fresh_orphan"] = core.blobs.put(b"uploaded a moment ago, row not written yet")

    # Feature caches: content a version uses stays, other content goes (augmented copies and text too).
    unused = sha256_hex(b"a sample deleted long ago, whose versions were purged")
    cache = {
        "used_current": _cache(core, f"lite0.pooled/src-v1/pre/{h['current'][:2]}", h["current"]),
        "used_old": _cache(core, f"lite0.pooled/src-v1/pre/{h['old_only'][:2]}", h["old_only"]),
        "used_aug": _cache(core, f"lite0.pooled/src-v1/pre/{h['run_data'][:2]}", f"{h['run_data']}.aug1.7"),
        "unused": _cache(core, f"lite0.pooled/src-v1/pre/{unused[:2]}", unused),
        "unused_aug": _cache(core, f"lite0.pooled/src-v1/pre/{unused[:2]}", f"{unused}.aug1.3"),
        "unused_text": _cache(core, "text.minilm/enc1", unused),
        "unused_fresh": _cache(core, "pixels.gray32/numpy-v1/pre/ff", sha256_hex(b"just cached"), fresh=True),
        "not_a_key": _cache(core, "pixels.gray32/numpy-v1/pre/zz", "whatever"),
    }
    return h, model_paths, gone_model, registering, cache


def _plant_work_dirs(core) -> dict:
    """Temporary run folders: a killed run's (old), a killed run's (fresh) and a running one's."""
    from dyntrain.storage.rows import ProjectRow, RunRow

    with core.db.write() as s:
        pid = s.scalars(select(ProjectRow.id)).first()
        runs = {name: RunRow(project_id=pid, dataset_version=1, status=status)
                for name, status in (("dead", "failed"), ("dead_fresh", "failed"), ("running", "running"))}
        s.add_all(runs.values())
        s.flush()
        ids = {name: r.id for name, r in runs.items()}
    old = time.time() - 3600
    paths = {}
    for name, run_id in ids.items():
        path = core.settings.data_dir / f"run-{run_id}-x{name}"
        (path / "export").mkdir(parents=True)
        (path / "export" / "model.onnx").write_bytes(b"\0" * 100)
        if name != "dead_fresh":
            os.utime(path, (old, old))
        paths[name] = path
    return paths


def test_gc_frees_only_what_nothing_references(core, make_png, tmp_path):
    core.settings.gc_grace_s = 600
    h, model_paths, gone_model, registering, cache = _plant(core, make_png, tmp_path)
    work = _plant_work_dirs(core)

    before = _state(core)
    dry = gc(core, dry_run=True)
    assert _state(core) == before  # a dry run deletes nothing

    report = gc(core)
    as_dict = lambda r: {k: v for k, v in r.to_dict().items() if k not in ("dry_run", "seconds")}  # noqa: E731
    assert as_dict(dry) == as_dict(report)  # and reports exactly what the real run frees

    # Survivors: old version's, run version's, current, staged and fresh blobs; the kept inputs.
    for name in ("old_only", "run_data", "current", "staged", "fresh_orphan", "input_fresh"):
        assert core.blobs.exists(h[name]), name
    for name in ("orphan", "input_expired", "record_expired"):
        assert not core.blobs.exists(h[name]), name
    assert report.orphan_blobs.count == 1
    assert report.stored_inputs.count == 3  # input_expired, record_expired and the sample-content input
    assert report.stored_inputs.files == 2  # the sample-content input's file is training data: kept
    assert report.prediction_records.count == 1
    with core.db.read() as s:
        left = {r.input_hash: r.input_stored for r in s.scalars(select(PredictionRow))}
    assert left == {h["input_expired"]: False, h["input_fresh"]: True, h["current"]: False}

    # Models: the newest, the served one, its rollback target and the running run's stay.
    with core.db.read() as s:
        versions = sorted(s.scalars(select(ModelVersionRow.version)))
    assert versions == [3, 4, 5, 6]
    assert sorted(report.removed_models) == ["p v1", "p v2"] and report.model_versions.files == 2
    for v, key in model_paths.items():
        assert (core.settings.model_dir / key).exists() == (v >= 3), v
        assert (core.settings.model_dir / key).with_suffix(".json").exists() == (v >= 3), v
    assert not gone_model.exists() and registering.exists()
    assert report.model_files.count == 1

    # Caches.
    for name, path in cache.items():
        assert path.exists() == (name.startswith("used") or name in ("unused_fresh", "not_a_key")), name
    assert report.feature_cache.count == 3
    assert report.total_bytes > 0

    # Work folders: only the dead run's old one goes.
    assert {name: path.exists() for name, path in work.items()} == {"dead": False, "dead_fresh": True, "running": True}
    assert report.work_dirs.count == 1 and report.work_dirs.files == 1

    # A second run finds nothing left; nothing more is deleted.
    again = gc(core)
    assert not again.anything and again.total_bytes == 0


def test_gc_over_the_api_and_the_cli(core, live_server, make_png, tmp_path):
    import httpx

    from dyntrain.cli import app

    core.settings.gc_grace_s = 0
    create_project(core, "p", settings={"auto_train": False})
    orphan = core.blobs.put(b"orphan")
    add_samples(core, "p", [Upload("a.png", make_png(1))], ["a"])
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    r = api.post("/admin/gc", params={"dry_run": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is True and r.json()["orphan_blobs"]["count"] == 1
    assert core.blobs.exists(orphan)

    runner = CliRunner()
    r = runner.invoke(app, ["gc", "--dry-run", "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert "orphan blobs" in r.output and "would free" in r.output
    assert core.blobs.exists(orphan)
    r = runner.invoke(app, ["gc", "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert "freed" in r.output and not core.blobs.exists(orphan)
    audit = api.get("/audit").json()
    entries = audit["items"] if isinstance(audit, dict) else audit
    assert any(e["action"] == "housekeeping" for e in entries)


def test_an_s3_store_deletes_a_model_version_everywhere(tmp_path, monkeypatch):
    """Old model versions go from the bucket too, not only from this machine's cache."""
    import boto3
    import moto as moto
    from dyntrain.storage.artifacts import S3Artifacts

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with moto.mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="dyntrain-test")
        store = S3Artifacts("s3://dyntrain-test/prod", tmp_path / "blobs", tmp_path / "models", client=client)
        model = tmp_path / "models" / "p" / "v1-ab.onnx"
        model.parent.mkdir(parents=True)
        model.write_bytes(b"model")
        model.with_suffix(".json").write_text("{}")
        store.put_model("p/v1-ab.onnx", model)
        assert len(client.list_objects_v2(Bucket="dyntrain-test")["Contents"]) == 2
        assert store.delete_model("p/v1-ab.onnx") == len(b"model") + 2
        assert client.list_objects_v2(Bucket="dyntrain-test").get("Contents", []) == [] and not model.exists()
