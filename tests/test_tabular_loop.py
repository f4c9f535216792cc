"""Tabular prediction through the whole loop: CSV/JSON rows → automatic training → promotion
→ predictions (a value for regression, a class for classification) → prediction records;
and the ways bad tables are refused."""

from __future__ import annotations

import csv
import json

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from dyntrain.cli import app
from tests.conftest import wait_for

runner = CliRunner(env={"COLUMNS": "200"})
FAST = {"train_delay_s": 0.3, "train_max_delay_s": 5, "time_budget_s": 5}
CITIES = {"Oslo": 30.0, "Rome": 0.0, "Lima": -20.0}


def houses(n: int, seed: int = 0) -> list[dict]:
    """price = 10·rooms + 0.5·area + a city effect + noise; some cells missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rooms, area, city = int(rng.integers(1, 7)), float(rng.uniform(20, 200)), str(rng.choice(list(CITIES)))
        price = 10 * rooms + 0.5 * area + CITIES[city] + float(rng.normal(0, 3))
        rows.append({"rooms": rooms if i % 11 else None, "area": round(area, 1), "city": city if i % 13 else "",
                     "price": round(price, 2)})
    return rows


def fruit(n: int, seed: int = 1) -> list[dict]:
    """The class follows weight and colour (a categorical column)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        kind = ["apple", "banana", "cherry"][i % 3]
        weight = {"apple": 150, "banana": 120, "cherry": 10}[kind] + float(rng.normal(0, 8))
        colour = {"apple": "red", "banana": "yellow", "cherry": "red"}[kind]
        rows.append({"weight": round(weight, 1), "colour": colour, "length": round(float(rng.normal(
            {"apple": 8, "banana": 18, "cherry": 2}[kind], 1)), 2), "fruit": kind})
    return rows


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    return path


def _done(api, project, version=None):
    return [j for j in api.get(f"/projects/{project}/jobs").json() if j["status"] in ("succeeded", "failed")
            and (version is None or j["dataset_version"] == version)]


@pytest.mark.slow
def test_regression_through_the_loop(loop_server, tmp_path):
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=60)
    r = api.post("/projects", json={"name": "houses", "task": "tabular-regression", "settings": FAST})
    assert r.status_code == 201 and r.json()["settings"]["gate_metric"] == "r2"
    data = houses(70)
    r = runner.invoke(app, ["import", str(write_csv(tmp_path / "houses.csv", data)), "-p", "houses",
                            "--target", "price", "--url", loop_server.url])
    assert r.exit_code == 0, r.output
    version = api.get("/projects/houses/dataset-versions").json()[0]
    assert version["size"] == 70 and sum(version["counts"].values()) == 70  # rows per target range
    sample = api.get("/projects/houses/samples", params={"limit": 1}).json()["items"][0]
    assert sample["kind"] == "row" and float(sample["label"]) == pytest.approx(data[0]["price"])

    job = wait_for(lambda: _done(api, "houses"), timeout=120)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    metrics = run["result"]["metrics"]
    assert metrics["r2"] > 0.8 and metrics["mae"] > 0 and metrics["rmse"] >= metrics["mae"]
    assert metrics["points"] and {"true", "predicted"} <= set(metrics["points"][0])
    learners = {s["candidate"]["learner"] for s in run["result"]["selection"]["scores"]}
    assert learners == {"tabular.ridge", "tabular.hgb_regressor"}
    assert run["result"]["gate"]["promoted"] and run["result"]["gate"]["metric"] == "r2"
    model = api.get("/projects/houses/models").json()[0]
    assert model["aliases"] == ["production"] and model["card"]["output"]["name"] == "value"
    assert [c["name"] for c in model["card"]["input"]["columns"]] == ["area", "city", "rooms"]

    r = api.post("/projects/houses/predict/rows", json={"rows": [
        {"rooms": 3, "area": 100, "city": "Oslo"}, {"rooms": None, "area": 50.5, "city": "Rome"},
        {"rooms": "many", "area": 50, "city": "Rome"}]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert preds[0]["value"] == pytest.approx(110, abs=15) and "label" not in preds[0]
    assert isinstance(preds[1]["value"], float)
    assert "rooms" in preds[2]["error"]  # a bad value fails its own row only
    # unknown or missing columns refuse the request, naming the column
    r = api.post("/projects/houses/predict/rows", json={"rows": [{"rooms": 3, "area": 100, "town": "Oslo"}]})
    assert r.status_code == 422
    problems = {d["column"]: d["reason"] for d in r.json()["error"]["details"]}
    assert problems == {"town": "unknown column 'town'",
                        "city": "missing column 'city' (send null for a missing value)"}

    # the CLI predicts from the same CSV, leaving out the target column
    r = runner.invoke(app, ["predict", "houses", "--csv", str(tmp_path / "houses.csv"), "--json",
                            "--url", loop_server.url])
    assert r.exit_code == 0, r.output
    cli_preds = json.loads(r.output[r.output.index("{"):])["predictions"]
    assert len(cli_preds) == 70 and all("value" in p for p in cli_preds)
    records = api.get("/projects/houses/predictions", params={"limit": 5}).json()
    assert records["total"] == 72 and records["items"][0]["value"] is not None
    assert records["items"][0]["label"] is None

    # more rows: a new version trains again and the gate compares with the model in service
    r = api.post("/projects/houses/samples/rows", json={"rows": houses(10, seed=5), "target": "price"})
    assert r.status_code == 201 and r.json()["version"]["number"] == 2
    job = wait_for(lambda: _done(api, "houses", 2), timeout=120)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    assert run["result"]["gate"]["against_version"] == 1
    assert run["result"]["comparison"]["metrics"]["r2"] is not None
    assert "quick retrain" in run["log"]

    # the UI: the rows as a table, the run's scores and predicted-vs-true plot, the records, the form
    ui = loop_server.url + "/projects/houses"
    html = httpx.get(ui).text
    assert 'class="rows-table"' in html and "<th scope=\"col\">area</th>" in html and "data-retarget" in html
    html = httpx.get(f"{ui}/runs/{job['run_id'] - 1}").text
    assert "Predicted against true values" in html and 'class="chart scatter"' in html
    assert "On average a prediction is off by" in html and "Rows it got most wrong" in html
    assert "Where it gets confused" not in html
    html = httpx.get(f"{ui}/predictions").text
    assert "Predicted value" in html and "The true value is" in html
    html = httpx.get(f"{ui}/try").text
    assert 'data-column="city"' in html and 'data-column="area"' in html
    html = httpx.get(f"{ui}/history").text
    assert "R²" in html
    html = httpx.get(f"{ui}/settings").text
    assert 'value="mae"' in html and 'value="macro_f1"' not in html


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_classification_through_the_loop(loop_server, tmp_path):
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=60)
    api.post("/projects", json={"name": "fruit", "task": "tabular-classification", "settings": FAST})
    path = write_csv(tmp_path / "fruit.csv", fruit(45))
    r = api.post("/projects/fruit/samples/csv", files={"file": ("fruit.csv", path.read_bytes())},
                 data={"target": "fruit"})
    assert r.status_code == 201, r.text
    assert r.json()["version"]["counts"] == {"apple": 15, "banana": 15, "cherry": 15}
    assert {c["label"] for c in api.get("/projects/fruit/classes").json()} == {"apple", "banana", "cherry"}

    job = wait_for(lambda: _done(api, "fruit"), timeout=120)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    assert run["result"]["metrics"]["accuracy"] >= 0.9 and run["result"]["gate"]["promoted"]
    selection = run["result"]["selection"]  # the candidates that ran, then their soft vote
    learners = {s["candidate"]["learner"] for s in selection["scores"] if s["index"] != selection["ensemble_index"]}
    assert learners == {"tabular.linear", "tabular.hgb"}

    r = api.post("/projects/fruit/predict/rows", json={"rows": [
        {"weight": 9, "colour": "red", "length": 2.1}, {"weight": 125, "colour": "yellow", "length": None}]})
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == ["cherry", "banana"]
    assert abs(sum(preds[0]["scores"].values()) - 1) < 1e-4
    records = api.get("/projects/fruit/predictions").json()
    assert records["total"] == 2 and {p["label"] for p in records["items"]} == {"cherry", "banana"}
    assert records["items"][0]["value"] is None

    # the pages show the table and the run
    html = httpx.get(f"{loop_server.url}/projects/fruit").text
    assert "<table" in html and "colour" in html
    html = httpx.get(f"{loop_server.url}/projects/fruit/runs/{job['run_id']}").text
    assert "Where it gets confused" in html


def test_bad_tables_are_refused(live_server, tmp_path):
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=30)
    api.post("/projects", json={"name": "houses", "task": "tabular-regression"})
    api.post("/projects", json={"name": "fruit", "task": "tabular-classification"})

    # the target column is missing from a row
    r = api.post("/projects/houses/samples/rows", json={"rows": [{"rooms": 2, "price": 5}, {"rooms": 3}],
                                                        "target": "price"})
    assert r.status_code == 422
    assert r.json()["error"]["details"] == [{"row": 2, "reason": "the target column 'price' is missing (the row has: rooms)"}]
    # a regression target that is not a number
    r = api.post("/projects/houses/samples/rows", json={"rows": [{"rooms": 2, "price": "cheap"}], "target": "price"})
    assert r.status_code == 422 and "must be a number" in r.json()["error"]["details"][0]["reason"]
    assert api.get("/projects/houses/dataset-versions").json() == []  # nothing was added
    # a CSV without the target column; rows into an image project
    r = api.post("/projects/fruit/samples/csv", files={"file": ("f.csv", b"weight,colour\n1,red\n")},
                 data={"target": "fruit"})
    assert r.status_code == 422 and "not in f.csv" in r.json()["error"]["message"]
    api.post("/projects", json={"name": "pics"})
    r = api.post("/projects/pics/samples/rows", json={"rows": [{"a": 1, "y": "x"}], "target": "y"})
    assert r.status_code == 422 and "tabular" in r.json()["error"]["message"]
    # a column named like the model's output
    r = api.post("/projects/houses/samples/rows", json={"rows": [{"value": 1, "price": 2}], "target": "price"})
    assert r.status_code == 422 and "may not be named 'value'" in r.json()["error"]["details"][0]["reason"]

    # one class only: stored, but nothing trains, and "train now" says why
    r = api.post("/projects/fruit/samples/rows", json={"rows": [{"w": i, "fruit": "apple"} for i in range(5)],
                                                       "target": "fruit"})
    assert r.status_code == 201
    assert api.get("/projects/fruit/jobs").json() == [] or all(
        j["status"] == "cancelled" for j in api.get("/projects/fruit/jobs").json())
    r = api.post("/projects/fruit/train")
    assert r.status_code == 422 and "at least 2 classes" in r.json()["error"]["message"]
    # the same target everywhere in a regression project
    r = api.post("/projects/houses/samples/rows", json={"rows": [{"rooms": i, "price": 7} for i in range(6)],
                                                        "target": "price"})
    assert r.status_code == 201 and r.json()["version"]["counts"] == {"target always 7": 6}
    assert api.post("/projects/houses/train").status_code == 422

    # gate metrics must suit the task
    r = api.patch("/projects/fruit", json={"settings": {"gate_metric": "r2"}})
    assert r.status_code == 422 and "does not apply to a tabular-classification project" in r.json()["error"]["message"]
    assert api.patch("/projects/houses", json={"settings": {"gate_metric": "mae"}}).status_code == 200
    assert api.patch("/projects/houses", json={"settings": {"gate_metric": "macro_f1"}}).status_code == 422

    # predicting before any model, and rows into a non-tabular project
    r = api.post("/projects/houses/predict/rows", json={"rows": [{"rooms": 1}]})
    assert r.status_code == 409
    r = api.post("/projects/pics/predict/rows", json={"rows": [{"rooms": 1}]})
    assert r.status_code == 422

    # the CLI: --target names a column the file does not have
    path = write_csv(tmp_path / "h.csv", houses(5))
    r = runner.invoke(app, ["import", str(path), "-p", "houses", "--target", "cost", "--url", live_server.url])
    assert r.exit_code == 1 and "no column 'cost'" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("rooms,price\n1,2\n3,lots\n")
    r = runner.invoke(app, ["import", str(bad), "-p", "houses", "--url", live_server.url])
    assert r.exit_code == 1 and "--target" in r.output
    r = runner.invoke(app, ["import", str(bad), "-p", "houses", "--target", "price", "--url", live_server.url])
    assert r.exit_code == 1 and "row 2" in r.output and "must be a number" in r.output
