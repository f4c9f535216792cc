"""Object detection through the whole loop, on SQLite and PostgreSQL: images with boxes in →
automatic training → gate → hot swap → predictions with boxes → a corrected prediction back into
training → retrain, compared with the model in service on its own file.

The images are synthetic scenes built from real photos (dyntrain.ops.scenes): objects cut from
photos pasted on photo backgrounds, their boxes known exactly.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import httpx
import pytest
from PIL import Image

from dyntrain.ops.scenes import make_scenes
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
FAST = {"train_delay_s": 0.3, "train_max_delay_s": 5, "time_budget_s": 20}


def _png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def _done(api, version):
    return [j for j in api.get("/projects/shelf/jobs").json() if j["status"] in ("succeeded", "failed")
            and j["dataset_version"] == version]


def test_detection_goes_through_the_whole_loop(loop_server, core, browser, tmp_path):
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=120)
    r = api.post("/projects", json={"name": "shelf", "task": "object-detection", "settings": FAST})
    assert r.status_code == 201 and r.json()["settings"]["gate_metric"] in ("map50_95", "macro_f1")
    scenes = make_scenes(14, classes=2, size=256, seed=1)
    train, new = scenes[:12], scenes[12:]

    # a box outside its image is refused, naming the box; nothing is written
    bad = dict(train[0].boxes[0]) if train[0].boxes else {"label": "x", "x": 0, "y": 0, "w": 5, "h": 5}
    bad["x"] = 250
    r = api.post("/projects/shelf/samples", files=[("files", ("a.png", _png(train[0].image)))],
                 data={"label": json.dumps([bad])})
    assert r.status_code == 422 and "box 0" in r.text and "outside" in r.text, r.text
    assert api.get("/projects/shelf/dataset-versions").json() == []

    # images with their boxes: one version, the classes come from the boxes
    r = api.post("/projects/shelf/samples", files=[("files", (f"s{i}.png", _png(s.image))) for i, s in enumerate(train)],
                 data={"labels": [json.dumps(s.boxes) for s in train]})
    assert r.status_code == 201, r.text
    stored = r.json()["samples"]
    assert [len(s["annotation"]) for s in stored] == [len(s.boxes) for s in train]
    classes = {c["label"]: c["count"] for c in api.get("/projects/shelf/classes").json()}
    assert set(classes) == set(train[0].class_names) and all(n >= 2 for n in classes.values()), classes

    # automatic training, the gate, the first model in service
    job = wait_for(lambda: _done(api, 1), timeout=600)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    result = run["result"]
    assert result["chosen"]["learner"] == "image.centernet"
    assert result["metrics"]["map50"] is not None and result["metrics"]["map50"] > 0.3, result["metrics"]
    assert result["gate"]["promoted"], result["gate"]
    model = api.get("/projects/shelf/models").json()[0]
    assert model["aliases"] == ["production"] and model["card"]["output"]["name"] == "boxes"

    # predictions: boxes in the original image's pixels, recorded whole
    r = api.post("/projects/shelf/predict", files=[("files", (f"n{i}.png", _png(s.image))) for i, s in enumerate(new)])
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    assert all("boxes" in a and a["model_version"] == 1 for a in answers)
    drawn = [b for a in answers for b in a["boxes"]]
    assert drawn and all(0 <= b["x"] <= 256 and b["w"] > 0 and b["label"] in classes for b in drawn), drawn
    records = api.get("/projects/shelf/predictions").json()
    top = answers[0]["boxes"][0]["label"] if answers[0]["boxes"] else None  # the surest box's class: the list filters on it
    assert records["total"] == 2 and records["items"][-1]["label"] == top and records["items"][-1]["output"]["boxes"] == answers[0]["boxes"]

    # serving boxes needs neither torch nor the training stack: an inference-only process on the same data
    probe = (
        "import sys\n"
        "from dyntrain.kernel.config import Settings\nfrom dyntrain.kernel.core import Core\n"
        "from dyntrain.serving.predict import predict_items\n"
        f"core = Core.create(Settings(data_dir={str(core.settings.data_dir)!r}, database_url={core.settings.database_url!r}), migrate=False)\n"
        f"p = predict_items(core, 'shelf', [('n.png', open({str(tmp_path / 'n.png')!r}, 'rb').read())])\n"
        "print(len(p[0]['boxes']), 'torch' in sys.modules, sorted(m for m in sys.modules if m.startswith('dyntrain.learners')))\n"
    )
    (tmp_path / "n.png").write_bytes(_png(new[0].image))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[1:] == ["False", "[]"], out.stdout
    assert int(out.stdout.split()[0]) == len(answers[0]["boxes"])

    # the Try page in a real browser: a photo in, the model's boxes drawn over it, no console error
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{loop_server.url}/projects/shelf/try")
    page.set_input_files("#try-file", files=[{"name": "new.png", "mimeType": "image/png", "buffer": _png(new[1].image)}])
    page.wait_for_selector("#try-answer:not([hidden])", timeout=30_000)
    assert "version 1" in page.inner_text("#try-meta")
    drawn_ui = page.locator("#try-frame [data-box], #try-frame .bx-box, #try-frame rect").count()
    listed = page.locator("#try-found li").count()
    assert listed >= 1 and drawn_ui >= 1, page.inner_html("#try-answer")
    assert not errors, errors
    page.close()

    # a correction: the true boxes go back into training as a new version, which retrains
    r = api.post(f"/projects/shelf/predictions/{answers[0]['prediction_id']}/feedback",
                 json={"label": new[0].boxes, "add_to_training": True})
    assert r.status_code == 200, r.text
    assert r.json()["version"]["number"] == 2 and len(r.json()["samples"][0]["annotation"]) == len(new[0].boxes)
    job = wait_for(lambda: _done(api, 2), timeout=600)[0]
    assert job["status"] == "succeeded", job
    gate = api.get(f"/runs/{job['run_id']}").json()["result"]["gate"]
    assert gate["against_version"] == 1 and gate["served"] is not None  # the served file was run on the same images

    # the pages: the run report in boxes, the data and try pages of the photo modality
    ui = loop_server.url + "/projects/shelf"
    html = httpx.get(f"{ui}/runs/{job['run_id']}").text
    assert "Class by class" in html and "mAP50" in html
    for page in ("", "/history", "/predictions", "/try", "/settings"):
        assert httpx.get(ui + page).status_code == 200, page
