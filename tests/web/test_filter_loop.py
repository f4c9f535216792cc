"""Learned image filters through the whole loop, on SQLite and PostgreSQL over a real HTTP server:
photo/edge-map pairs in (a zip of inputs/ + outputs/ through POST …/samples/archive) → automatic
training → gate → hot swap → a predicted output image → a corrected output back into training →
retrain → the new version served. The photos are crops of scikit-learn's sample photos, the
outputs their Sobel edge maps (dyntrain.ops.edge_pairs)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import zipfile

import httpx
import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import pairs
from dyntrain.ops.edge_pairs import sample_crops, sobel_map
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
FAST = {"train_delay_s": 0.3, "train_max_delay_s": 5, "time_budget_s": 30}


def _png(array, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt)
    return buf.getvalue()


def _zip(photos) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, p in enumerate(photos):
            zf.writestr(f"edges/inputs/p{i}.png", _png(p))
            zf.writestr(f"edges/outputs/p{i}.png", _png(sobel_map(p)))
    return buf.getvalue()


def _done(api, version):
    return [j for j in api.get("/projects/edges/jobs").json() if j["status"] in ("succeeded", "failed")
            and j["dataset_version"] == version]


def test_a_learned_filter_goes_through_the_whole_loop(loop_server, core, tmp_path):
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=120)
    r = api.post("/projects", json={"name": "edges", "task": "image-to-image", "settings": FAST})
    assert r.status_code == 201, r.text
    photos = sample_crops(11, seed=2)
    train, new = photos[:8], photos[8:]

    # an output of another size or a JPEG is refused, naming the problem; nothing is written
    r = api.post("/projects/edges/samples", files=[("files", ("a.png", _png(train[0])))],
                 data={"label": json.dumps({"image": base64.b64encode(_png(sobel_map(train[0])[:40])).decode()})})
    assert r.status_code == 422 and "96x40" in r.text and "96x80" in r.text, r.text
    r = api.post("/projects/edges/samples", files=[("files", ("a.png", _png(train[0])))],
                 data={"label": json.dumps({"image": base64.b64encode(_png(sobel_map(train[0]), "JPEG")).decode()})})
    assert r.status_code == 422 and "JPEG" in r.text and "PNG" in r.text, r.text
    assert api.get("/projects/edges/dataset-versions").json() == []

    # a zip of inputs/ + outputs/: one version
    r = api.post("/projects/edges/samples/archive", files={"file": ("edges.zip", _zip(train), "application/zip")})
    assert r.status_code == 201, r.text
    samples = api.get("/projects/edges/samples").json()["items"]
    assert len(samples) == 8 and {s["annotation"]["mode"] for s in samples} == {"L"}

    # automatic training, the gate, the first model in service
    job = wait_for(lambda: _done(api, 1), timeout=600)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    result = run["result"]
    assert result["chosen"]["learner"] == "image.filter_cnn"
    metrics = result["metrics"]
    assert metrics["psnr"] > result["baseline"]["psnr"] + 3, (metrics["psnr"], result["baseline"])
    assert metrics["interval"]["psnr"][0] <= metrics["psnr"] <= metrics["interval"]["psnr"][1]
    assert 0 < metrics["ssim"] <= 1 and len(metrics["worst"]) == 3
    assert metrics["worst"][0]["predicted"].startswith("data:image/png")
    assert result["gate"]["promoted"], result["gate"]
    model = api.get("/projects/edges/models").json()[0]
    assert model["aliases"] == ["production"] and model["card"]["output"]["mode"] == "L"

    # a predicted output image: a greyscale PNG of the photo's size, close to the true edge map;
    # two photos of different sizes in one request each get their own size
    odd = sample_crops(1, size=(72, 100), seed=9)[0]
    r = api.post("/projects/edges/predict", files=[("files", ("n0.png", _png(new[0]))), ("files", ("odd.png", _png(odd)))])
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    said = pairs.read_output(base64.b64decode(first["image"]))
    assert said.shape == (80, 96) and first["mode"] == "L" and first["model_version"] == 1
    assert pairs.read_output(base64.b64decode(second["image"])).shape == (100, 72)
    truth = sobel_map(new[0])
    assert pairs.psnr(truth, said) > pairs.psnr(truth, pairs.as_mode(new[0], "L")) + 3, (
        pairs.psnr(truth, said), metrics["psnr"], result["baseline"], result["steps"], result["selection"])
    records = {r["id"]: r["output"] for r in api.get("/projects/edges/predictions").json()["items"]}
    kept = records[first["prediction_id"]].pop("files")["image"]  # the PNG as a blob beside the photo
    assert records[first["prediction_id"]] == {"mode": "L", "width": 96, "height": 80}, records
    assert httpx.get(loop_server.url + first["urls"]["image"]).content == base64.b64decode(first["image"]) == core.blobs.get(kept)

    # serving needs neither torch nor the training stack: an inference-only process on the same data
    probe = (
        "import sys\n"
        "from dyntrain.kernel.config import Settings\nfrom dyntrain.kernel.core import Core\n"
        "from dyntrain.serving.predict import predict_items\n"
        f"core = Core.create(Settings(data_dir={str(core.settings.data_dir)!r}, database_url={core.settings.database_url!r}), migrate=False)\n"
        f"p = predict_items(core, 'edges', [('n.png', open({str(tmp_path / 'n.png')!r}, 'rb').read())])\n"
        "print(p[0]['image'] == sys.argv[1], 'torch' in sys.modules, sorted(m for m in sys.modules if m.startswith('dyntrain.learners')))\n"
    )
    (tmp_path / "n.png").write_bytes(_png(new[0]))
    out = subprocess.run([sys.executable, "-c", probe, first["image"]], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "[]"], out.stdout

    # a correction: the true edge map goes back into training as a new version, which retrains
    r = api.post(f"/projects/edges/predictions/{first['prediction_id']}/feedback",
                 json={"label": {"image": base64.b64encode(_png(truth)).decode()}, "add_to_training": True})
    assert r.status_code == 200, r.text
    added = r.json()["samples"][0]["annotation"]
    assert r.json()["version"]["number"] == 2 and core.blobs.exists(added["image"])
    job = wait_for(lambda: _done(api, 2), timeout=600)[0]
    assert job["status"] == "succeeded", job
    gate = api.get(f"/runs/{job['run_id']}").json()["result"]["gate"]
    assert gate["against_version"] == 1 and gate["served"] is not None, gate
    assert gate["promoted"], gate

    # the new version is served
    r = api.post("/projects/edges/predict", files=[("files", ("n1.png", _png(new[1])))])
    assert r.json()["predictions"][0]["model_version"] == 2, r.text

    # the pages: the run report, the data and try pages of the pair modality
    ui = loop_server.url + "/projects/edges"
    html = httpx.get(f"{ui}/runs/{run['id']}").text
    assert "PSNR" in html and "within" in html
    for page in ("", "/history", "/predictions", "/try", "/settings", f"/predictions/{first['prediction_id']}"):
        r = httpx.get(ui + page)
        assert r.status_code == 200 and "Predicted value" not in r.text, page  # an image, not a number
