"""The boxes target's rules, one by one: what a label may be, when data can train, what the gate
calls worse, and how a model's boxes become an answer."""

from __future__ import annotations

import pytest

from dyntrain import tasks
from dyntrain.kernel.errors import Invalid
from dyntrain.kernel.project_settings import ProjectSettings

BOXES = tasks.get("object-detection").target
META = {"width": 100, "height": 80}


def test_a_label_is_a_canonical_box_list_checked_against_the_image():
    key, boxes = BOXES.read_label('[{"label": "pen", "x": 50, "y": 1, "w": 10, "h": 5},'
                                  ' {"label": "cup", "x": 1.234, "y": 2, "w": 3, "h": 4}]', META)
    assert key == "cup/pen" and [b["label"] for b in boxes] == ["cup", "pen"] and boxes[0]["x"] == 1.23
    assert BOXES.read_label([], META) == ("", [])  # an image with nothing to find
    assert BOXES.read_label({"boxes": boxes}, META)[1] == boxes  # the same boxes, sent the other way
    edge = {"label": "cup", "x": 0, "y": 0, "w": 100.9, "h": 80}  # under a pixel over the edge: rounding
    assert BOXES.read_label([edge], META)[1][0]["w"] == 100.9


@pytest.mark.parametrize("raw, words", [
    ('[{"label": "cup", "x": 95, "y": 0, "w": 10, "h": 5}]', "outside the 100x80 image"),
    ('[{"label": "cup", "x": 5, "y": 0, "w": -3, "h": 5}]', "no area"),
    ('[{"label": "cup", "x": "a", "y": 0, "w": 3, "h": 5}]', "x must be a number"),
    ('[{"label": "a/b", "x": 5, "y": 0, "w": 3, "h": 5}]', "/"),
    ('[{"x": 5, "y": 0, "w": 3, "h": 5}]', "no label"),
    ("[{", "not valid JSON"),
    ("cup", "JSON list of boxes"),
    ('{"x": 1}', "JSON list of boxes"),
])
def test_a_bad_label_names_what_is_wrong(raw, words):
    with pytest.raises(Invalid) as exc:
        BOXES.read_label(raw, META)
    assert words in exc.value.message


def test_every_bad_box_is_listed():
    raw = [{"label": "cup", "x": 200, "y": 0, "w": 1, "h": 1}, {"label": "cup", "x": 1, "y": 1, "w": 2, "h": 2},
           {"label": "cup", "x": 1, "y": 1, "w": 0, "h": 2}]
    with pytest.raises(Invalid) as exc:
        BOXES.read_label(raw, META)
    assert [d["box"] for d in exc.value.details] == [0, 2] and "2 of 3 boxes" in exc.value.message


def test_counts_waiting_classes_and_what_can_train():
    counts = BOXES.counts(["cup/pen", "cup", "", "pen", "mug"])
    assert counts == {"cup": 2, "mug": 1, "pen": 2, "(nothing)": 1}
    assert BOXES.waiting(counts) == {"mug": 1}
    BOXES.check_trainable(counts)  # cup and pen can be learnt; mug waits
    with pytest.raises(Invalid, match="no image has a box"):
        BOXES.check_trainable(BOXES.counts(["", ""]))
    from dyntrain.kernel.entities import VersionItem
    from dyntrain.training.boxes import BOX_STAGES
    from dyntrain.training.spec import TrainingSpec

    few = [VersionItem(i, "0" * 64, "cup", [{"label": "cup", "x": 1, "y": 1, "w": 2, "h": 2}]) for i in range(3)]
    with pytest.raises(Invalid, match="at least 4 images"):  # the run itself counts the images
        BOX_STAGES.encode(few, TrainingSpec(1, task="object-detection"))
    with pytest.raises(Invalid, match="every class needs boxes on at least 2 images"):
        BOXES.check_trainable(BOXES.counts(["cup", "pen", "mug", ""]))


def test_the_gate_rules():
    s = ProjectSettings(gate_metric="map50_95", gate_tolerance=0.02, gate_class_recall_tolerance=0.1)
    old = {"map50_95": 0.50, "per_class": {"cup": {"ap": 0.6, "n": 10}, "pen": {"ap": 0.4, "n": 2}}}
    assert BOXES.worse({"map50_95": 0.49, "per_class": old["per_class"]}, old, "map50_95", s, 5) is None
    assert "would drop from 0.500 to 0.470" in BOXES.worse({"map50_95": 0.47, "per_class": {}}, old, "map50_95", s, 5)
    cup_worse = {"map50_95": 0.52, "per_class": {"cup": {"ap": 0.45, "n": 10}, "pen": {"ap": 0.1, "n": 2}}}
    why = BOXES.worse(cup_worse, old, "map50_95", s, 5)
    assert "average precision would drop too much for: cup 0.60→0.45" in why and "pen" not in why  # pen: 2 objects
    assert BOXES.first_model(0.3, 0.0, "map50_95")[0] and not BOXES.first_model(0.0, 0.0, "map50_95")[0]
    assert s.gate_metric in BOXES.gate_metrics


def test_answers_keep_boxes_above_the_threshold_surest_first():
    output = [{"label_index": 1, "confidence": 0.9, "x": 1.04, "y": 2, "w": 3, "h": 4},
              {"label_index": 0, "confidence": 0.4, "x": 5, "y": 6, "w": 7, "h": 8}]
    answer = BOXES.answer(output, ("cup", "pen"), 0.5)
    assert answer.public == {"boxes": [{"label": "pen", "confidence": 0.9, "x": 1.0, "y": 2, "w": 3, "h": 4}]}
    assert (answer.label, answer.confidence) == ("pen", 0.9)
    assert BOXES.answer([], ("cup",), 0.5).record == {"label": None, "confidence": 0.0, "output": {"boxes": []}}


def test_renaming_a_class_renames_its_boxes():
    key, boxes = BOXES.read_label([{"label": "cup", "x": 1, "y": 1, "w": 2, "h": 2},
                                   {"label": "pen", "x": 3, "y": 1, "w": 2, "h": 2}], META)
    assert BOXES.renamed(key, boxes, "cup", "zebra")[0] == "pen/zebra"


def test_the_run_report_draws_the_boxes_it_answers_with_and_names_its_misses():
    cup = {"label": "cup", "x": 10, "y": 10, "w": 20, "h": 20}
    weak = {"label": "cup", "x": 60, "y": 40, "w": 10, "h": 10, "confidence": 0.1}  # under the threshold
    wrong = {"label": "pen", "x": 60, "y": 10, "w": 10, "h": 10, "confidence": 0.8}  # a false box
    found = {**cup, "x": 11, "confidence": 0.9}
    predictions = [{"sample_id": 1, "true": [cup], "predicted": [found, weak], "size": [100, 80]},
                   {"sample_id": 2, "true": [cup, {**cup, "x": 50}], "predicted": [found, weak, wrong], "size": [100, 80]}]
    per_class = {"cup": {"n": 3, "found": 2, "drawn": 2, "false": 0, "recall": 2 / 3, "ap": 0.5, "ap50": 0.6},
                 "pen": {"n": 0, "found": 0, "drawn": 1, "false": 1, "recall": None, "ap": None, "ap50": None}}
    view = BOXES.run_view({}, {"predictions": predictions, "threshold": 0.3, "per_class": per_class})
    assert [e["sample_id"] for e in view["box_examples"]] == [2]  # image 1: all found, the weak box not drawn
    example = view["box_examples"][0]
    assert example["missed"] == 2  # one cup not found, one pen drawn on nothing
    assert weak not in example["predicted"] and wrong in example["predicted"]
    assert [s["sentence"] for s in view["sentences"]] == [
        "Finds 2 of 3 cup; the boxes it draws are almost always right"]
