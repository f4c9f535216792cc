"""The gate scores the model file actually in service, on samples it never trained on, and
history shows that comparison (SQLite and PostgreSQL, real training runs)."""

from __future__ import annotations

import io
from html import unescape

import pytest

from dyntrain.datasets.changes import Upload, add_rows, add_samples, update_class
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.projects import create_project
from dyntrain.registry.external import upload_model
from dyntrain.registry.models import list_models, promote
from dyntrain.scheduler import queue
from dyntrain.training import records
from dyntrain.scheduler.jobs import run_job
from dyntrain.web import views
from tests.api.test_external_models import BrightnessModel, _onnx
from tests.test_tabular_loop import fruit, houses

pytestmark = pytest.mark.slow
AUTO = {"train_delay_s": 0, "train_max_delay_s": 60, "time_budget_s": 5}


def _train_next(core, project: str) -> dict:
    job = queue.claim_next(core)
    assert job is not None
    run_job(core, job)
    return records.list_runs(core, project, 1)[0]


def _production(core, project):
    return [m.version for m in list_models(core, project) if "production" in m.aliases]


def test_quick_retrain_worse_than_the_served_file_is_kept_back(core, client):
    """Corrupted labels: apples and bananas swapped on the rows the served model trained on,
    then new correctly labelled rows. The quick retrain reuses the production configuration,
    so its refit equals itself; only the served file, scored on the new rows, shows the loss."""
    create_project(core, "fruit", task="tabular-classification", settings=AUTO)
    add_rows(core, "fruit", fruit(60), "fruit")
    first = _train_next(core, "fruit")
    assert first["gate"]["promoted"] and _production(core, "fruit") == [1]

    for old, new in (("apple", "swap"), ("banana", "apple"), ("swap", "banana")):
        update_class(core, "fruit", old, new_label=new)
    add_rows(core, "fruit", fruit(12, seed=7), "fruit")
    run = _train_next(core, "fruit")
    detail = records.run_detail(core, run["id"])
    assert detail["spec"]["mode"] == "reuse"  # a quick retrain of the served configuration
    assert detail["result"]["comparison"]["metrics"]["macro_f1"] == detail["result"]["metrics"]["macro_f1"]
    served = run["gate"]["served"]
    assert served["n"] == 12 and served["enough"] and served["left_out_seen"] == 60
    assert served["metrics"]["accuracy"] >= 0.9 and served["new"]["accuracy"] <= 0.5
    assert not run["gate"]["promoted"] and "model in service (version 1) on 12 examples" in run["gate"]["reason"]
    assert _production(core, "fruit") == [1]
    assert run["gate"]["summary"].startswith("The model in service was right") and \
        "kept the one in service" in run["gate"]["summary"]
    assert served["estimate"]["accuracy"] == first["accuracy"]

    history = views.history(core, "fruit")
    row = history["runs"][0]
    assert row["served_summary"] == run["gate"]["summary"]
    assert row["delta_served"]["direction"] == "down"
    assert "measured later" in history["served"][0]["estimate_check"]
    # the API runs listing, the history page and the run page tell the same story
    listed = client.get("/api/v1/projects/fruit/runs")
    assert listed.status_code == 200, listed.text
    listed = listed.json()[0]["gate"]
    assert listed["served"]["n"] == 12 and listed["refit"]["macro_f1"] is not None
    page = unescape(client.get("/projects/fruit/history").text)
    assert run["gate"]["summary"] in page and "vs in service" in page and "How good its estimate was" in page
    page = unescape(client.get(f"/projects/fruit/runs/{run['id']}").text)
    assert run["gate"]["summary"] in page and "its own file, on 12 examples it had never seen" in page


def test_uploaded_model_in_service_is_scored_on_every_sample(core):
    """An uploaded model trained on nothing here: every evaluation sample counts, and the gate
    compares on them, not with the scores it got at upload time."""
    create_project(core, "shop", settings={"auto_train": False, "learners": ["image.pixel_logreg"],
                                           "time_budget_s": 5})
    images = digit_images(digits=(0, 1), per_class=6)
    add_samples(core, "shop", [Upload(f"{i}.png", d) for i, (_, d) in enumerate(images)],
                ["dark" if lab == "digit-0" else "bright" for lab, _ in images])
    upload_model(core, "shop", io.BytesIO(_onnx(BrightnessModel())), ["dark", "bright"])
    promote(core, "shop", 1)
    queue.request_training(core, "shop")
    run = _train_next(core, "shop")
    detail = records.run_detail(core, run["id"])
    served = run["gate"]["served"]
    assert served["left_out_seen"] == 0 and served["n"] == len(detail["result"]["metrics"]["predictions"]) == 12
    assert served["enough"] and served["metrics"]["accuracy"] is not None
    assert run["gate"]["refit"] is None  # nothing to re-fit: the served file is the only comparison
    assert "model in service (version 1) on 12 examples" in run["gate"]["reason"]


def test_regression_quick_retrain_measures_the_served_file_on_new_rows(core):
    create_project(core, "houses", task="tabular-regression", settings=AUTO)
    add_rows(core, "houses", houses(60), "price")
    assert _train_next(core, "houses")["gate"]["promoted"]
    add_rows(core, "houses", houses(12, seed=5), "price")
    run = _train_next(core, "houses")
    served = run["gate"]["served"]
    assert records.run_detail(core, run["id"])["spec"]["mode"] == "reuse"
    assert served["n"] == 12 and served["enough"] and served["metrics"]["r2"] > 0.5
    assert run["gate"]["promoted"] and "r2" in run["gate"]["reason"] and "model in service" in run["gate"]["reason"]
    assert "R²" in run["gate"]["summary"] and "on 12 rows it had never seen" in run["gate"]["summary"]
