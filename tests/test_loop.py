"""The dynamic loop end to end: a data change retrains, the gate decides, serving swaps, records are kept."""

from __future__ import annotations

import httpx
import pytest

from dyntrain.ops.demo import digit_images
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
FAST = {"train_delay_s": 0.5, "train_max_delay_s": 10, "time_budget_s": 5}


def _upload(api, project, images, **params):
    r = api.post(f"/projects/{project}/samples", params=params,
                 files=[("files", (f"{label}-{i}.png", data)) for i, (label, data) in enumerate(images)],
                 data={"labels": [label for label, _ in images]})
    assert r.status_code == 201, r.text
    return r.json()


def _finished_jobs(api, project):
    return [j for j in api.get(f"/projects/{project}/jobs").json() if j["status"] in ("succeeded", "failed", "cancelled")]


def test_change_trains_promotes_serves_and_records(loop_server):
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=60)
    assert api.post("/projects", json={"name": "digits", "settings": FAST}).status_code == 201
    r = api.post("/projects/digits/predict", files=[("files", ("x.png", digit_images(per_class=1)[0][1]))])
    assert r.status_code == 409 and "no model in service" in r.json()["error"]["message"]

    _upload(api, "digits", digit_images(per_class=10))
    job = wait_for(lambda: _finished_jobs(api, "digits"))[0]
    assert job["status"] == "succeeded", job
    assert job["trigger"] in ("auto", "cap") and job["dataset_version"] == 1
    models = api.get("/projects/digits/models").json()
    assert models[0]["version"] == 1 and models[0]["aliases"] == ["production"]
    history = api.get("/projects/digits/aliases/history").json()
    assert history[0]["version"] == 1 and "first model" in history[0]["reason"]

    test_images = digit_images(per_class=3, offset=20)  # unseen digits
    r = api.post("/projects/digits/predict", files=[("files", (f"t{i}.png", d)) for i, (_, d) in enumerate(test_images)]
                 + [("files", ("broken.png", b"nope"))]).json()["predictions"]
    assert len(r) == 10 and "error" in r[-1] and r[-1]["file"] == "broken.png"
    good = r[:-1]
    assert all(p["model_version"] == 1 and abs(sum(p["scores"].values()) - 1) < 1e-4 for p in good)
    accuracy = sum(p["label"] == label for p, (label, _) in zip(good, test_images)) / len(good)
    assert accuracy >= 0.7
    records = api.get("/projects/digits/predictions", params={"order": "least_confident"}).json()
    assert records["total"] == 9
    confidences = [p["confidence"] for p in records["items"]]
    assert confidences == sorted(confidences)

    # correct one prediction and add it to training: a new version, and the loop trains again
    pid = good[0]["prediction_id"]
    r = api.post(f"/projects/digits/predictions/{pid}/feedback", json={"label": test_images[0][0], "add_to_training": True})
    assert r.status_code == 200 and r.json()["version"]["number"] == 2
    jobs = wait_for(lambda: [j for j in _finished_jobs(api, "digits") if j["dataset_version"] == 2])
    assert jobs[0]["status"] == "succeeded"
    runs = api.get("/projects/digits/runs").json()
    assert len(runs) == 2 and runs[0]["gate"]["against_version"] == 1
    run = api.get(f"/runs/{runs[0]['id']}").json()
    assert run["result"]["comparison"]["metrics"]["macro_f1"] is not None
    assert "quick retrain" in run["log"] or "full selection" in run["log"]

    # the event history tells the whole story, in order
    types = [e["type"] for e in api.get("/projects/digits/events", params={"after": 0}).json()["events"]]
    for expected in ("data.changed", "job.delayed", "job.started", "job.progress", "model.promoted", "job.finished"):
        assert expected in types
    assert types.index("job.started") < types.index("model.promoted") < types.index("job.finished")

    # rollback and promote move the alias, and serving follows at once
    assert api.post("/projects/digits/models/1/promote").json()["production"] == 1
    p = api.post("/projects/digits/predict", files=[("files", ("a.png", test_images[0][1]))]).json()
    assert p["predictions"][0]["model_version"] == 1


def test_worse_model_is_kept_back_and_the_event_says_why(loop_server, core, monkeypatch):
    """If the next run's configuration is worse than the production model's configuration on
    the same data, the gate keeps production."""
    from dyntrain.scheduler import jobs
    from dyntrain.training.pipeline import TrainingSpec

    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=60)
    api.post("/projects", json={"name": "gate", "settings": FAST})
    _upload(api, "gate", digit_images(per_class=10))
    wait_for(lambda: _finished_jobs(api, "gate"))
    assert api.get("/projects/gate/models").json()[0]["aliases"] == ["production"]
    # Pretend the next run refits a crippled configuration (tiny C: near-uniform output). (A quick
    # retrain itself only ever refits the configuration in service: tests/test_scheduling_rules.py.)
    crippled = {"learner": "image.pixel_logreg", "params": {"C": 1e-6}}
    monkeypatch.setattr(jobs, "choose_spec", lambda core, project, job, *a: (TrainingSpec(
        job.dataset_version, task=project.task, mode="reuse", candidates=(crippled,)), "a crippled configuration"))
    _upload(api, "gate", digit_images(per_class=1, offset=30))
    job = wait_for(lambda: [j for j in _finished_jobs(api, "gate") if j["dataset_version"] == 2])[0]
    assert job["status"] == "succeeded"
    models = api.get("/projects/gate/models").json()
    assert [m["version"] for m in models] == [2, 1] and models[0]["aliases"] == [] and models[1]["aliases"] == ["production"]
    kept = [e for e in api.get("/projects/gate/events").json()["events"] if e["type"] == "model.kept_back"]
    assert kept and "stays" in kept[0]["data"]["reason"] and kept[0]["data"]["version"] == 2
