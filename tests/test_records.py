"""Task-neutral records: a target whose labels are structured (here: weighted keywords of a text,
a stand-in for boxes or masks) stores them whole, validated by the target, on SQLite and
PostgreSQL — and every data change of an annotation is a new dataset version, like any change.

The toy target exists only in this module; it is registered for the test and taken away after.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dyntrain import tasks
from dyntrain.kernel.errors import Invalid
from dyntrain.serving.predict import set_feedback
from dyntrain.storage.rows import PredictionRow
from dyntrain.tasks.classes import ClassTarget
from dyntrain.tasks.text import TextModality

TOY = "toy-keywords"


class KeywordsTarget(ClassTarget):
    """A text's weighted keywords: [{"word", "weight"}]; its key is the sorted set of words."""

    def read_label(self, raw: Any, meta: dict[str, Any]) -> tuple[str, Any]:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise Invalid("keywords must be a JSON list of {word, weight}") from None
        if not isinstance(raw, list) or not raw:
            raise Invalid("keywords must be a non-empty list of {word, weight}")
        words = []
        for i, k in enumerate(raw):
            if not isinstance(k, dict) or not isinstance(k.get("word"), str) or not isinstance(k.get("weight"), (int, float)):
                raise Invalid(f"keyword {i} must be {{word: text, weight: number}}, got {k!r}")
            words.append({"word": self.validate_label(k["word"]), "weight": float(k["weight"])})
        words.sort(key=lambda k: k["word"])
        return "+".join(k["word"] for k in words), words

    def label_classes(self, key: str, annotation: Any) -> set[str]:
        return {k["word"] for k in annotation}

    def renamed(self, key: str, annotation: Any, old: str, new: str) -> tuple[str, Any]:
        return self.read_label([{**k, "word": new if k["word"] == old else k["word"]} for k in annotation], {})


@pytest.fixture
def toy():
    tasks.register(tasks.Task(TOY, TextModality(), KeywordsTarget()))
    yield TOY
    tasks.unregister(TOY)


def _add(client, items):
    r = client.post("/api/v1/projects/kw/samples/texts", json={"items": items})
    assert r.status_code == 201, r.text
    return r.json()


def test_structured_labels_are_kept_whole_and_every_change_is_a_version(client, core, toy):
    assert client.post("/api/v1/projects", json={"name": "kw", "task": toy}).status_code == 201
    first = _add(client, [{"text": "red apples and pears", "label": json.dumps([{"word": "pear", "weight": 1},
                                                                                 {"word": "apple", "weight": 2}])}])
    sample = first["samples"][0]
    assert sample["label"] == "apple+pear"  # the key the data view groups by
    assert sample["annotation"] == [{"word": "apple", "weight": 2.0}, {"word": "pear", "weight": 1.0}]
    v1 = first["version"]["number"]
    # every keyword became a class of the project
    assert {c["label"] for c in client.get("/api/v1/projects/kw/classes").json()} >= {"apple", "pear"}

    # a change of the annotation alone (same key) is a change of the data: a new version, a new hash
    r = client.patch(f"/api/v1/projects/kw/samples/{sample['id']}",
                     json={"label": [{"word": "apple", "weight": 5}, {"word": "pear", "weight": 1}]})
    assert r.status_code == 200, r.text
    v2 = r.json()["version"]
    assert v2["number"] == v1 + 1 and v2["hash"] != first["version"]["hash"]
    diff = client.get(f"/api/v1/projects/kw/dataset-versions/{v2['number']}/diff", params={"against": v1}).json()
    assert [d["sample_id"] for d in diff["relabelled"]] == [sample["id"]]
    items = client.get(f"/api/v1/projects/kw/dataset-versions/{v1}").json()["items"]
    assert items[0]["annotation"][0] == {"word": "apple", "weight": 2.0}  # the old version kept its exact label

    # the same label sent again changes nothing (canonical form: no new version)
    same = client.patch(f"/api/v1/projects/kw/samples/{sample['id']}",
                        json={"label": [{"word": "pear", "weight": 1.0}, {"word": "apple", "weight": 5.0}]})
    assert same.status_code == 200 and same.json()["version"] is None

    # restoring version 1 brings its annotation back, as a new version with version 1's hash
    restored = client.post(f"/api/v1/projects/kw/dataset-versions/{v1}/restore").json()["version"]
    assert restored["hash"] == first["version"]["hash"]
    assert client.get(f"/api/v1/projects/kw/samples/{sample['id']}").json()["annotation"][0]["weight"] == 2.0

    # a bad structured label is refused with the target's words, and nothing is written
    bad = client.post("/api/v1/projects/kw/samples/texts", json={"items": [{"text": "x", "label": '[{"word": 3}]'}]})
    assert bad.status_code == 422 and "keyword 0" in bad.text
    assert len(client.get("/api/v1/projects/kw/dataset-versions").json()) == 3


def test_a_correction_keeps_its_annotation_beside_its_key(client, core, toy):
    assert client.post("/api/v1/projects", json={"name": "kw", "task": toy}).status_code == 201
    with core.db.write() as s:
        pid = s.execute(__import__("sqlalchemy").text("SELECT id FROM projects WHERE name = 'kw'")).scalar()
        row = PredictionRow(project_id=pid, model_version=1, label="apple", confidence=0.7,
                            output={"label": "apple", "confidence": 0.7, "scores": {"apple": 0.7}})
        s.add(row)
        s.flush()
        prediction_id = row.id
    set_feedback(core, "kw", prediction_id, [{"word": "pear", "weight": 1}])
    listed = client.get("/api/v1/projects/kw/predictions").json()["items"][0]
    assert (listed["feedback_label"], listed["feedback"]) == ("pear", [{"word": "pear", "weight": 1.0}])
    assert listed["output"]["scores"] == listed["scores"] == {"apple": 0.7}  # the old field, from the output


def test_renaming_a_class_renames_it_inside_the_labels_held_whole(client, core, toy):
    assert client.post("/api/v1/projects", json={"name": "kw", "task": toy}).status_code == 201
    _add(client, [{"text": "apples", "label": json.dumps([{"word": "apple", "weight": 1}, {"word": "pear", "weight": 2}])}])
    from sqlalchemy import text

    assert client.post("/api/v1/projects", json={"name": "tc", "task": "text-classification"}).status_code == 201
    assert client.post("/api/v1/projects/tc/samples/texts", json={"items": [{"text": "a", "label": "x"}]}).status_code == 201
    with core.db.read() as s:  # a label without an annotation is SQL NULL, not JSON null (queries rely on it)
        assert s.execute(text("SELECT count(*) FROM samples WHERE annotation IS NULL")).scalar() == 1
    r = client.patch("/api/v1/projects/kw/classes/apple", json={"label": "malus"})
    assert r.status_code == 200, r.text
    sample = client.get("/api/v1/projects/kw/samples").json()["items"][0]
    assert sample["label"] == "malus+pear" and sample["annotation"][0] == {"word": "malus", "weight": 1.0}
    assert {c["label"] for c in client.get("/api/v1/projects/kw/classes").json()} == {"malus", "pear"}
