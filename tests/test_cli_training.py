"""CLI commands that train, inspect, export and serve, against a live server with its scheduler."""

from __future__ import annotations

import json

import httpx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from dyntrain.cli import app
from dyntrain.ops.demo import digit_images

pytestmark = pytest.mark.slow
runner = CliRunner(env={"COLUMNS": "200"})
QUICK = {"auto_train": False, "learners": ["image.pixel_logreg", "image.linear_probe"], "time_budget_s": 5}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_train_runs_export_predict_promote_rollback(loop_server, tmp_path):
    url = loop_server.url
    httpx.post(f"{url}/api/v1/projects", json={"name": "digits", "settings": QUICK})
    for label, data in digit_images(per_class=8):
        folder = tmp_path / "in" / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{len(list(folder.iterdir()))}.png").write_bytes(data)
    assert runner.invoke(app, ["import", str(tmp_path / "in"), "-p", "digits", "--url", url]).exit_code == 0

    r = runner.invoke(app, ["train", "digits", "--wait", "--url", url])
    assert r.exit_code == 0, r.output
    assert "in service" in r.output and "model v1" in r.output

    r = runner.invoke(app, ["export-model", "digits", "--out", str(tmp_path / "m.onnx"), "--url", url])
    assert r.exit_code == 0, r.output
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert session.get_inputs()[0].name == "image"

    probe = tmp_path / "probe.png"
    probe.write_bytes(digit_images(per_class=1, offset=30)[0][1])
    r = runner.invoke(app, ["predict", "digits", str(probe), "--json", "--url", url])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["predictions"][0]["model_version"] == 1 and set(doc["predictions"][0]["scores"]) == {
        "digit-0", "digit-1", "digit-7"}

    assert runner.invoke(app, ["train", "digits", "--wait", "--url", url]).exit_code == 0
    r = runner.invoke(app, ["runs", "digits", "--url", url])
    assert r.exit_code == 0 and "promoted" in r.output and r.output.count("succeeded") == 2
    assert "now serving v1" in runner.invoke(app, ["rollback", "digits", "--url", url]).output
    assert httpx.get(f"{url}/api/v1/projects/digits/aliases/history").json()[0]["version"] == 1
    r = runner.invoke(app, ["promote", "digits", "2", "--url", url])
    assert r.exit_code == 0 and "now serving v2" in r.output
    r = runner.invoke(app, ["promote", "digits", "7", "--url", url])
    assert r.exit_code == 1 and "no model version 7" in r.output
    r = runner.invoke(app, ["train", "nope", "--url", url])
    assert r.exit_code == 1 and "does not exist" in r.output
