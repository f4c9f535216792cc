"""Runs and models exported to a real ``mlflow server`` (the full ``mlflow==3.17.2`` package, SQLite
backend, artifacts proxied through the server) on 127.0.0.1, checked with the skinny client the
project depends on.

The full package is ~0.9 GB and does not belong in dyntrain's environment, so it lives in its own
venv under ``.cache/mlflow-server-venv/`` (gitignored): made once with ``python -m venv`` and
``pip install mlflow==3.17.2``, reused by every later run. If that install fails the test fails
with pip's words (it is expected to work wherever PyPI is reachable)."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import wait_for
from tests.test_mlflow import QUICK, _runs, _train

MLFLOW = "mlflow==3.17.2"
VENV = Path(__file__).resolve().parents[1] / ".cache" / "mlflow-server-venv"


def _server_venv() -> Path:
    """The venv holding the full MLflow, made on first use (a lock keeps parallel runs from
    building it twice); a marker file names what was installed, so a half-built venv is redone."""
    marker = VENV / ".installed"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / "mlflow-server-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == MLFLOW and (VENV / "bin" / "mlflow").exists():
            return VENV
        shutil.rmtree(VENV, ignore_errors=True)
        started = time.monotonic()
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.fail(f"python -m venv {VENV} failed: {made.stderr[-2000:]}", pytrace=False)
        pip = subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", MLFLOW],
                             capture_output=True, text=True, timeout=1800)
        if pip.returncode != 0:
            errors = "\n".join(line for line in pip.stderr.splitlines() if "is ignored" not in line)
            pytest.fail(f"pip install {MLFLOW} into {VENV} failed (PyPI must be reachable):\n{errors[-3000:]}",
                        pytrace=False)
        marker.write_text(MLFLOW)
        print(f"\nmade {VENV} with {MLFLOW} in {time.monotonic() - started:.0f} s")
        return VENV


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on a free port of 127.0.0.1, SQLite backend, until the module ends."""
    import httpx

    venv = _server_venv()
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = open(folder / "server.log", "w")
    # One worker: the default four take ~2.3 GB on a 2-core machine shared with the tests.
    server = subprocess.Popen(
        [str(venv / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)  # its own process group
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited ({server.returncode}):\n{(folder / 'server.log').read_text()[-3000:]}",
                            pytrace=False)
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 180:
                pytest.fail(f"mlflow server did not answer in 180 s:\n{(folder / 'server.log').read_text()[-3000:]}",
                            pytrace=False)
            time.sleep(0.5)
        print(f"\nmlflow server answered after {time.monotonic() - started:.1f} s")
        yield url, folder
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_runs_and_models_reach_a_real_mlflow_server(mlflow_server, core, monkeypatch, tmp_path):
    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient

    from dyntrain.codecs.imaging import model_inputs
    from dyntrain.kernel.projects import create_project, get_project
    from dyntrain.ops import mlflow_log
    from dyntrain.ops.demo import digit_images
    from dyntrain.registry import models as registry

    url, folder = mlflow_server
    monkeypatch.setenv(mlflow_log.ENV, url)
    create_project(core, "digits", settings=QUICK)
    exporter = mlflow_log.watch(core, poll_s=0.2, backoff_s=0.5, max_backoff_s=2.0)
    assert exporter is not None and exporter.uri == url
    try:
        first, second = _train(core), _train(core, 30)
        wait_for(lambda: len(exporter.exported) >= 2, timeout=240)  # through the events outbox
        client = MlflowClient(url, registry_uri=url)
        runs = {int(r.data.tags["dyntrain.run_id"]): r for r in _runs(client, "digits")}
        assert sorted(runs) == [first, second]  # once each
        run = runs[first]
        card = registry.get_model(core, "digits", 1).card
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED" and tags["dyntrain.model_version"] == "1"
        assert tags["dyntrain.dataset_version"] == "1" and len(tags["dyntrain.dataset_hash"]) == 64
        assert params["learner"] == card["learner"] == tags["dyntrain.learner"]
        assert 0 <= metrics["macro_f1"] <= 1 and metrics["accuracy.low"] <= metrics["accuracy"] <= metrics["accuracy.high"]
        assert {f"class.digit-{d}.recall" for d in (0, 1, 7)} <= set(metrics)
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"card.json", "report.json", "confusion_matrix.json", "log.txt"} <= names
        # the artifacts went through the server into its own store
        assert any(p.name == "confusion_matrix.json" for p in (folder / "artifacts").rglob("*.json"))

        # both models registered with the ONNX flavour; production where dyntrain's is
        versions = client.search_model_versions("name = 'digits'")
        assert sorted(v.tags["dyntrain.version"] for v in versions) == ["1", "2"]
        served = next(m.version for m in registry.list_models(core, "digits") if "production" in m.aliases)
        alias = lambda: client.get_model_version_by_alias("digits", "production").tags["dyntrain.version"]  # noqa: E731
        wait_for(lambda: alias() == str(served), timeout=60)
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        assert "onnx" in mlflow.models.get_model_info("models:/digits@production").flavors
        (tmp_path / "model").mkdir()
        loaded = mlflow.pyfunc.load_model("models:/digits@production", dst_path=str(tmp_path / "model"))
        batch = model_inputs([d for _, d in digit_images(per_class=1, offset=40)])
        ours = core.live.production(get_project(core, "digits").id).predict_items(list(batch))
        np.testing.assert_allclose(loaded.predict({"image": batch})["probabilities"], ours, atol=1e-6)

        # a promotion by hand, then a rollback: MLflow's alias follows both
        other = 1 if served != 1 else 2
        registry.promote(core, "digits", other)
        wait_for(lambda: alias() == str(other), timeout=60)
        assert registry.rollback(core, "digits") == served
        wait_for(lambda: alias() == str(served), timeout=60)
        assert len(_runs(client, "digits")) == 2 and len(client.search_model_versions("name = 'digits'")) == 2
    finally:
        exporter.stop()
