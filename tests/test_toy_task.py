"""Proof of the task seam: a task that exists nowhere but here — text → number ("how many stars
does this review give?") — registered from this module and driven through the whole loop:
upload, automatic training, gate, hot swap, prediction records, run page, API and CLI.

Nothing outside this file knows the task: it combines the built-in text modality (with its own
candidate learner, a TF-IDF ridge regression defined below) and the built-in number target.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from dyntrain import learners, tasks
from dyntrain.cli import app
from dyntrain.learners.base import Learner
from dyntrain.learners.candidates import Candidate
from dyntrain.learners.text import TEXT_RAW
from dyntrain.tasks.numbers import NumberTarget
from dyntrain.tasks.text import TextModality
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
runner = CliRunner(env={"COLUMNS": "200"})
TOY = "toy-review-stars"
FAST = {"train_delay_s": 0.3, "train_max_delay_s": 5, "time_budget_s": 10}


class TextRidge(Learner):
    """TF-IDF + ridge regression: a regressor on raw texts, exported whole (string in, value out)."""

    name = "toy.text_ridge"
    input_kind = TEXT_RAW
    contract = "regressor"

    def __init__(self, *, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def fit(self, X, y, *, n_classes=None, sample_weight=None, progress=None):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline

        self.model_ = make_pipeline(TfidfVectorizer(token_pattern=r"(?u)\b\w\w+\b"), Ridge(alpha=self.alpha))
        self.model_.fit([str(t) for t in X], np.asarray(y, np.float64))
        return self

    def predict(self, X):
        return self.model_.predict([str(t) for t in X])

    def predict_proba(self, X):  # the regressor contract has none
        raise NotImplementedError("a regressor predicts values")

    def export_onnx(self, path, *, backbone_dir=None) -> Path:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType

        vectorizer = self.model_.steps[0][1]
        onnx_model = convert_sklearn(self.model_, initial_types=[("text", StringTensorType([None, 1]))],
                                     final_types=[("value", FloatTensorType([None, 1]))], target_opset=17,
                                     options={id(vectorizer): {"locale": "C", "tokenexp": r"\w\w+"}})
        Path(path).write_bytes(onnx_model.SerializeToString())
        return Path(path)


class ReviewTexts(TextModality):
    """The built-in text modality, with this task's own candidates."""

    def candidates(self, target, n_samples, n_classes, time_budget_s):
        return [Candidate(TextRidge.name, {"alpha": a}) for a in (0.1, 1.0, 10.0)]


@pytest.fixture
def toy_task():
    learners.register(TextRidge)
    task = tasks.register(tasks.Task(TOY, ReviewTexts(), NumberTarget(), "Reviews (how many stars?)"))
    yield task
    tasks.unregister(TOY)
    learners.base._REGISTRY.pop(TextRidge.name)  # the learner registry has no public removal: tests only


GOOD, BAD = ["great", "superb", "lovely", "brilliant", "wonderful"], ["awful", "boring", "dreadful", "dull", "poor"]


def reviews(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Stars = 1 + the number of good words (0-4) among five; the rest are bad words."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(0, 5))
        words = list(rng.choice(GOOD, k)) + list(rng.choice(BAD, 5 - k))
        rng.shuffle(words)
        out.append((" ".join(words), 1 + k))
    return out


def _done(api, version):
    return [j for j in api.get(f"/projects/stars/jobs").json() if j["status"] in ("succeeded", "failed")
            and j["dataset_version"] == version]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_toy_task_goes_through_the_whole_loop(toy_task, loop_server, tmp_path, core):
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=60)
    r = api.post("/projects", json={"name": "stars", "task": TOY, "settings": FAST})
    assert r.status_code == 201 and r.json()["settings"]["gate_metric"] == "r2"  # the number target's default

    # upload through the CLI (the modality says texts go to /samples/texts; the target validates numbers)
    data = tmp_path / "reviews.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": stars}) for t, stars in reviews(60)))
    r = runner.invoke(app, ["import", str(data), "-p", "stars", "--url", loop_server.url])
    assert r.exit_code == 0, r.output
    r = api.post("/projects/stars/samples/texts", json={"items": [{"text": "great", "label": "many"}]})
    assert r.status_code == 422 and "number" in r.text  # a label the number target refuses

    # automatic training, the gate and the first model in service
    job = wait_for(lambda: _done(api, 1), timeout=180)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    assert run["result"]["chosen"]["learner"] == TextRidge.name and run["result"]["metrics"]["r2"] > 0.5
    assert run["result"]["gate"]["promoted"] and run["result"]["gate"]["metric"] == "r2"
    model = api.get("/projects/stars/models").json()[0]
    assert model["aliases"] == ["production"] and model["card"]["output"]["name"] == "value"
    assert model["card"]["task"] == TOY and model["card"]["input"]["name"] == "text"

    # predictions: values decoded by the target, recorded
    r = api.post("/projects/stars/predict/texts", json={"texts": ["great superb lovely brilliant wonderful",
                                                                   "awful boring dreadful dull poor", " "]})
    preds = r.json()["predictions"]
    assert preds[0]["value"] > preds[1]["value"] + 2 and "label" not in preds[0]
    assert preds[2]["error"] == "the text is empty"
    records = api.get("/projects/stars/predictions").json()
    assert records["total"] == 2 and records["items"][0]["value"] is not None and records["items"][0]["label"] is None

    # the CLI predicts with the target's columns
    r = runner.invoke(app, ["predict", "stars", "--text", "lovely great dull", "--url", loop_server.url])
    assert r.exit_code == 0 and "value" in r.output and "confidence" not in r.output, r.output

    # more data: a new version retrains, the gate compares with the model in service, which is swapped
    swaps = core.live.swaps
    r = api.post("/projects/stars/samples/texts",
                 json={"items": [{"text": t, "label": str(s)} for t, s in reviews(20, seed=3)]})
    assert r.status_code == 201, r.text
    job = wait_for(lambda: _done(api, 2), timeout=180)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    assert run["result"]["gate"]["against_version"] == 1 and run["result"]["comparison"]["metrics"]["r2"] is not None
    if run["result"]["gate"]["promoted"]:
        wait_for(lambda: core.live.swaps > swaps, timeout=30)
        assert api.post("/projects/stars/predict/texts", json={"texts": ["great"]}).json()[
            "predictions"][0]["model_version"] == 2

    # the pages: the run in the number target's words, its texts shown by the modality
    ui = loop_server.url + "/projects/stars"
    html = httpx.get(f"{ui}/runs/{job['run_id']}").text
    assert "Predicted against true values" in html and "Where it gets confused" not in html
    assert any(w in html for w in GOOD + BAD)  # the largest misses, shown as their texts
    for page in ("", "/history", "/predictions", "/try", "/settings"):
        assert httpx.get(ui + page).status_code == 200, page
    assert "Predicted value" in httpx.get(f"{ui}/predictions").text
    assert 'value="mae"' in httpx.get(f"{ui}/settings").text
