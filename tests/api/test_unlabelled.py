"""The labelling queue through the REST API, on SQLite and PostgreSQL: unlabelled uploads wait
outside the data, the model in service suggests, a confirmed batch is ONE dataset version,
skip moves an item to the end, delete removes it; bad batches change nothing."""

from __future__ import annotations

import pytest

from dyntrain.kernel.projects import create_project
from dyntrain.ops.demo import digit_images
from dyntrain.scheduler import queue as jobs
from dyntrain.scheduler.jobs import run_job
from tests.test_tabular_loop import fruit

P = "/api/v1/projects"


def _train(core, project: str) -> None:
    jobs.request_training(core, project)
    run_job(core, jobs.claim_next(core))


def _versions(client, project: str) -> list[dict]:
    return client.get(f"{P}/{project}/dataset-versions").json()


@pytest.fixture
def fruit_project(core, client):
    """A trained table project (3 classes, 10 labelled rows each) and 20 rows waiting unlabelled."""
    create_project(core, "fruit", task="tabular-classification", settings={"auto_train": False, "time_budget_s": 5})
    r = client.post(f"{P}/fruit/samples/rows", json={"rows": fruit(30), "target": "fruit"})
    assert r.status_code == 201, r.text
    _train(core, "fruit")
    assert client.get(f"{P}/fruit").json()["status"]["production"]["version"] == 1
    waiting = fruit(20, seed=7)
    truth = {}
    r = client.post(f"{P}/fruit/unlabelled/rows", json={"rows": waiting, "drop": "fruit"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["added"]) == 20 and body["duplicates"] == [] and body["waiting"] == 20
    for sample, row in zip(body["added"], waiting):
        truth[sample["id"]] = row["fruit"]
        assert sample["label"] == ""
    return truth


def test_unlabelled_rows_wait_outside_the_data_and_get_suggestions(client, fruit_project):
    truth = fruit_project
    # not data: no new version, not listed, not counted
    versions = _versions(client, "fruit")
    assert len(versions) == 1 and versions[0]["size"] == 30
    assert client.get(f"{P}/fruit/samples").json()["total"] == 30
    assert {c["label"]: c["count"] for c in client.get(f"{P}/fruit/classes").json()} == \
        {"apple": 10, "banana": 10, "cherry": 10}
    page = client.get(f"{P}/fruit/unlabelled").json()
    assert page["total"] == 20 and page["model_version"] == 1
    assert page["strategy"] == "margin"  # 10 labels per class: past the diversity phase
    assert page["labels_per_class"] == 10.0
    assert [i["position"] for i in page["items"]] == list(range(1, 21))
    assert sorted(i["id"] for i in page["items"]) == sorted(truth)
    right = 0
    for item in page["items"]:
        s = item["suggestion"]
        assert s["label"] in {"apple", "banana", "cherry"} and 0 < s["confidence"] <= 1 and 0 <= s["margin"] <= 1
        assert item["preview"] and "weight" in item["preview"]  # the row's words, for the page
        right += s["label"] == truth[item["id"]]
    assert right >= 16, f"the model in service suggested the right fruit for only {right} of 20"
    # paging keeps the order
    second = client.get(f"{P}/fruit/unlabelled", params={"offset": 5, "limit": 5}).json()["items"]
    assert [i["id"] for i in second] == [i["id"] for i in page["items"][5:10]]
    assert second[0]["position"] == 6


def test_confirmed_batch_is_one_version(client, fruit_project):
    truth = fruit_project
    items = client.get(f"{P}/fruit/unlabelled").json()["items"]
    # three suggestions accepted, two corrected to the true class
    decisions = [{"id": i["id"], "label": i["suggestion"]["label"]} for i in items[:3]]
    decisions += [{"id": i["id"], "label": truth[i["id"]]} for i in items[3:5]]
    r = client.post(f"{P}/fruit/unlabelled/confirm", json={"items": decisions})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"]["number"] == 2 and body["version"]["size"] == 35
    assert {s["id"]: s["label"] for s in body["samples"]} == {d["id"]: d["label"] for d in decisions}
    assert len(_versions(client, "fruit")) == 2  # one version for the whole batch
    items_v2 = {i["sample_id"]: i["label"] for i in client.get(f"{P}/fruit/dataset-versions/2").json()["items"]}
    assert all(items_v2[d["id"]] == d["label"] for d in decisions)
    assert client.get(f"{P}/fruit/samples").json()["total"] == 35
    left = client.get(f"{P}/fruit/unlabelled").json()
    assert left["total"] == 15 and not {d["id"] for d in decisions} & {i["id"] for i in left["items"]}
    # a labelled item is no longer in the queue: confirming it again is refused, naming it
    r = client.post(f"{P}/fruit/unlabelled/confirm", json={"items": [decisions[0], {"id": left["items"][0]["id"],
                                                                                     "label": "apple"}]})
    assert r.status_code == 404 or r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["details"][0]["id"] == decisions[0]["id"] and "queue" in err["details"][0]["reason"]
    assert len(_versions(client, "fruit")) == 2 and client.get(f"{P}/fruit/unlabelled").json()["total"] == 15


def test_bad_batches_change_nothing(client, fruit_project):
    items = client.get(f"{P}/fruit/unlabelled").json()["items"]
    for body, words in [
        ({"items": [{"id": items[0]["id"], "label": "apple"}, {"id": 999_999, "label": "apple"}]}, "999999"),
        ({"items": [{"id": items[0]["id"], "label": "apple"}, {"id": items[1]["id"], "label": "  "}]}, "label"),
        ({"items": [{"id": items[0]["id"], "label": "apple"}, {"id": items[0]["id"], "label": "cherry"}]}, "twice"),
    ]:
        r = client.post(f"{P}/fruit/unlabelled/confirm", json=body)
        assert r.status_code == 422, r.text
        assert words in r.text
    assert len(_versions(client, "fruit")) == 1
    assert client.get(f"{P}/fruit/unlabelled").json()["total"] == 20


def test_skip_moves_to_the_end_and_delete_removes(client, fruit_project):
    items = client.get(f"{P}/fruit/unlabelled").json()["items"]
    first, second = items[0]["id"], items[1]["id"]
    r = client.post(f"{P}/fruit/unlabelled/{first}/skip")
    assert r.status_code == 200, r.text
    after = client.get(f"{P}/fruit/unlabelled").json()["items"]
    assert after[-1]["id"] == first and after[-1]["skipped"] and after[-1]["position"] == 20
    assert after[0]["id"] != first
    client.post(f"{P}/fruit/unlabelled/{second}/skip")
    assert [i["id"] for i in client.get(f"{P}/fruit/unlabelled").json()["items"][-2:]] == [first, second]
    # a skipped item can still be labelled; the mark does not follow it into the data
    r = client.post(f"{P}/fruit/unlabelled/confirm", json={"items": [{"id": second, "label": "apple"}]})
    assert r.status_code == 200 and "skipped_at" not in r.json()["samples"][0]["meta"]
    assert client.delete(f"{P}/fruit/unlabelled/{first}").status_code == 204
    assert client.delete(f"{P}/fruit/unlabelled/{first}").status_code == 404
    assert client.get(f"{P}/fruit/unlabelled").json()["total"] == 18
    assert len(_versions(client, "fruit")) == 2  # the delete made none


def test_duplicates_are_left_out(client, fruit_project):
    labelled = fruit(30)[:2]  # in the data already
    waiting = fruit(20, seed=7)[:1]  # in the queue already
    new = fruit(3, seed=11)
    r = client.post(f"{P}/fruit/unlabelled/rows", json={"rows": labelled + waiting + new + new[:1], "drop": "fruit"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["added"]) == 3 and body["duplicates"] == ["row-1", "row-2", "row-3", "row-7"]
    assert body["waiting"] == 23


def test_csv_and_texts_and_refusals(client, core):
    create_project(core, "reviews", task="text-classification", settings={"auto_train": False})
    r = client.post(f"{P}/reviews/unlabelled/texts", json={"texts": ["a lovely film", "too long and dull"]})
    assert r.status_code == 201 and len(r.json()["added"]) == 2
    page = client.get(f"{P}/reviews/unlabelled").json()
    assert page["model_version"] is None and all(i["suggestion"] is None for i in page["items"])
    assert {i["preview"] for i in page["items"]} == {"a lovely film", "too long and dull"}
    # nothing is added when any item is bad
    r = client.post(f"{P}/reviews/unlabelled/texts", json={"texts": ["fine", "   "]})
    assert r.status_code == 422 and "empty" in r.text
    assert client.get(f"{P}/reviews/unlabelled").json()["total"] == 2
    # rows go to table projects only
    assert client.post(f"{P}/reviews/unlabelled/rows", json={"rows": [{"a": 1}]}).status_code == 422
    create_project(core, "fruit", task="tabular-classification", settings={"auto_train": False})
    csv = b"weight,colour,fruit\n150,red,\n12,red,\n"
    r = client.post(f"{P}/fruit/unlabelled/csv", files={"file": ("new.csv", csv, "text/csv")}, data={"drop": "fruit"})
    assert r.status_code == 201, r.text
    assert [s["meta"]["preview"] for s in r.json()["added"]] == ["colour=red, weight=150", "colour=red, weight=12"]
    # a regression project has no classes to suggest: no queue, and the message says where there is one
    create_project(core, "prices", task="tabular-regression")
    r = client.post(f"{P}/prices/unlabelled/rows", json={"rows": [{"rooms": 3}]})
    assert r.status_code == 422 and "tabular-classification" in r.json()["error"]["message"]
    assert client.get(f"{P}/prices/unlabelled").status_code == 422


@pytest.mark.slow
def test_images_wait_in_diversity_order_before_a_model(client, core):
    """No model yet: no suggestions, and the order is k-means diversity on the Lite0 embeddings."""
    create_project(core, "digits", settings={"auto_train": False})
    images = digit_images(digits=(0, 1, 7), per_class=5)
    r = client.post(f"{P}/digits/unlabelled", files=[("files", (f"{i}.png", d, "image/png"))
                                                     for i, (_, d) in enumerate(images)])
    assert r.status_code == 201, r.text
    page = client.get(f"{P}/digits/unlabelled").json()
    assert page["total"] == 15 and page["strategy"] == "diversity" and page["model_version"] is None
    assert all(i["suggestion"] is None for i in page["items"])
    first = page["items"][0]
    content = client.get(f"{P}/digits/unlabelled/{first['id']}/image")
    assert content.status_code == 200 and content.headers["content-type"] == "image/png"
    assert content.content == images[int(first["filename"].split(".")[0])][1]
    # an unlabelled item is not a sample of the data
    assert client.get(f"{P}/digits/samples/{first['id']}").status_code == 404
