"""Backup and restore: a restored data dir serves the same predictions; unsafe restores are refused."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from typer.testing import CliRunner

from dyntrain.ops.backup import backup, read_manifest, restore
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.errors import Conflict, Invalid
from dyntrain.kernel.projects import create_project, project_row
from dyntrain.registry.models import promote, register_model
from dyntrain.serving.predict import predict_items

def _served_model(core, tmp_path):
    """A project with data and a model in service: a tiny hand-built ONNX classifier (mean colour →
    softmax), registered and promoted like a trained one, so the test needs no training run."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    create_project(core, "digits", settings={"auto_train": False})
    images = digit_images(per_class=6)
    add_samples(core, "digits", [Upload(f"{i}.png", d) for i, (_, d) in enumerate(images)], [lab for lab, _ in images])
    labels = sorted({lab for lab, _ in images})
    weights = np.random.default_rng(0).normal(size=(3, len(labels))).astype(np.float32) / 20
    graph = helper.make_graph(
        [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1, 2], keepdims=0),
         helper.make_node("MatMul", ["mean", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "mean-colour", [helper.make_tensor_value_info("image", TensorProto.UINT8, ["n", 224, 224, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", len(labels)])],
        [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "model.onnx")
    with core.db.read() as s:
        pid = project_row(s, "digits").id
    register_model(core, pid, tmp_path / "model.onnx", {"labels": labels, "task": "image-classification"},
                   run_id=None)
    promote(core, "digits", 1)


def test_backup_restores_into_an_empty_dir_and_serves_the_same_predictions(core, tmp_path):
    if not core.db.is_sqlite:
        with pytest.raises(Invalid, match="pg_dump"):
            backup(core.settings, tmp_path / "b.tar")
        (tmp_path / "b.tar").touch()
        with pytest.raises(Invalid, match="pg_dump"):
            restore(core.settings, tmp_path / "b.tar")
        return
    _served_model(core, tmp_path)
    probe = digit_images(per_class=1, offset=40)
    before = predict_items(core, "digits", [(f"{i}.png", d) for i, (_, d) in enumerate(probe)])
    (core.settings.data_dir / "webhook-secret").write_text("s3cret")

    archive = tmp_path / "backup.tar.gz"
    seen = []
    manifest = backup(core.settings, archive, progress=lambda done, total: seen.append((done, total)))
    assert manifest["counts"]["projects"] == 1 and manifest["counts"]["model_versions"] == 1
    assert manifest["counts"]["predictions"] == len(probe) and manifest["missing"] == []
    assert manifest["blobs"] == 6 * 3 + len(probe)  # samples + stored prediction inputs
    assert manifest["model_files"] == 1 and seen[-1][0] == seen[-1][1] == manifest["bytes"]
    assert read_manifest(archive) == manifest

    target = Settings(data_dir=tmp_path / "restored", seed_demo=False, scheduler_enabled=False)
    assert restore(target, archive)["schema_revision"] == manifest["schema_revision"]
    assert (target.data_dir / "webhook-secret").read_text() == "s3cret"
    restored = Core.create(target)
    try:
        after = predict_items(restored, "digits", [(f"{i}.png", d) for i, (_, d) in enumerate(probe)])
        for b, a in zip(before, after):
            assert a["label"] == b["label"] and a["model_version"] == b["model_version"] == 1
            assert a["scores"] == pytest.approx(b["scores"], abs=1e-6)
        # The stored inputs came along too: an earlier prediction can still become training data.
        pid = before[0]["prediction_id"]
        assert restored.blobs.get(restored_input(restored, pid)) == probe[0][1]
    finally:
        restored.db.dispose()

    # Never over existing data.
    with pytest.raises(Conflict, match="not empty"):
        restore(target, archive)
    with pytest.raises(Conflict, match="not empty"):
        restore(core.settings, archive)


def restored_input(core, prediction_id):
    from dyntrain.storage.rows import PredictionRow

    with core.db.read() as s:
        return s.get(PredictionRow, prediction_id).input_hash


def test_restore_refuses_foreign_or_unsafe_archives(tmp_path):
    target = Settings(data_dir=tmp_path / "new", seed_demo=False)
    not_a_backup = tmp_path / "x.tar"
    with tarfile.open(not_a_backup, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(Invalid, match="not a dyntrain backup"):
        restore(target, not_a_backup)
    from dyntrain.ops.backup import FORMAT, FORMAT_VERSION, _known_revisions

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        manifest = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "bytes": 1,
                               "schema_revision": sorted(_known_revisions())[0]}).encode()
        for name, data in [("manifest.json", manifest), ("files/../../escape", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(Invalid, match="unexpected entry"):
        restore(target, evil)
    assert not (tmp_path / "escape").exists()


def test_backup_and_restore_commands(tmp_path, make_png):
    from dyntrain.cli import app

    data = tmp_path / "data"
    core = Core.create(Settings(data_dir=data, seed_demo=False, scheduler_enabled=False))
    create_project(core, "p", settings={"auto_train": False})
    add_samples(core, "p", [Upload("a.png", make_png(1))], ["a"])
    core.db.dispose()
    runner = CliRunner()
    r = runner.invoke(app, ["backup", "--out", str(tmp_path / "b.tar"), "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    assert "1 projects, 1 samples, 1 blobs" in " ".join(r.output.split())
    r = runner.invoke(app, ["restore", str(tmp_path / "b.tar"), "--data-dir", str(data)])
    assert r.exit_code == 1 and "not empty" in " ".join(r.output.split())
    r = runner.invoke(app, ["restore", str(tmp_path / "b.tar"), "--data-dir", str(tmp_path / "copy")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "copy" / "blobs").is_dir() and "dyntrain serve --data-dir" in " ".join(r.output.split())
