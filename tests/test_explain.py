"""Explanations: exact class activation maps, occlusion maps that find the object, the queue that
keeps them from starving predictions, and the API that attaches them to predictions.

The model is a real linear probe on EfficientNet-Lite0, trained once per module on synthetic
scenes (real photos and scans pasted on real backgrounds, with their boxes: dyntrain.ops.scenes).
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs.imaging import model_input
from dyntrain.serving import explain
from dyntrain.serving.live import load_model
from tests.explain_models import CLASSES, REVIEW_CLASSES, review_model, scene_probe, serve


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """(model file, held-out scenes): a linear probe fitted on 30 one-object scenes."""
    return scene_probe(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def served(probe):
    return load_model(probe[0], 1, 1, CLASSES, 1, task="image-classification")


def _peak_on_object(grid: np.ndarray, box: dict, side: int = 320) -> bool:
    """Whether the hottest cell's centre lies on the object's box (half a cell of slack)."""
    g = grid.shape[0]
    r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
    cy, cx, half = (r + 0.5) * side / g, (c + 0.5) * side / g, side / g / 2
    return (box["x"] - half <= cx <= box["x"] + box["w"] + half) and (box["y"] - half <= cy <= box["y"] + box["h"] + half)


def test_cam_adds_up_to_the_logit_minus_the_bias(probe, served):
    path, scenes = probe
    explainer = explain.CamExplainer.from_bytes(path.read_bytes(), threads=2)
    batch = np.stack([model_input(Image.fromarray(s.image)) for s in scenes[:6]])
    for image, r in zip(batch, explainer.explain(batch)):
        # the same probabilities the served model gives, and every class's map is exact
        np.testing.assert_allclose(r["probabilities"], served.predict_items([image])[0], atol=1e-5)
        assert r["cam"].shape == (3, 7, 7)
        np.testing.assert_allclose(r["cam"].sum(axis=(1, 2)), r["logits"] - r["bias"], atol=1e-5)
        assert np.ptp(r["cam"][int(np.argmax(r["logits"]))]) > 0  # a map, not a constant
    one = explain.cam_map(explainer, batch[0], served.labels)
    k = int(np.argmax(served.predict_items([batch[0]])[0]))
    assert one["label"] == CLASSES[k]
    # shown: the evidence for k over the mean class (the softmax sees only differences), still exact
    cam = explainer.explain(batch[:1])[0]["cam"]
    np.testing.assert_allclose(one["grid"], cam[k] - cam.mean(axis=0), atol=1e-9)
    assert abs(one["grid"].sum() - (one["logit"] - one["bias"])) < 1e-5


def test_occlusion_and_cam_peak_on_the_pasted_object(probe, served):
    _, scenes = probe
    explainer = explain.CamExplainer.from_bytes(probe[0].read_bytes(), threads=2)
    occ = cam = 0
    for s in scenes:
        image = model_input(Image.fromarray(s.image))
        occ += _peak_on_object(explain.occlusion_map(served, image)["grid"], s.boxes[0])
        cam += _peak_on_object(explain.cam_map(explainer, image, served.labels)["grid"], s.boxes[0])
    # measured 14 and 12 of 15; chance (a random cell on the box) is about a third
    assert occ >= 11, occ
    assert cam >= 9, cam


def test_occlusion_drops_where_the_object_is_covered(served):
    """Paste a real digit scan on flat grey: only the cells under it may matter."""
    from sklearn.datasets import load_digits

    digit = load_digits().images[0]  # an 8×8 zero, 0..16
    canvas = np.full((224, 224, 3), 200, np.uint8)
    ink = np.kron(16 - digit, np.ones((8, 8)))  # 64×64, dark strokes
    canvas[128:192, 32:96] = (ink * 12).clip(0, 255).astype(np.uint8)[..., None]
    r = explain.occlusion_map(served, canvas)
    grid = r["grid"]
    peak = np.unravel_index(int(np.argmax(grid)), grid.shape)
    assert 4 <= peak[0] <= 6 and 1 <= peak[1] <= 3, (peak, np.round(grid, 3))


def test_cam_is_refused_for_heads_it_cannot_explain_exactly(served):
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper

    rng = np.random.default_rng(0)
    trunk = helper.make_model(helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["gap"], name="/gap"),
         helper.make_node("Flatten", ["gap"], ["pooled"], name="/flat")],
        "trunk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 3, 3])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["n", 4])]),
        opset_imports=[helper.make_opsetid("", 17)])
    w = numpy_helper.from_array(rng.normal(size=(4, 2)).astype(np.float32), "w")
    head = helper.make_model(helper.make_graph(  # a linear layer WITHOUT normalisation: not homogeneous
        [helper.make_node("MatMul", ["features", "w"], ["logits"], name="/mm"),
         helper.make_node("Relu", ["logits"], ["r"], name="/relu"),
         helper.make_node("Softmax", ["r"], ["probabilities"], name="/sm", axis=1)],
        "head", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 2])], [w]),
        opset_imports=[helper.make_opsetid("", 17)])
    head = compose.add_prefix(head, "head/", rename_outputs=False)
    merged = compose.merge_models(trunk, head, io_map=[("pooled", "head/features")], outputs=["probabilities"])
    data = merged.SerializeToString()
    onnx.checker.check_model(merged)
    with pytest.raises(explain.NotExplainable, match="occlusion"):
        explain.CamExplainer.from_bytes(data)
    with pytest.raises(explain.NotExplainable, match="occlusion"):
        explain.CamExplainer.from_bytes(b"not a model")


def test_words_that_moved_the_score(tmp_path):
    """Leave-one-out on a real text model file (TF-IDF + logistic regression, ONNX Runtime)."""
    names = REVIEW_CLASSES
    model = load_model(review_model(tmp_path), 1, 1, names, 1, task="text-classification")
    r = explain.leave_one_out(model, "the staff were rude but the food was great")
    assert r["unit"] == "word" and r["label"] in names
    weights = {s["text"]: s["weight"] for s in r["spans"]}
    assert len(r["spans"]) == 9 and weights["were"] == weights["but"] == 0  # words it never saw move nothing
    said = "good" if r["label"] == "good" else "bad"
    top = max(r["spans"], key=lambda s: s["weight"])["text"]
    assert top == ("great" if said == "good" else "rude"), weights
    assert weights["rude" if said == "good" else "great"] < 0  # the other word argued against the answer
    assert repr(top) in r["summary"]
    long = " ".join(f"Sentence {i} is plain." for i in range(40)) + " The coffee was awful."
    r = explain.leave_one_out(model, long)
    assert r["unit"] == "sentence" and r["label"] == "bad"
    assert max(r["spans"], key=lambda s: s["weight"])["text"].strip() == "The coffee was awful."


def test_queue_rate_limits_caches_and_runs_one_at_a_time():
    q = explain.ExplainQueue(per_minute=60, burst=2, max_pending=2)
    running, peak, lock = [0], [0], threading.Lock()

    def work(value):
        def run():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            return {"value": value}
        return run

    a = q.submit(("p", 1, "occlusion", "a"), "alice", work(1))
    b = q.submit(("p", 1, "occlusion", "b"), "bob", work(2))
    assert a.result(5) == {"value": 1} and b.result(5) == {"value": 2}
    assert peak[0] == 1  # one worker: never two explanations at once
    assert q.submit(("p", 1, "occlusion", "a"), "alice", work(99)).result(1) == {"value": 1}  # cached
    assert q.computed == 2
    q.submit(("p", 1, "occlusion", "c"), "alice", work(3)).result(5)
    with pytest.raises(explain._Refused, match="a minute") as refused:  # burst of 2 used up
        q.submit(("p", 1, "occlusion", "d"), "alice", work(4))
    assert 0 < refused.value.retry_after <= 1.5
    slow = explain.ExplainQueue(per_minute=600, burst=10, max_pending=1)
    gate = threading.Event()
    slow.submit(("p", 1, "x", "1"), "c", lambda: gate.wait(5) and {})
    time.sleep(0.1)  # the worker has taken the first: one may wait
    slow.submit(("p", 1, "x", "2"), "c", lambda: {})
    with pytest.raises(explain._Refused, match="already waiting"):
        slow.submit(("p", 1, "x", "3"), "c", lambda: {})
    gate.set()


def test_heatmap_picture_and_words():
    grid = np.zeros((7, 7))
    grid[0, 0], grid[0, 1] = 1.0, 0.5
    url = explain.heat_png(grid)
    assert url.startswith("data:image/png;base64,")
    import base64

    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert img.size == (7, 7) and img.mode == "RGBA"
    alpha = np.asarray(img)[..., 3]
    assert alpha[0, 0] > alpha[0, 1] > alpha[3, 3] == 0
    assert explain.describe(grid, "mug").startswith("the top left of the image mattered most for mug (mostly")
    assert "no part" in explain.describe(np.zeros((7, 7)), "mug")


def test_predict_with_explanations_over_the_api(probe, core, client):
    path, scenes = probe
    serve(core, "scenes", path, CLASSES, "image-classification")
    buf = io.BytesIO()
    Image.fromarray(scenes[0].image).save(buf, "PNG")
    files = [("files", ("a.png", buf.getvalue())), ("files", ("bad.png", b"not an image"))]
    plain = client.post("/api/v1/projects/scenes/predict", files=files).json()["predictions"]
    assert "explanation" not in plain[0]  # off unless asked for
    r = client.post("/api/v1/projects/scenes/predict", params={"explain": "cam"}, files=files)
    assert r.status_code == 200, r.text
    first, bad = r.json()["predictions"]
    e = first["explanation"]
    assert e["status"] == "ready" and e["method"] == "cam" and e["label"] == first["label"]
    assert (e["rows"], e["cols"]) == (7, 7) and abs(sum(map(sum, e["grid"])) - (e["logit"] - e["bias"])) < 1e-4
    assert e["overlay"].startswith("data:image/png") and "mattered most" in e["summary"]
    assert "error" in bad and "explanation" not in bad
    # a recorded prediction explained later, from its kept input and the version that answered it
    later = explain.explain_prediction(core, "scenes", first["prediction_id"], "cam")
    assert later["grid"] == e["grid"] and later["label"] == e["label"]
    occ = client.post("/api/v1/projects/scenes/predict", params={"explain": "occlusion"}, files=files[:1]).json()
    o = occ["predictions"][0]["explanation"]
    assert o["status"] == "ready" and o["method"] == "occlusion" and len(o["grid"]) == 7
    again = client.post("/api/v1/projects/scenes/predict", params={"explain": "occlusion"}, files=files[:1]).json()
    assert again["predictions"][0]["explanation"]["grid"] == o["grid"]  # from the cache
    assert explain.queue_for(core).computed == 1
    wrong = client.post("/api/v1/projects/scenes/predict", params={"explain": "shap"}, files=files[:1])
    assert wrong.status_code == 422
    texts = client.post("/api/v1/projects/scenes/predict/texts", params={"explain": "words"}, json={"texts": ["x"]})
    assert texts.status_code == 422


@pytest.mark.slow
def test_occlusion_explains_a_detector_by_its_top_box(tmp_path):
    """Detection: the heat is how much covering a cell lowers the top box's confidence."""
    from dyntrain import learners, tasks
    from dyntrain.ops import scenes

    # trained as projects train it: the photo modality's features into the learner image.centernet
    train = scenes.scenes_per_class(8, classes=2, size=224, seed=0)
    names = train[0].class_names
    blobs = {f"h{i}": _png(s.image) for i, s in enumerate(train)}
    cls = learners.get("image.centernet")
    photos = tasks.get("object-detection").modality.features(
        [cls.input_kind], list(blobs), blobs.get, learners.FeatureExtractor(tmp_path, threads=1))[cls.input_kind]
    y = [(np.array([[b[k] for k in ("x", "y", "w", "h")] for b in s.boxes], float).reshape(-1, 4),
          np.array([names.index(b["label"]) for b in s.boxes], np.int64)) for s in train]
    model = cls(size=224, copies=4, passes=1200).fit(photos, y, n_classes=len(names), class_names=names)
    path = model.export_onnx(tmp_path / "detector.onnx", backbone_dir=tmp_path)
    detector = load_model(path, 1, 1, train[0].class_names, 1, task="object-detection")
    test = [s for s in scenes.make_scenes(40, classes=2, size=224, seed=7) if len(s.boxes) == 1][:10]
    hits = 0
    for s in test:
        if not detector.predict_items([s.image])[0]:
            continue  # the detector missed the object: nothing to explain, counted as a miss
        r = explain.occlusion_map(detector, s.image)
        assert r["label"] in train[0].class_names and 0 < r["score"] <= 1
        hits += _peak_on_object(r["grid"], s.boxes[0], side=224)
    assert hits >= 8, hits  # measured 10 of 10, then 9 of 10 (the detector found 9 objects)
    with pytest.raises(explain.NotExplainable, match="found nothing"):
        explain.occlusion_map(detector, np.full((224, 224, 3), 127, np.uint8))


def test_explaining_never_imports_torch(probe):
    """Serving stays torch-free: a fresh process explains a prediction with the model file alone."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from dyntrain.serving import explain\n"
            f"e = explain.CamExplainer.from_bytes(open({str(probe[0])!r}, 'rb').read())\n"
            "r = e.explain(np.zeros((1, 224, 224, 3), np.uint8))[0]\n"
            "assert abs(r['cam'].sum(axis=(1, 2)) - (r['logits'] - r['bias'])).max() < 1e-5\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'sklearn')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def _png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def _asked_until_done(client, url: str, **params):
    """GET an explanation, asking again while the server answers 202 (it holds a request at most
    explain.RECORDED_WAIT_S for a queued one)."""
    deadline = time.monotonic() + 120
    while True:
        r = client.get(url, params=params)
        if r.status_code != 202 or time.monotonic() > deadline:
            return r
        assert r.json()["status"] == "pending"
        time.sleep(0.2)


def test_a_recorded_prediction_is_explained_by_the_version_that_answered(probe, core, client, tmp_path):
    """GET …/predictions/{id}/explanation: the kept input, the model version that answered it, the
    same queue (rate limit, cache); 409 without the input, 410 once that version is deleted."""
    from datetime import timedelta

    from dyntrain.kernel.projects import project_row
    from dyntrain.ops.housekeeping import gc
    from dyntrain.registry.models import register_model
    from dyntrain.storage.rows import utcnow

    path, scenes = probe
    serve(core, "scenes", path, CLASSES, "image-classification")
    url = "/api/v1/projects/scenes/predictions/{}/explanation"

    def predict(image) -> dict:
        r = client.post("/api/v1/projects/scenes/predict", files=[("files", ("a.png", _png(image)))])
        assert r.status_code == 200, r.text
        return r.json()["predictions"][0]

    first = predict(scenes[0].image)
    r = client.get(url.format(first["prediction_id"]))
    assert r.status_code == 200, r.text
    e = r.json()
    assert e["status"] == "ready" and e["method"] == "cam" and e["label"] == first["label"]
    assert abs(sum(map(sum, e["grid"])) - (e["logit"] - e["bias"])) < 1e-4
    assert e["overlay"].startswith("data:image/png") and "mattered most" in e["summary"]
    occ = _asked_until_done(client, url.format(first["prediction_id"]), method="occlusion")
    assert occ.status_code == 200 and occ.json()["method"] == "occlusion" and occ.json()["label"] == first["label"]
    queue = explain.queue_for(core)
    assert queue.computed == 1
    assert client.get(url.format(first["prediction_id"]), params={"method": "occlusion"}).json() == occ.json()
    assert queue.computed == 1  # cached per (version, input)
    for method, says in [("words", "explain=cam or explain=occlusion"), ("shap", "method")]:
        r = client.get(url.format(first["prediction_id"]), params={"method": method})
        assert r.status_code == 422 and says in r.json()["error"]["message"], r.text
    assert client.get(url.format(999_999)).status_code == 404
    page = client.get(f"/projects/scenes/predictions/{first['prediction_id']}")
    assert page.status_code == 200 and f'data-source="/projects/scenes/predictions/{first["prediction_id"]}' \
        '/explanation"' in page.text and "/image?size=512" in page.text
    missing = client.get("/projects/scenes/predictions/999999")
    assert missing.status_code == 404 and "Prediction 999999 does not exist" in missing.text

    # the rate limit of the predict route's explanations applies here too
    queue.per_minute, queue.burst = 1, 1
    queue._buckets.clear()
    second, third = predict(scenes[1].image), predict(scenes[2].image)
    assert _asked_until_done(client, url.format(second["prediction_id"]), method="occlusion").status_code == 200
    refused = client.get(url.format(third["prediction_id"]), params={"method": "occlusion"})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert "a minute" in refused.json()["error"]["message"] and int(refused.headers["Retry-After"]) >= 1
    queue.per_minute, queue.burst = 12, 4

    # an input that was not kept: 409, saying why
    assert client.patch("/api/v1/projects/scenes", json={"settings": {"store_prediction_inputs": False}}).status_code == 200
    unkept = predict(scenes[3].image)
    r = client.get(url.format(unkept["prediction_id"]))
    assert r.status_code == 409 and "not kept" in r.json()["error"]["message"]

    # two newer versions, keep one: housekeeping deletes v1, which answered the first prediction
    assert client.patch("/api/v1/projects/scenes", json={"settings": {"keep_model_versions": 1,
                                                                     "store_prediction_inputs": True}}).status_code == 200
    with core.db.read() as s:
        pid = project_row(s, "scenes").id
    for _ in range(2):
        v = register_model(core, pid, path, {"labels": CLASSES, "task": "image-classification"}, run_id=None).version
        assert client.post(f"/api/v1/projects/scenes/models/{v}/promote").status_code == 200
    latest = predict(scenes[4].image)
    assert latest["model_version"] == 3
    assert "scenes v1" in gc(core, now=utcnow() + timedelta(hours=2)).removed_models
    r = client.get(url.format(first["prediction_id"]))
    assert r.status_code == 410, r.text  # even though its map was cached: the version is gone
    assert "model version 1 has been deleted" in r.json()["error"]["message"]
    assert client.get(url.format(latest["prediction_id"])).json()["status"] == "ready"
    # a model file lost from the store reads the same
    v3 = registry_path(core, pid, 3)
    v3.unlink()
    r = client.get(url.format(latest["prediction_id"]), params={"method": "occlusion"})
    assert r.status_code == 410 and "model version 3" in r.json()["error"]["message"]


def registry_path(core, project_id: int, version: int):
    from sqlalchemy import select

    from dyntrain.storage.rows import ModelVersionRow

    with core.db.read() as s:
        key = s.scalar(select(ModelVersionRow.path).where(ModelVersionRow.project_id == project_id,
                                                          ModelVersionRow.version == version))
    return core.settings.model_dir / key


def test_a_recorded_text_prediction_is_explained_by_its_words(core, client, tmp_path):
    serve(core, "reviews", review_model(tmp_path), REVIEW_CLASSES, "text-classification")
    text = "the staff were rude but the food was great"
    r = client.post("/api/v1/projects/reviews/predict/texts", json={"texts": [text]})
    said = r.json()["predictions"][0]
    url = f"/api/v1/projects/reviews/predictions/{said['prediction_id']}/explanation"
    # the queue's worker busy: the request is not held for long (a browser has six connections
    # per host, the server one pool of worker threads) but answered 202, ask again
    free = threading.Event()
    explain.queue_for(core).submit(("held by the test",), "test", lambda: (free.wait(60), {})[1])
    start = time.monotonic()
    pending = client.get(url)
    free.set()
    assert pending.status_code == 202 and pending.json()["status"] == "pending", pending.text
    assert explain.RECORDED_WAIT_S <= time.monotonic() - start < explain.RECORDED_WAIT_S + 3
    e = _asked_until_done(client, url)
    assert e.status_code == 200, e.text
    e = e.json()
    assert e["status"] == "ready" and e["method"] == "words" and e["label"] == said["label"]  # auto: words
    assert [text[s["start"]:s["end"]] for s in e["spans"]] == text.split()
    top = max(e["spans"], key=lambda s: s["weight"])["text"]
    assert top == ("great" if said["label"] == "good" else "rude") and repr(top) in e["summary"]
    wrong = client.get(f"/api/v1/projects/reviews/predictions/{said['prediction_id']}/explanation",
                       params={"method": "cam"})
    assert wrong.status_code == 422 and "words" in wrong.json()["error"]["message"]
