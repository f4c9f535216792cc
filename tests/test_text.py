"""Text classification through the whole loop, and a torch-free inference process."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from dyntrain.cli import app
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
runner = CliRunner(env={"COLUMNS": "200"})

POSITIVE = ["A wonderful, moving film with a brilliant cast.", "I loved every minute of it.",
            "Great acting and a clever, funny script.", "Beautifully shot and deeply touching.",
            "One of the best films of the year.", "A delightful surprise, warm and charming.",
            "Superb performances and a gripping story.", "Smart, tender and often hilarious.",
            "An absolute joy from start to finish.", "Fresh, inventive and full of heart."]
NEGATIVE = ["A dull, lifeless mess of a movie.", "I was bored from start to finish.",
            "Terrible acting and a ridiculous plot.", "A complete waste of two hours.",
            "Clumsy, predictable and far too long.", "The script is lazy and the jokes fall flat.",
            "An ugly, tedious and pointless film.", "Awful dialogue and wooden performances.",
            "Painfully slow and utterly forgettable.", "A muddled, boring disappointment."]


def _jobs_done(api, project):
    return [j for j in api.get(f"/projects/{project}/jobs").json() if j["status"] in ("succeeded", "failed")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_text_project_through_the_loop(loop_server, tmp_path, core):
    data = tmp_path / "reviews.jsonl"
    data.write_text("\n".join(json.dumps({"review": t, "sentiment": lab}) for lab, texts in
                              (("positive", POSITIVE), ("negative", NEGATIVE)) for t in texts))
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=60)
    api.post("/projects", json={"name": "reviews", "task": "text-classification",
                                "settings": {"train_delay_s": 0.5, "time_budget_s": 10}})
    r = runner.invoke(app, ["import", str(data), "-p", "reviews", "--text-column", "review",
                            "--label-column", "sentiment", "--url", loop_server.url])
    assert r.exit_code == 0, r.output
    job = wait_for(lambda: _jobs_done(api, "reviews"), timeout=300)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    selection = run["result"]["selection"]  # the candidates that ran, then their soft vote
    learners = {s["candidate"]["learner"] for s in selection["scores"] if s["index"] != selection["ensemble_index"]}
    assert learners == {"text.embedding_logreg", "text.tfidf_logreg"}
    assert api.get("/projects/reviews/models").json()[0]["aliases"] == ["production"]

    r = api.post("/projects/reviews/predict/texts", json={"texts": ["What a brilliant, touching film!",
                                                                    "Dreadful and boring.", "   "]})
    preds = r.json()["predictions"]
    assert preds[0]["label"] == "positive" and preds[1]["label"] == "negative"
    assert preds[2]["error"] == "the text is empty"
    r = runner.invoke(app, ["predict", "reviews", "--text", "A charming delight", "--json", "--url", loop_server.url])
    assert r.exit_code == 0 and json.loads(r.output)["predictions"][0]["label"] == "positive"
    records = api.get("/projects/reviews/predictions").json()
    assert records["total"] == 3

    # a text upload into an image project, and an image into a text project, are refused
    api.post("/projects", json={"name": "pics"})
    r = api.post("/projects/pics/samples/texts", json={"items": [{"text": "hello", "label": "x"}]})
    assert r.status_code == 422
    r = api.post("/projects/reviews/samples/texts", json={"items": [{"text": " ", "label": "x"}]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["reason"] == "the text is empty"

    # serving text needs no torch: an inference-only process on the same data
    probe = (
        "import sys\n"
        "from dyntrain.kernel.config import Settings\nfrom dyntrain.kernel.core import Core\n"
        "from dyntrain.serving.predict import predict_items\n"
        f"core = Core.create(Settings(data_dir={str(core.settings.data_dir)!r}, database_url={core.settings.database_url!r}), migrate=False)\n"
        "p = predict_items(core, 'reviews', [('t', 'A superb, moving story'.encode())])\n"
        "print(p[0]['label'], 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["positive", "False", "False"]


def test_csv_import_errors(tmp_path, live_server):
    bad = tmp_path / "bad.csv"
    bad.write_text("comment,label\nhello,x\n")
    r = runner.invoke(app, ["import", str(bad), "-p", "t", "--url", live_server.url])
    assert r.exit_code == 1 and "--text-column" in r.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": "b"}\nnot json\n')
    r = runner.invoke(app, ["import", str(broken), "-p", "t", "--url", live_server.url])
    assert r.exit_code == 1 and "line 2 is not JSON" in r.output
