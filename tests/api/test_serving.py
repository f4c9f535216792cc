"""Registry, inference options, prediction records and the event stream over real HTTP."""

from __future__ import annotations

import json

import httpx
import onnx
import pytest

from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.projects import create_project, update_project
from dyntrain.scheduler import queue
from dyntrain.scheduler.jobs import run_job

QUICK = {"auto_train": False, "learners": ["image.pixel_logreg", "image.linear_probe"], "time_budget_s": 5}


@pytest.fixture
def trained(core):
    """A project with one model in service, trained for real on digits."""
    create_project(core, "digits", settings=QUICK)
    images = digit_images(per_class=8)
    add_samples(core, "digits", [Upload(f"{i}.png", d) for i, (_, d) in enumerate(images)], [lab for lab, _ in images])
    queue.request_training(core, "digits")
    run_job(core, queue.claim_next(core))
    return core


def _predict(api, image, **params):
    return api.post("/projects/digits/predict", params=params, files=[("files", ("x.png", image))])


def test_models_card_file_and_rollback(trained, live_server):
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    models = api.get("/projects/digits/models").json()
    assert len(models) == 1 and models[0]["aliases"] == ["production"]
    card = api.get("/projects/digits/models/1").json()["card"]
    assert card["labels"] == ["digit-0", "digit-1", "digit-7"] and card["learner"] in QUICK["learners"]
    assert card["dataset_version"] == 1 and card["metrics"]["macro_f1"] > 0.5
    blob = api.get("/projects/digits/models/1/file").content
    model = onnx.load_from_string(blob)
    assert model.graph.input[0].name == "image" and model.graph.output[0].name == "probabilities"
    r = api.post("/projects/digits/rollback")
    assert r.status_code == 422 and "nothing to roll back" in r.json()["error"]["message"]
    assert api.get("/projects/digits/models/9").status_code == 404
    assert _predict(api, digit_images(per_class=1)[0][1], version=9).status_code == 404


def test_confidence_threshold_and_input_storage(trained, live_server):
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    image = digit_images(per_class=1, offset=30)[0][1]
    first = _predict(api, image).json()["predictions"][0]
    assert first["label"] is not None
    update_project(trained, "digits", settings={"confidence_threshold": 0.999999, "store_prediction_inputs": False})
    p = _predict(api, image).json()["predictions"][0]
    assert p["label"] is None and p["scores"] == first["scores"]  # "none of these", scores still given
    records = api.get("/projects/digits/predictions").json()["items"]
    assert records[0]["label"] is None and records[0]["input_stored"] is False
    r = api.post(f"/projects/digits/predictions/{records[0]['id']}/add-to-training", data={"label": "digit-0"})
    assert r.status_code == 409 and "not kept" in r.json()["error"]["message"]
    # the first prediction's input was stored: it can become a sample
    r = api.post(f"/projects/digits/predictions/{records[1]['id']}/add-to-training", data={"label": "digit-0"})
    assert r.status_code == 200 and r.json()["version"]["number"] == 2
    assert api.get("/projects/digits/predictions", params={"label": "digit-0", "min_confidence": 0.1}).status_code == 200
    assert api.get("/projects/digits/predictions", params={"order": "sideways"}).status_code == 422


def test_event_stream_resumes_after_last_event_id(trained, live_server):
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    history = api.get("/projects/digits/events", params={"after": 0}).json()["events"]
    assert [e["id"] for e in history] == sorted(e["id"] for e in history) and len(history) >= 4
    middle = history[len(history) // 2]["id"]
    got = []
    with httpx.stream("GET", live_server.url + "/api/v1/projects/digits/events",
                      headers={"Accept": "text/event-stream", "Last-Event-ID": str(middle)}, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                got.append(json.loads(line[5:]))
                if got[-1]["id"] == history[-1]["id"]:
                    break
    assert [e["id"] for e in got] == [e["id"] for e in history if e["id"] > middle]
    assert api.get("/projects/nope/events").status_code == 404


def test_predict_errors(trained, live_server):
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    assert api.post("/projects/digits/predict").status_code == 422
    r = api.post("/projects/nope/predict", files=[("files", ("x.png", b"x"))])
    assert r.status_code == 404
    r = api.post("/projects/digits/predict", files=[("files", ("a.txt", b"hello")), ("files", ("e.png", b""))])
    assert r.status_code == 200
    assert [p["error"] for p in r.json()["predictions"]][1].startswith("the file is empty")


def test_retention_forgets_old_inputs_but_keeps_training_data(trained):
    from datetime import timedelta

    from dyntrain.ops.housekeeping import gc
    from dyntrain.serving.predict import predict_items
    from dyntrain.storage.rows import PredictionRow

    fresh = digit_images(per_class=1, offset=33)[0][1]
    training = trained.blobs.get(next(iter(_sample_hashes(trained))))
    results = predict_items(trained, "digits", [("new.png", fresh), ("known.png", training)])
    update_project(trained, "digits", settings={"prediction_retention_days": 1})
    with trained.db.write() as s:
        for r in results:
            s.get(PredictionRow, r["prediction_id"]).created_at -= timedelta(days=2)
    trained.settings.gc_grace_s = 0
    assert gc(trained).stored_inputs.count == 2
    from dyntrain.storage import sha256_hex

    assert not trained.blobs.exists(sha256_hex(fresh))  # only a prediction used it: deleted
    assert trained.blobs.exists(sha256_hex(training))  # a training sample uses it: kept
    with trained.db.read() as s:
        assert all(s.get(PredictionRow, r["prediction_id"]).input_stored is False for r in results)


def _sample_hashes(core):
    from dyntrain.datasets.changes import list_samples

    return [s.content_hash for s in list_samples(core, "digits")[0]]
