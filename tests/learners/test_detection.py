"""Object detection core: fit + selection on synthetic scenes, export, decoding, metrics, inputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from dyntrain.ops import scenes
from dyntrain.kernel.errors import Invalid
from dyntrain.learners import detection as D
from dyntrain.learners import feature_maps as fm
from dyntrain.codecs import detections, letterbox as lb
from dyntrain.learners.detection_fit import Candidate

# Small on purpose (a shared fixture trains once, in seconds): two classes, 8 images per class,
# 4 augmented copies, two cheap candidates so the selection machinery really runs.
CANDIDATES = [Candidate("t-224", 224, passes=1200), Candidate("t-192", 192, passes=1200)]


@pytest.fixture(scope="module")
def train_scenes():
    # Plus two scenes with nothing in them: empty annotation lists are valid training data.
    empty = [s for s in scenes.make_scenes(30, classes=2, size=224, seed=5) if not s.boxes][:2]
    return scenes.scenes_per_class(8, classes=2, size=224, seed=0) + empty


@pytest.fixture(scope="module")
def fitted(train_scenes, cache_dir):
    seen = []
    model, report = D.fit_detector([s.image for s in train_scenes], [s.boxes for s in train_scenes],
                                   train_scenes[0].class_names, cache_dir=cache_dir, time_budget_s=120,
                                   progress=seen.append, candidates=CANDIDATES, copies=4, max_repeats=1)
    return model, report, seen


@pytest.fixture(scope="module")
def exported(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("detector") / "detector.onnx"
    D.export_detector(fitted[0], path)
    return path


@pytest.mark.slow
def test_fit_reports_selection_with_spread(fitted, train_scenes):
    model, report, seen = fitted
    assert any(len(s.boxes) == 0 for s in train_scenes), "empty annotation lists are part of the fixture"
    sel = report["selection"]
    assert sel["metric"] == "map50_95" and sel["folds"] == 3 and sel["repeats"] == 1
    assert set(sel["scores"]) == {c.name for c in CANDIDATES}
    for s in sel["scores"].values():
        assert s["n_folds"] == 3 and len(s["folds"]) == 3 and s["std"] is not None and s["se"] is not None
        assert 0 <= s["mean"] <= 1
    assert sel["chosen"] == model.candidate.name and model.candidate.name in sel["reason"]
    assert 0.1 <= report["threshold"] <= 0.9 and model.threshold == report["threshold"]
    assert report["cv"]["map50"] is not None and set(report["cv"]["per_class"]) == set(model.class_names)
    assert report["n_boxes"] == sum(len(s.boxes) for s in train_scenes)
    assert seen == sorted(seen) and seen[-1] == 1.0


@pytest.mark.slow
def test_learns_held_out_scenes(exported):
    test = scenes.make_scenes(24, classes=2, size=224, seed=7)
    det = D.Detector(exported)
    preds = det.predict_many([s.image for s in test], threshold=0.01)
    m = D.detection_metrics([s.boxes for s in test], preds, det.class_names, threshold=det.threshold)
    assert m["map50"] >= 0.7, m
    assert m["recall_at_threshold"] >= 0.6 and m["false_box_rate"] <= 0.4, m


@pytest.mark.slow
def test_export_is_one_file_matching_torch(fitted, exported, train_scenes):
    model = fitted[0]
    graph = onnx.load(str(exported))
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["boxes", "scores", "labels"]
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["format"] == "dyntrain-detector-v1" and int(meta["input_size"]) == model.candidate.size
    batch, _, _ = lb.letterbox_many([s.image for s in train_scenes[:4]], model.candidate.size)
    sess = fm.session(exported)
    boxes, scores, labels = sess.run(["boxes", "scores", "labels"], {"image": batch})
    t_boxes, t_scores, t_labels = model.torch_outputs(batch)
    assert boxes.shape == (4, 100, 4) and scores.shape == (4, 100) and labels.dtype == np.int64
    np.testing.assert_allclose(scores, t_scores, atol=1e-4)
    confident = t_scores > 0.05  # where low scores tie, top-K may order them differently
    assert confident.any()
    np.testing.assert_array_equal(labels[confident], t_labels[confident])
    np.testing.assert_allclose(boxes[confident], t_boxes[confident], atol=0.05)


@pytest.mark.slow
def test_boxes_come_back_in_original_pixels(exported):
    # A wide scene: letterboxing pads top and bottom; the boxes must land on the objects.
    wide = [s for s in scenes.make_scenes(12, classes=2, size=(400, 250), seed=11) if s.boxes]
    det = D.Detector(exported)
    found = 0
    for s in wide:
        preds = det.predict(s.image)
        for p in preds:
            assert 0 <= p["x"] and p["x"] + p["w"] <= 400 + 1e-6 and 0 <= p["y"] and p["y"] + p["h"] <= 250 + 1e-6
        for b in s.boxes:
            same = [p for p in preds if p["label"] == b["label"]]
            if same:
                ious = detections.iou_xywh([[b["x"], b["y"], b["w"], b["h"]]], [[p["x"], p["y"], p["w"], p["h"]] for p in same])
                found += ious.max() >= 0.5
    assert found >= 0.6 * sum(len(s.boxes) for s in wide)


def test_decode_maps_back_thresholds_and_suppresses():
    # Model pixels of a 320 letterbox of a 640x400 image: scale 0.5, pad_y 60.
    boxes = np.array([[[50.0, 80.0, 100.0, 40.0], [52.0, 81.0, 98.0, 40.0], [52.0, 81.0, 98.0, 40.0],
                       [0.0, 0.0, 10.0, 10.0]]])
    scores = np.array([[0.9, 0.8, 0.7, 0.6]])
    labels = np.array([[0, 0, 1, 2]], np.int64)
    out = detections.decode((boxes, scores, labels), 0.5, (0, 60), 0.5, size=(640, 400), class_names=["a", "b", "c"])
    # The second box is the first one again (same class, IoU > 0.6); the third is another class;
    # the fourth lies wholly in the padding.
    assert [(d["label"], d["label_index"]) for d in out] == [("a", 0), ("b", 1)]
    assert out[0] == {"label": "a", "label_index": 0, "confidence": 0.9, "x": 100.0, "y": 40.0, "w": 200.0, "h": 80.0}
    assert detections.decode((boxes, scores, labels), 0.5, (0, 60), 0.95) == []
    with pytest.raises(ValueError, match="one image"):
        detections.decode((np.zeros((2, 3, 4)), np.zeros((2, 3)), np.zeros((2, 3))), 1.0, (0, 0), 0.5)


def _box(label, x, y, w, h, confidence=None):
    d = {"label": label, "x": x, "y": y, "w": w, "h": h}
    if confidence is not None:
        d["confidence"] = confidence
    return d


def test_metrics_hand_checked():
    truth = [[_box("mug", 10, 10, 50, 40), _box("pen", 100, 100, 30, 30)], [_box("mug", 0, 0, 20, 20)]]
    perfect = [[{**b, "confidence": 0.9} for b in img] for img in truth]
    m = D.detection_metrics(truth, perfect, ["mug", "pen"])
    assert m["map50"] == 1.0 and m["map50_95"] == 1.0
    assert m["recall_at_threshold"] == 1.0 and m["false_box_rate"] == 0.0 and m["n_objects"] == 3
    # Shift the pen by 10 px: IoU 20*30 / (2*900 - 600) = 0.5, so it only counts at IoU 0.50:
    # AP50 stays 1, AP50:95 of the pen falls to 1/10.
    shifted = [[perfect[0][0], {**perfect[0][1], "x": 110}], perfect[1]]
    m = D.detection_metrics(truth, shifted, ["mug", "pen"])
    assert m["per_class"]["pen"]["ap50"] == 1.0 and m["per_class"]["pen"]["ap"] == pytest.approx(0.1)
    assert m["per_class"]["mug"]["ap"] == 1.0 and m["map50_95"] == pytest.approx(0.55)
    # A false box and a missed object: in the counts at the threshold and in the APs.
    worse = [[perfect[0][0], _box("pen", 300, 300, 30, 30, 0.8)], []]
    m = D.detection_metrics(truth, worse, ["mug", "pen"], threshold=0.5)
    assert m["recall_at_threshold"] == pytest.approx(1 / 3) and m["false_box_rate"] == 0.5
    assert m["errors"] == [{"image": 0, "missed": [1], "false": [1]}, {"image": 1, "missed": [0], "false": []}]
    assert m["per_class"]["pen"]["ap50"] == 0.0 and m["per_class"]["mug"]["ap50"] == pytest.approx(0.5, abs=0.01)
    assert m["per_class"]["mug"] | {"ap50": None, "ap": None} == {
        "ap50": None, "ap": None, "recall": 0.5, "precision": 1.0, "n": 2, "found": 1, "drawn": 1, "false": 0}
    # Nothing predicted at all: zero, not an error; a class without objects has no AP.
    m = D.detection_metrics(truth, [[], []], ["mug", "pen", "cup"])
    assert m["map50"] == 0.0 and m["per_class"]["cup"]["ap"] is None and m["false_box_rate"] == 0.0


def test_bad_inputs_are_refused_clearly():
    img = np.zeros((100, 200, 3), np.uint8)
    names = ["mug"]
    boxes, labels = D.validate([img, img], [[], [_box("mug", 190.2, 0, 10, 100)]], names)  # empty list fine
    assert boxes[0].shape == (0, 4) and labels[1].tolist() == [0]
    with pytest.raises(Invalid, match=r"image 1, box 0 .*outside the 200x100 image"):
        D.validate([img, img], [[], [_box("mug", 150, 10, 60, 20)]], names)
    with pytest.raises(Invalid, match=r"image 0, box 1 .*unknown class 'cup'"):
        D.validate([img], [[_box("mug", 1, 1, 5, 5), _box("cup", 1, 1, 5, 5)]], names)
    with pytest.raises(Invalid, match="must be positive"):
        D.validate([img], [[_box("mug", 1, 1, 0, 5)]], names)
    with pytest.raises(Invalid, match="one list per image"):
        D.validate([img], [], names)
    with pytest.raises(Invalid, match="uint8 RGB"):
        D.validate([np.zeros((10, 10), np.uint8)], [[]], names)
    with pytest.raises(Invalid, match="no boxes to learn from"):
        D.fit_detector([img, img], [[], []], names, cache_dir="/nonexistent", time_budget_s=1)


def test_serving_side_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from dyntrain.learners import detection, detection_metrics; "
            "assert 'torch' not in sys.modules, 'serving imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_budget_cuts_between_candidates_and_says_so(cache_dir):
    tiny = scenes.scenes_per_class(3, classes=2, size=192, seed=2)
    # 192 px: the graph the fixture above exported already; b-160 is never built (cut before it).
    cands = [Candidate("a-192", 192, passes=100), Candidate("b-160", 160, passes=100)]
    model, report = D.fit_detector([s.image for s in tiny], [s.boxes for s in tiny], tiny[0].class_names,
                                   cache_dir=cache_dir, time_budget_s=0, candidates=cands, copies=2)
    sel = report["selection"]
    # The first candidate is always scored once; nothing else fits a zero budget.
    assert sel["cut_at"] == {"round": 0, "candidate": "b-160"} and sel["repeats"] == 0
    assert list(sel["scores"]) == ["a-192"] and model.candidate.name == "a-192"
    assert "only candidate" in sel["reason"]


def test_selection_prefers_the_cheaper_candidate_within_one_standard_error():
    from dyntrain.learners.detection_fit import _choose

    big, small = Candidate("head-320", 320), Candidate("head-256", 256)
    clear = {"head-320": [0.50, 0.52, 0.51], "head-256": [0.45, 0.44, 0.46]}
    assert _choose([big, small], clear)[0] is big
    noisy = {"head-320": [0.50, 0.40, 0.51], "head-256": [0.45, 0.44, 0.46]}  # lead 0.02, SE 0.03
    chosen, reason = _choose([big, small], noisy)
    assert chosen is small and "within one standard error" in reason
    assert _choose([big, small], {"head-320": [0.4, 0.42], "head-256": [0.45, 0.46]})[0] is small
