"""Fast checks of the HTML pages (no browser, no training): every page renders, unknown
projects and runs get a clear 404 page, and pages go through the app's caller dependency."""

from __future__ import annotations

from html import unescape

import numpy as np
import pytest
from fastapi import HTTPException

from dyntrain.api.deps import caller
from dyntrain.datasets.changes import Upload, add_samples
from dyntrain import tasks
from dyntrain.learners.metrics import classification_metrics
from dyntrain.kernel.projects import create_project, get_project
from dyntrain.training import records
from dyntrain.web import views

from ..conftest import png_bytes

PAGES = ["", "/history", "/try", "/predictions", "/settings", "/fragments/data", "/fragments/history"]


def _fake_run(core, name: str, samples) -> int:
    """A finished run record shaped like the training pipeline's (no training needed)."""
    labels = ["Earbuds", "Headset"]
    truth = np.array([labels.index(s.label) for s in samples])
    rng = np.random.default_rng(0)
    proba = np.full((len(samples), 2), 0.1)
    proba[np.arange(len(samples)), truth] = 0.9
    proba[0] = proba[0][::-1]  # one mistake, so the matrix has a red cell
    proba += rng.uniform(0, 0.01, proba.shape)
    metrics = classification_metrics(truth, proba / proba.sum(1, keepdims=True), labels)
    metrics["predictions"] = [{"sample_id": s.id, "content_hash": s.content_hash, "true": labels[t],
                               "predicted": labels[int(np.argmax(p))], "confidence": round(float(p.max()), 4)}
                              for s, t, p in zip(samples, truth, proba)]
    score = {"candidate": {"learner": "image.linear_probe", "params": {"C": 1.0}}, "label": "image.linear_probe(C=1.0)",
             "macro_f1_mean": 0.8, "macro_f1_sd": 0.1, "accuracy_mean": 0.82, "accuracy_sd": 0.1,
             "fold_macro_f1": [], "fold_accuracy": [], "seconds": 0.4, "error": None}
    result = {
        "labels": labels, "counts": {"Earbuds": 3, "Headset": 4},
        "evaluation": {"mode": "cv", "reason": "too few", "train_size": 7, "holdout_size": 0},
        "chosen": {"learner": "image.small_cnn", "params": {"epochs": 3}},
        "selection": {"chosen_index": 1, "cut_at": None, "n_candidates": 2, "scores": [
            {**score, "index": 0},
            {**score, "index": 1, "candidate": {"learner": "image.small_cnn", "params": {"epochs": 3}},
             "label": "image.small_cnn(epochs=3)", "macro_f1_mean": 0.85}]},
        "metrics": metrics, "baseline": {"accuracy": 0.57, "macro_f1": 0.36}, "comparison": None,
        "curves": [{"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 10, "lr": 0.001, "seconds": e} for e in (1, 2, 3)],
        "gate": {"promoted": False, "reason": "macro_f1 would drop", "against_version": None, "metric": "macro_f1"},
        "seconds": 1.5,
    }
    pid = get_project(core, name).id
    run_id = records.start_run(core, pid, None, 1, {"why": "full selection: training was requested by hand"})
    records.finish_run(core, run_id, "succeeded", result=result, log="a log line")
    failed = records.start_run(core, pid, None, 1, {})
    records.finish_run(core, failed, "failed", error="every class needs at least 2 examples")
    return run_id


@pytest.fixture
def shop(core):
    create_project(core, "shop", description="Headsets and earbuds", settings={"auto_train": False})
    images = [("Headset", png_bytes(i)) for i in range(4)] + [("Earbuds", png_bytes(10 + i)) for i in range(3)]
    samples, _ = add_samples(core, "shop", [Upload(f"{label}-{i}.png", data) for i, (label, data) in enumerate(images)],
                             [label for label, _ in images])
    add_samples(core, "shop", [Upload("copy.png", png_bytes(0))], ["Headset"])  # a duplicate
    return {"name": "shop", "run_id": _fake_run(core, "shop", samples), "samples": samples}


def test_every_page_renders(client, shop):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "shop" in r.text and "New project" in r.text
    assert client.get("/fragments/projects").status_code == 200
    for suffix in PAGES:
        r = client.get(f"/projects/shop{suffix}")
        assert r.status_code == 200, (suffix, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
    data = client.get("/projects/shop").text
    assert 'data-label="Headset"' in data and 'data-label="Earbuds"' in data
    assert 'data-findings-for="Earbuds"' in data and 'id="health"' in data  # filled from GET /health
    assert 'id="live"' in data and "Train now" in data

    run = client.get(f"/projects/shop/runs/{shop['run_id']}")
    assert run.status_code == 200
    assert "recognised correctly" in run.text and "when wrong, they are taken for" in run.text
    assert 'class="cm-cell"' in run.text and "Models tried" in run.text and "Training loss per epoch" in run.text
    cell = client.get(f"/projects/shop/runs/{shop['run_id']}?cell=1-0")
    assert "Headset taken for Earbuds — 1 example" in unescape(cell.text)
    assert f"/samples/{shop['samples'][0].id}/thumbnail" in cell.text

    # a plain GET form sends "" for "any"
    assert client.get("/projects/shop/predictions?label=&max_confidence=&version=&order=least_confident").status_code == 200

    history = client.get("/projects/shop/history").text
    assert f"/projects/shop/runs/{shop['run_id']}" in history and "failed" in history


def test_settings_page_has_an_input_for_every_setting(client, shop):
    page = client.get("/projects/shop/settings").text
    for field in client.get("/api/v1/settings-schema").json():
        if field["name"] == "class_colors":  # only where classes have colours (tests/test_class_colors.py)
            assert 'id="s-class_colors' not in page
            continue
        assert f'id="s-{field["name"]}' in page, field["name"]


def test_try_page_without_a_model_says_so(client, shop):
    assert "No model is in service yet" in client.get("/projects/shop/try").text


def test_unknown_project_is_a_clear_404_page(client):
    for path in ["/projects/nope" + s for s in PAGES] + ["/projects/nope/runs/1"]:
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "Project 'nope' does not exist." in unescape(r.text) and "Back to all projects" in r.text


def test_unknown_or_foreign_run_is_404(client, core, shop):
    assert client.get("/projects/shop/runs/9999").status_code == 404
    create_project(core, "other")
    r = client.get(f"/projects/other/runs/{shop['run_id']}")
    assert r.status_code == 404 and "does not belong to project 'other'" in unescape(r.text)
    assert client.get("/api/v1/projects/shop/predictions/12345/image").status_code == 404


def test_static_files_are_served(client):
    for name in ("app.js", "style.css", "data.js", "try.js", "run.js", "settings.js", "predictions.js", "projects.js"):
        assert client.get(f"/static/{name}").status_code == 200, name


def test_pages_go_through_the_app_caller_dependency(client, shop):
    """Login can be added in one place: replacing ``caller`` closes the pages too."""

    def nobody():
        raise HTTPException(401, "log in first")

    client.app.dependency_overrides[caller] = nobody
    try:
        for path in ["/", "/projects/shop", f"/projects/shop/runs/{shop['run_id']}", "/projects/shop/settings"]:
            assert client.get(path).status_code == 401, path
    finally:
        client.app.dependency_overrides.clear()
    assert client.get("/").status_code == 200


def test_plain_words_per_class():
    metrics = {"labels": ["Headsets", "Earbuds", "Speakers"],
               "confusion_matrix": [[19, 1, 0], [2, 18, 0], [0, 0, 20]], "predictions": []}
    words = {s["label"]: s["sentence"] for s in views.class_sentences(metrics)}
    assert words["Headsets"].startswith("“Headsets” examples are recognised correctly 19 times out of 20; "
                                        "when wrong, they are taken for “Earbuds”.")
    assert "every time (20 out of 20)" in words["Speakers"]
    # repeated cross-validation counts each example twice: say it per example
    metrics["confusion_matrix"] = [[38, 2, 0], [4, 36, 0], [0, 0, 40]]
    metrics["predictions"] = [{"true": lab} for lab in ["Headsets"] * 20 + ["Earbuds"] * 20 + ["Speakers"] * 20]
    words = {s["label"]: s["sentence"] for s in views.class_sentences(metrics)}
    assert "about 19 times out of 20" in words["Headsets"]


def test_data_page_says_why_training_would_refuse(client, core):
    create_project(core, "solo", settings={"auto_train": False})
    add_samples(core, "solo", [Upload("a.png", png_bytes(1)), Upload("b.png", png_bytes(2))], ["cat"])
    page = unescape(client.get("/projects/solo").text)
    assert "Training needs at least 2 classes" in page
    target = tasks.get("image-classification").target
    assert target.problem({"a": 30, "b": 1}).startswith("every class needs at least 2 examples")
    assert target.problem({"a": 3, "b": 2, "new": 0}) is None


def test_text_project_pages(client, core):
    """Text projects show texts instead of pictures."""
    create_project(core, "reviews", task="text-classification", settings={"auto_train": False})
    texts = [("great film, loved it", "good"), ("wonderful acting", "good"), ("dull and far too long", "bad"),
             ("a waste of time", "bad")]
    add_samples(core, "reviews", [Upload(f"t{i}", t.encode()) for i, (t, _) in enumerate(texts)],
                [label for _, label in texts])
    page = client.get("/projects/reviews").text
    assert "great film, loved it" in page and "data-add-texts" in page and 'type="file"' not in page
    try_page = client.get("/projects/reviews/try").text
    assert 'id="try-text"' in try_page and 'id="try-file"' not in try_page
    for suffix in PAGES:
        assert client.get(f"/projects/reviews{suffix}").status_code == 200, suffix
