"""Runs and models exported to MLflow through the events outbox, against a real local tracking
store (MLflow's SQLite backend): tags, parameters, metrics, artifacts, the ONNX model registered
and loadable by MLflow, the production alias following promotions and rollbacks, and nothing
lost or doubled while the tracker is unreachable."""

from __future__ import annotations

import json

import numpy as np
import pytest

try:
    from mlflow import MlflowClient
except ImportError:  # a missing part fails, saying how to get it (it is in the dev extra)
    pytest.fail("mlflow-skinny is not installed: make install-dev (or pip install -e '.[mlflow]')",
                pytrace=False)

from dyntrain.datasets.changes import Upload, add_samples  # noqa: E402
from dyntrain.kernel.projects import create_project  # noqa: E402
from dyntrain.ops import mlflow_log  # noqa: E402
from dyntrain.ops.demo import digit_images  # noqa: E402
from dyntrain.registry import models as registry  # noqa: E402
from dyntrain.scheduler import queue  # noqa: E402
from dyntrain.scheduler.jobs import run_job  # noqa: E402
from tests.conftest import wait_for  # noqa: E402

QUICK = {"auto_train": False, "learners": ["image.pixel_logreg", "image.linear_probe"], "time_budget_s": 5}


def _train(core, offset: int = 0) -> int:
    """One real training run on real digit scans; a few new images each time (a new dataset version)."""
    images = digit_images(per_class=6 if offset == 0 else 1, offset=offset)
    add_samples(core, "digits", [Upload(f"{offset}-{i}.png", d) for i, (_, d) in enumerate(images)],
                [lab for lab, _ in images])
    queue.request_training(core, "digits")
    job = queue.claim_next(core)
    run_job(core, job)
    return _last_run(core)


def _last_run(core) -> int:
    from sqlalchemy import func, select

    from dyntrain.storage.rows import RunRow

    with core.db.read() as s:
        return s.scalar(select(func.max(RunRow.id)))


def _runs(client, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=100)


@pytest.mark.slow
def test_a_run_in_mlflow_with_its_model(core, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    create_project(core, "digits", settings=QUICK)
    run_id = _train(core)
    done = mlflow_log.export_run(core, run_id, uri)
    assert done["skipped"] is False and done["registered_version"] == 1
    client = MlflowClient(uri, registry_uri=uri)
    (run,) = _runs(client, "digits")
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    card = registry.get_model(core, "digits", 1).card
    assert tags["dyntrain.run_id"] == str(run_id) and tags["dyntrain.model_version"] == "1"
    assert tags["dyntrain.dataset_version"] == "1" and len(tags["dyntrain.dataset_hash"]) == 64
    assert tags["dyntrain.code"] and tags["dyntrain.learner"] == card["learner"] == params["learner"]
    assert run.info.status == "FINISHED"
    assert 0 <= metrics["macro_f1"] <= 1 and metrics["accuracy.low"] <= metrics["accuracy"] <= metrics["accuracy.high"]
    assert {f"class.digit-{d}.recall" for d in (0, 1, 7)} <= set(metrics)
    assert any(k.startswith("cv.image.linear_probe") for k in metrics)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"card.json", "report.json", "confusion_matrix.json", "log.txt"} <= names
    assert (tmp_path / "mlartifacts" / "digits").is_dir()  # beside the store, not in the working directory
    matrix = json.loads(open(client.download_artifacts(run.info.run_id, "confusion_matrix.json",
                                                       str(tmp_path))).read())
    assert matrix["labels"] == card["labels"] and np.sum(matrix["rows_true_columns_predicted"]) > 0
    # registered with the ONNX flavour, production alias on it, and MLflow's predictions are ours
    mv = client.get_model_version_by_alias("digits", "production")
    assert str(mv.version) == "1" and mv.tags["dyntrain.version"] == "1" and mv.run_id == run.info.run_id
    import mlflow.pyfunc

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    assert "onnx" in mlflow.models.get_model_info("models:/digits@production").flavors
    loaded = mlflow.pyfunc.load_model("models:/digits@production")
    from dyntrain.codecs.imaging import model_inputs

    batch = model_inputs([d for _, d in digit_images(per_class=1, offset=40)])
    from dyntrain.kernel.projects import get_project

    ours = core.live.production(get_project(core, "digits").id).predict_items(list(batch))
    theirs = loaded.predict({"image": batch})["probabilities"]
    np.testing.assert_allclose(theirs, ours, atol=1e-6)
    # once each: exporting again (or back-filling) changes nothing
    assert mlflow_log.export_run(core, run_id, uri)["skipped"] is True
    assert all(r["skipped"] for r in mlflow_log.sync(core, "digits", uri))
    assert len(_runs(client, "digits")) == 1 and len(client.search_model_versions("name = 'digits'")) == 1


@pytest.mark.slow
def test_tracker_down_during_three_runs_then_all_arrive_once(core, tmp_path, monkeypatch):
    folder = tmp_path / "tracker"
    folder.write_text("a file where the store's folder belongs: nothing can open it, as if the server were down")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    monkeypatch.setenv(mlflow_log.ENV, uri)
    create_project(core, "digits", settings=QUICK)
    exporter = mlflow_log.watch(core, poll_s=0.2, backoff_s=0.2, max_backoff_s=1.0)
    try:
        runs = [_train(core, offset) for offset in (0, 30, 31)]
        assert mlflow_log.watch(core) is exporter  # the runs used this same exporter
        from dyntrain.storage.rows import RunRow

        with core.db.read() as s:
            assert [s.get(RunRow, r).status for r in runs] == ["succeeded"] * 3  # training never waited
        assert exporter.exported == []
        folder.unlink()
        folder.mkdir()  # the tracker is back
        wait_for(lambda: len(exporter.exported) >= 3, timeout=120)
        client = MlflowClient(uri, registry_uri=uri)
        exported = sorted(int(r.data.tags["dyntrain.run_id"]) for r in _runs(client, "digits"))
        assert exported == sorted(runs)  # all three, once each
        versions = client.search_model_versions("name = 'digits'")
        assert sorted(v.tags["dyntrain.version"] for v in versions) == ["1", "2", "3"]
        production = registry.list_models(core, "digits")
        served = next(m.version for m in production if "production" in m.aliases)
        wait_for(lambda: client.get_model_version_by_alias("digits", "production").tags["dyntrain.version"]
                 == str(served), timeout=60)
        # a promotion by hand moves MLflow's alias too
        other = 1 if served != 1 else 2
        registry.promote(core, "digits", other)
        wait_for(lambda: client.get_model_version_by_alias("digits", "production").tags["dyntrain.version"]
                 == str(other), timeout=60)
        assert len(_runs(client, "digits")) == 3
    finally:
        exporter.stop()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_sync_back_fills_once(core, settings, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dyntrain.cli import app
    import dyntrain.cli_mlflow  # noqa: F401 - registers `dyntrain mlflow`

    create_project(core, "digits", settings=QUICK)
    first = _train(core)
    second = _train(core, 30)
    uri = f"sqlite:///{tmp_path / 'backfill.db'}"
    monkeypatch.setenv("DYNTRAIN_DATABASE_URL", settings.database_url)
    args = ["mlflow", "sync", "digits", "--uri", uri, "--data-dir", str(settings.data_dir)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "2 run(s) exported, 0 already there" in r.output
    r = CliRunner().invoke(app, args)
    assert "0 run(s) exported, 2 already there" in r.output
    client = MlflowClient(uri, registry_uri=uri)
    assert sorted(int(x.data.tags["dyntrain.run_id"]) for x in _runs(client, "digits")) == [first, second]
    served = next(m.version for m in registry.list_models(core, "digits") if "production" in m.aliases)
    assert client.get_model_version_by_alias("digits", "production").tags["dyntrain.version"] == str(served)
    missing = CliRunner().invoke(app, ["mlflow", "sync", "nope", "--uri", uri, "--data-dir", str(settings.data_dir)])
    assert missing.exit_code == 1 and "nope" in missing.output
