"""Purge: a content leaves the project everywhere, old versions included; what used it is marked."""

from __future__ import annotations

from sqlalchemy import select

from dyntrain.datasets.changes import Upload, add_samples, delete_sample, list_samples
from dyntrain.datasets.purge import purge
from dyntrain.datasets.versions import list_versions, version_items
from dyntrain.kernel.projects import create_project, project_row
from dyntrain.registry.models import get_model, register_model
from dyntrain.storage import sha256_hex
from dyntrain.storage.rows import DatasetVersionRow, JobRow, PredictionRow, RunRow
from dyntrain.training import records


def _cache_file(core, key: str):
    path = core.settings.cache_dir / "features" / "lite0.pooled" / "src-v1" / "pre" / key[:2] / f"{key}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"features")
    return path


def _items(core, project, number):
    with core.db.read() as s:
        return version_items(s, project_row(s, project), number)


def test_purge_removes_the_content_everywhere_and_marks_what_used_it(core, make_png, tmp_path):
    create_project(core, "p", settings={"auto_train": False})
    secret, other = make_png(1), make_png(2)
    digest = sha256_hex(secret)
    samples, _ = add_samples(core, "p", [Upload("s.png", secret), Upload("o.png", other)], ["a", "b"])  # v1
    add_samples(core, "p", [Upload("again.png", secret)], ["b"])  # v2: the same content twice
    delete_sample(core, "p", samples[0].id)  # v3: one copy left in the data
    with core.db.read() as s:
        pid = project_row(s, "p").id
        v1_hash = s.scalar(select(DatasetVersionRow.hash).where(DatasetVersionRow.number == 1))
    run_id = records.start_run(core, pid, None, 1, {})
    records.finish_run(core, run_id, "succeeded", result={"metrics": {"accuracy": 1.0}}, model_version=1)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"model")
    register_model(core, pid, onnx, {"labels": ["a", "b"]}, run_id=run_id)
    clean_run = records.start_run(core, pid, None, 3, {})  # v3 still has the second copy …
    running = records.start_run(core, pid, None, 2, {})
    with core.db.write() as s:
        s.add(JobRow(project_id=pid, status="running", trigger="auto", dataset_version=2, run_id=running))
        s.add(PredictionRow(project_id=pid, model_version=1, label="a", confidence=0.9, output={},
                            input_hash=digest, input_stored=True))
    cache = [_cache_file(core, digest), _cache_file(core, f"{digest}.aug1.2")]
    kept_cache = _cache_file(core, sha256_hex(other))

    report = purge(core, "p", digest, actor="alice")

    assert report["samples"] == 1 and report["versions"] == [1, 2, 3] and report["items"] == 4
    assert report["runs"] == sorted([run_id, clean_run, running]) and report["models"] == [1]
    assert report["predictions"] == 1 and report["jobs_cancelled"] == 1
    assert report["new_version"] == 4 and report["blob_deleted"] and report["cache_entries"] == 2
    # The data and every version lost it; each version keeps its recorded hash and counts the loss.
    assert all(s.content_hash != digest for s in list_samples(core, "p")[0])
    for number in (1, 2, 3, 4):
        assert all(i.content_hash != digest for i in _items(core, "p", number))
    with core.db.read() as s:
        purged = dict(s.execute(select(DatasetVersionRow.number, DatasetVersionRow.purged)).all())
        assert s.scalar(select(DatasetVersionRow.hash).where(DatasetVersionRow.number == 1)) == v1_hash
        run = s.get(RunRow, run_id)
        assert run.result["purged_samples"] == 1 and run.result["metrics"] == {"accuracy": 1.0}
        assert s.get(RunRow, running).result["purged_samples"] == 2
        assert s.scalars(select(JobRow)).one().cancel_requested
        assert s.scalars(select(PredictionRow)).one().input_stored is False
    assert purged == {1: 1, 2: 2, 3: 1, 4: 0}
    assert [v.size for v in list_versions(core, "p")][:1] == [1]  # v4: only the other image
    card = get_model(core, "p", 1).card
    assert card["trained_on_purged_data"] is True and card["purged_samples"] == 1
    assert not core.blobs.exists(digest) and core.blobs.exists(sha256_hex(other))
    assert not any(p.exists() for p in cache) and kept_cache.exists()
    # Recorded in the audit log with what was done.
    from dyntrain.access import audit

    entry = audit.entries(core, "p")[0]
    assert entry.action == "purge" and entry.actor == "alice" and entry.details["content_hash"] == digest


def test_shared_content_leaves_only_the_purged_project(core, make_png):
    create_project(core, "p", settings={"auto_train": False})
    create_project(core, "q", settings={"auto_train": False})
    shared = make_png(5)
    digest = sha256_hex(shared)
    add_samples(core, "p", [Upload("x.png", shared), Upload("y.png", make_png(6))], ["a", "b"])
    add_samples(core, "q", [Upload("x.png", shared), Upload("y.png", make_png(7))], ["a", "b"])
    cache = _cache_file(core, digest)

    report = purge(core, "p", digest, actor="alice")
    assert report["blob_deleted"] is False and report["still_used_elsewhere"] is True
    assert core.blobs.exists(digest) and cache.exists()
    assert [s.content_hash for s in list_samples(core, "q")[0]].count(digest) == 1
    assert all(i.content_hash != digest for i in _items(core, "p", 1))

    report = purge(core, "q", digest, actor="alice")
    assert report["blob_deleted"] is True and not core.blobs.exists(digest) and not cache.exists()


def test_purge_over_the_api(core, client, make_png):
    create_project(core, "p", settings={"auto_train": False})
    samples, _ = add_samples(core, "p", [Upload("x.png", make_png(8)), Upload("y.png", make_png(9))], ["a", "b"])
    delete_sample(core, "p", samples[0].id)  # only version 1 still holds it: purge by id still works
    from dyntrain.access.auth import create_token

    trainer = {"Authorization": f"Bearer {create_token(core, 'trainer', 'trainer')[1]}"}
    r = client.post(f"/api/v1/projects/p/samples/{samples[0].id}/purge", headers=trainer)
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]  # cannot be undone: admins only
    r = client.post(f"/api/v1/projects/p/samples/{samples[0].id}/purge")
    assert r.status_code == 200, r.text
    assert r.json()["versions"] == [1] and r.json()["blob_deleted"] is True
    assert client.post(f"/api/v1/projects/p/samples/{samples[0].id}/purge").status_code == 404
    assert client.post("/api/v1/projects/p/samples/9999/purge").status_code == 404
    r = client.post("/api/v1/projects/p/purge", json={"content_hash": samples[1].content_hash})
    assert r.status_code == 200 and r.json()["samples"] == 1 and r.json()["new_version"] == 3
    assert client.post("/api/v1/projects/p/purge", json={"content_hash": "nope"}).status_code == 422
    versions = {v["number"]: v["purged"] for v in client.get("/api/v1/projects/p/dataset-versions").json()}
    assert versions == {1: 2, 2: 1, 3: 0}
    actions = [e["action"] for e in client.get("/api/v1/projects/p/audit").json()]
    assert "purge" in actions
