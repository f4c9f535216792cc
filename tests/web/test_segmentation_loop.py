"""Semantic segmentation through the whole loop, on SQLite and PostgreSQL over a real HTTP server:
photos with masks in → automatic training → gate → hot swap → a predicted mask → a corrected
mask back into training → retrain → the new version served.

The photos are synthetic scenes built from real photos (dyntrain.ops.scenes): objects cut from
photos pasted on photo backgrounds, their masks known exactly. Both database runs share one
feature cache (the backbone export and the photos' feature maps), as two installations on one
machine would not; only training is measured twice.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import masks as mk
from dyntrain.kernel.config import Settings
from dyntrain.ops.scenes import make_scenes
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
FAST = {"train_delay_s": 0.3, "train_max_delay_s": 5, "time_budget_s": 20}
SIZE = (256, 192)


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("segmentation-cache")


@pytest.fixture
def settings(tmp_path, database_url, shared_cache) -> Settings:
    """The usual test settings, with the feature cache shared by both database runs."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "cache").symlink_to(shared_cache, target_is_directory=True)
    return Settings(data_dir=data, database_url=database_url, seed_demo=False, scheduler_enabled=False)


def _png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def _label(scene) -> str:
    names = ["background", *scene.class_names]
    return json.dumps({"mask": base64.b64encode(mk.encode_png(scene.mask, names)).decode(), "classes": names})


def _done(api, version):
    return [j for j in api.get("/projects/kitchen/jobs").json() if j["status"] in ("succeeded", "failed")
            and j["dataset_version"] == version]


def test_segmentation_goes_through_the_whole_loop(loop_server, core, tmp_path):
    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=120)
    r = api.post("/projects", json={"name": "kitchen", "task": "semantic-segmentation", "settings": FAST})
    assert r.status_code == 201, r.text
    scenes = make_scenes(14, classes=2, size=SIZE, seed=1)
    train, new = scenes[:12], scenes[12:]

    # a mask of another size is refused, naming the problem; nothing is written
    small = make_scenes(1, classes=2, size=(128, 96), seed=1)[0]
    r = api.post("/projects/kitchen/samples", files=[("files", ("a.png", _png(train[0].image)))],
                 data={"label": _label(small)})
    assert r.status_code == 422 and "128x96" in r.text and "256x192" in r.text, r.text
    assert api.get("/projects/kitchen/dataset-versions").json() == []

    # photos with their masks: one version; the classes come from the masks, background included
    r = api.post("/projects/kitchen/samples", files=[("files", (f"s{i}.png", _png(s.image))) for i, s in enumerate(train)],
                 data={"labels": [_label(s) for s in train]})
    assert r.status_code == 201, r.text
    classes = {c["label"]: c["count"] for c in api.get("/projects/kitchen/classes").json()}
    assert set(classes) == {"background", *train[0].class_names} and classes["background"] == 12, classes

    # automatic training, the gate, the first model in service
    job = wait_for(lambda: _done(api, 1), timeout=600)[0]
    assert job["status"] == "succeeded", job
    run = api.get(f"/runs/{job['run_id']}").json()
    result = run["result"]
    assert result["chosen"]["learner"] == "image.segmenter"
    metrics = result["metrics"]
    assert metrics["miou"] > 0.5 and metrics["interval"]["miou"][0] <= metrics["miou"], metrics["interval"]
    assert {"iou", "covered", "spill", "boundary_f"} <= set(metrics["per_class"]["background"])
    assert len(metrics["worst"]) == 3 and metrics["worst"][0]["difference"].startswith("data:image/")
    assert result["gate"]["promoted"], result["gate"]
    model = api.get("/projects/kitchen/models").json()[0]
    assert model["aliases"] == ["production"] and model["card"]["output"]["name"] == "mask"

    # a predicted mask: an indexed PNG of the photo's size, its classes and their areas; the record's
    # JSON keeps the classes and areas, and the PNG itself as a blob beside the photo
    r = api.post("/projects/kitchen/predict", files=[("files", (f"n{i}.png", _png(s.image))) for i, s in enumerate(new)])
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    first = answers[0]
    said = mk.decode_png(base64.b64decode(first["mask"]), first["classes"])
    assert said.shape == (SIZE[1], SIZE[0]) and first["model_version"] == 1
    assert first["classes"][0] == "background" and abs(sum(first["areas"].values()) - 1) < 1e-3
    truth = np.array([*(["background", *new[0].class_names]), *["?"] * 253])[new[0].mask]
    agreement = float(np.mean(np.array(first["classes"])[said] == truth))
    assert agreement > 0.8, agreement  # a photo it never saw: most pixels right
    record = api.get("/projects/kitchen/predictions").json()["items"][-1]
    kept = record["output"].pop("files")["mask"]
    assert record["output"] == {"classes": first["classes"], "areas": first["areas"]}
    assert httpx.get(loop_server.url + first["urls"]["mask"]).content == base64.b64decode(first["mask"]) == core.blobs.get(kept)

    # on request, each class's probability per pixel (greyscale PNGs): their argmax is the mask
    r = api.post("/projects/kitchen/predict", params={"probabilities": "true"},
                 files=[("files", ("n0.png", _png(new[0].image)))])
    detailed = r.json()["predictions"][0]
    maps = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(detailed["probabilities"][c]))))
                     for c in detailed["classes"]])
    assert maps.shape == (len(first["classes"]), SIZE[1], SIZE[0]) and detailed["mask"] == first["mask"]
    assert np.mean(maps.argmax(axis=0) == said) > 0.95
    assert "probabilities" not in answers[0]

    # serving masks needs neither torch nor the training stack: an inference-only process on the same data
    probe = (
        "import sys\n"
        "from dyntrain.kernel.config import Settings\nfrom dyntrain.kernel.core import Core\n"
        "from dyntrain.serving.predict import predict_items\n"
        f"core = Core.create(Settings(data_dir={str(core.settings.data_dir)!r}, database_url={core.settings.database_url!r}), migrate=False)\n"
        f"p = predict_items(core, 'kitchen', [('n.png', open({str(tmp_path / 'n.png')!r}, 'rb').read())])\n"
        "print(p[0]['mask'] == sys.argv[1], 'torch' in sys.modules, sorted(m for m in sys.modules if m.startswith('dyntrain.learners')))\n"
    )
    (tmp_path / "n.png").write_bytes(_png(new[0].image))
    out = subprocess.run([sys.executable, "-c", probe, first["mask"]], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "[]"], out.stdout

    # a correction: the true mask goes back into training as a new version, which retrains
    r = api.post(f"/projects/kitchen/predictions/{first['prediction_id']}/feedback",
                 json={"label": json.loads(_label(new[0])), "add_to_training": True})
    assert r.status_code == 200, r.text
    added = r.json()["samples"][0]["annotation"]
    assert r.json()["version"]["number"] == 2 and core.blobs.exists(added["mask"])
    job = wait_for(lambda: _done(api, 2), timeout=600)[0]
    assert job["status"] == "succeeded", job
    gate = api.get(f"/runs/{job['run_id']}").json()["result"]["gate"]
    assert gate["against_version"] == 1 and gate["served"] is not None, gate
    assert gate["promoted"], gate

    # the new version is served
    r = api.post("/projects/kitchen/predict", files=[("files", ("n1.png", _png(new[1].image)))])
    assert r.json()["predictions"][0]["model_version"] == 2, r.text

    # the pages: the run report of masks, the data and try pages of the mask modality
    ui = loop_server.url + "/projects/kitchen"
    html = httpx.get(f"{ui}/runs/{run['id']}").text
    assert "mIoU" in html
    for page in ("", "/history", "/predictions", "/try", "/settings"):
        assert httpx.get(ui + page).status_code == 200, page
