"""The whole loop with a soft vote (SQLite): an image project whose selection votes serves one
file that gives the vote's probabilities, explains it by occlusion, and retrains it quickly
(every member refitted) when a few images arrive."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import imaging
from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.kernel.projects import create_project
from dyntrain.learners.candidates import Candidate
from dyntrain.learners.features import FeatureExtractor, FeatureSet
from dyntrain.registry.models import list_models
from dyntrain.scheduler import queue
from dyntrain.scheduler.jobs import run_job
from dyntrain.serving.live import load_model
from dyntrain.training import records
from tests.learners.learner_data import mnist, mnist_labels

pytestmark = pytest.mark.slow
# Ten MNIST digits, five of each: Lite0 features and raw pixels are each right about 3 times in 4
# and wrong on different images; their vote scores 0.84 against 0.73 on the same folds (measured)
SETTINGS = {"train_delay_s": 0, "train_max_delay_s": 60, "time_budget_s": 20, "augmentation": "off",
            "learners": ["image.linear_probe", "image.pixel_logreg"]}


def _add(core, per_class: int, offset: int = 0) -> None:
    labels = mnist_labels()
    idx = np.concatenate([np.flatnonzero(labels == c)[offset:offset + per_class] for c in range(10)])
    images, y = mnist(idx)
    uploads = []
    for i, image in zip(idx, images):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        uploads.append(Upload(f"mnist-{i}.png", buf.getvalue()))
    add_samples(core, "digits", uploads, [f"digit-{c}" for c in y])


def _train_next(core) -> dict:
    job = queue.claim_next(core)
    assert job is not None
    run_job(core, job)
    return records.run_detail(core, records.list_runs(core, "digits", 1)[0]["id"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_voting_image_project_serves_explains_and_quickly_retrains_its_vote(core, client):
    create_project(core, "digits", settings=SETTINGS)
    _add(core, 5)
    first = _train_next(core)
    result = first["result"]
    chosen = Candidate.from_dict(result["chosen"])
    assert first["status"] == "succeeded" and chosen.learner == "ensemble.soft_vote", result["selection"]["reason"]
    assert result["gate"]["promoted"] and first["learner"] == chosen.label  # runs list it by its members
    assert result["selection"]["chosen_index"] == result["selection"]["ensemble_index"]
    assert "soft vote" in first["log"] and chosen.label in first["log"]
    (model,) = list_models(core, "digits")
    assert model.card["model"] == chosen.label and model.card["params"] == chosen.params

    # the served file gives the vote's probabilities: its members refitted here on the same images
    predictions = result["metrics"]["predictions"]
    hashes = [p["content_hash"] for p in predictions]
    images = [imaging.model_input(imaging.decode_image(core.blobs.get(h))) for h in hashes]
    X = FeatureSet(FeatureExtractor(core.settings.cache_dir).features_by_kind(
        ["lite0.pooled", "pixels.gray32"], hashes, lambda h: images[hashes.index(h)]))
    labels = model.card["labels"]
    vote = chosen.build().fit(X[chosen.kind], np.array([labels.index(p["true"]) for p in predictions]),
                              n_classes=len(labels))
    served = load_model(core.live.model_dir / model.path, 0, 0, labels, task="image-classification")
    np.testing.assert_allclose(served.predict_items(images[:12]), vote.predict_proba(X[chosen.kind][:12]), atol=1e-5)

    # CAM cannot explain a vote; auto falls back to occlusion
    buf = io.BytesIO()
    Image.fromarray(images[0]).save(buf, "PNG")
    r = client.post("/api/v1/projects/digits/predict", params={"explain": "auto"}, files=[("files", ("a.png", buf.getvalue()))])
    assert r.status_code == 200, r.text
    e = r.json()["predictions"][0]["explanation"]
    assert e["method"] == "occlusion" and e["status"] in ("ready", "pending"), e
    cam = client.post("/api/v1/projects/digits/predict", params={"explain": "cam"},
                      files=[("files", ("a.png", buf.getvalue()))]).json()["predictions"][0]["explanation"]
    assert cam["status"] == "unavailable" and "occlusion" in cam["reason"]

    # a few new images: a quick retrain refits the vote in service, every member
    _add(core, 1, offset=5)
    second = _train_next(core)
    assert second["status"] == "succeeded" and second["spec"]["mode"] == "reuse", second["log"]
    assert second["spec"]["candidates"] == [result["chosen"]] and second["result"]["chosen"] == result["chosen"]
    assert second["result"]["comparison"]["candidate"] == result["chosen"]
    assert second["result"]["gate"]["served"]["n"] > 0  # the served vote's own file, scored on the new images
    new = [m for m in list_models(core, "digits") if m.version == 2][0]
    assert new.card["learner"] == "ensemble.soft_vote" and new.card["model"] == chosen.label

    # the run page names the vote and each member in words, not its parameter dict
    page = client.get(f"/projects/digits/runs/{first['id']}").text
    assert "A vote of several kinds of model" in page and "members: " in page and "{&#39;learner&#39;" not in page
