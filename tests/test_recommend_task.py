"""Recommendation projects' data: interactions checked and named, appended as cheap versions.

Over the API on SQLite and PostgreSQL: every bad interaction is refused with a 4xx naming the
row and what is wrong, and nothing of a refused request lands; each request is one version that
records a watermark and counts (no item row per interaction), whose hash chains its parent's;
a 10^5-row file is one version; deleting a person's interactions is a recounted version.
"""

from __future__ import annotations

import hashlib
import math
import time

import pytest
from sqlalchemy import func, select

from dyntrain.codecs.interactions import parse_records, read_file
from dyntrain.kernel.errors import Invalid
from dyntrain.storage.rows import DatasetVersionRow, InteractionRow, ProjectRow, VersionItemRow

P = "/api/v1/projects"


def _project(client, name="shop"):
    r = client.post(P, json={"name": name, "task": "recommendation", "settings": {"auto_train": False}})
    assert r.status_code == 201, r.text
    return name


def _versions(client, name):
    return client.get(f"{P}/{name}/dataset-versions").json()


def test_records_are_checked_one_by_one():
    ok = parse_records([{"user": 7, "item": "a", "rating": "4.5", "time": "2026-12-05T09:30:00Z"},
                        {"user": "u2", "item": 3.0, "weight": 2, "time": 1764927000}])
    assert [(r["user_id"], r["item_id"], r["rating"], r["weight"]) for r in ok] == [("7", "a", 4.5, 1.0),
                                                                                     ("u2", "3", None, 2.0)]
    assert ok[0]["at"].isoformat() == "2026-12-05T09:30:00+00:00" and ok[1]["at"].year == 2025
    # another offset is the same moment, kept in UTC (the database keeps wall times)
    (elsewhere,) = parse_records([{"user": 7, "item": "a", "time": "2026-12-05T11:30:00+02:00"}])
    assert elsewhere["at"].isoformat() == "2026-12-05T09:30:00+00:00"
    with pytest.raises(Invalid) as bad:
        parse_records([{"user": "", "item": "a"}, {"user": 1, "item": "b", "rating": "five"},
                       {"user": 1, "item": "c", "rating": float("nan")}, {"user": 1},
                       {"user": 1, "item": "d", "weight": -1}, {"user": 1, "item": "e", "time": "yesterday"},
                       {"user": 1, "item": "fine"}])
    assert "6 of 7 interactions are wrong" in bad.value.message
    assert [d["row"] for d in bad.value.details] == [1, 2, 3, 4, 5, 6]
    reasons = " | ".join(d["reason"] for d in bad.value.details)
    for words in ("user id is empty", "rating must be a number, got 'five'", "rating must be a finite number",
                  "no 'item'", "weight must be positive", "neither ISO 8601"):
        assert words in reasons


def test_files_map_their_columns():
    csv = b"who,what,stars,ts\n1,a,4,1764927000\n2,b,,1764927001\n"
    rows = read_file(csv, "r.csv", user="who", item="what", rating="stars", time="ts")
    assert [(r["user_id"], r["item_id"], r["rating"]) for r in rows] == [("1", "a", 4.0), ("2", "b", None)]
    with pytest.raises(Invalid, match=r"r.csv has no item column 'item'; its columns are: who, what, stars, ts"):
        read_file(csv, "r.csv", user="who", item="item")
    with pytest.raises(Invalid, match="row 3: rating must be a finite number"):  # the header is line 1
        read_file(b"user,item,rating\n1,a,4\n2,b,nan\n", "r.csv", user="user", item="item", rating="rating")
    jsonl = b'{"u": 1, "i": "x"}\n\n{"u": 2, "i": "y", "r": 3}\n'
    assert len(read_file(jsonl, "r.jsonl", user="u", item="i", rating="r")) == 2
    with pytest.raises(Invalid, match="line 2 is not JSON"):
        read_file(b'{"u": 1, "i": "x"}\n{oops\n', "r.jsonl", user="u", item="i")
    # a file the csv module cannot read is a refusal naming the file, in the header or further down
    # (found by the fuzz test: a bare carriage return inside a field was a 500)
    with pytest.raises(Invalid, match="r.csv is not a readable CSV file"):
        read_file(b'user,it\rem\n1,a\n', "r.csv", user="user", item="item")
    with pytest.raises(Invalid, match=r"r.csv is not a readable CSV file \(after line 2\)"):
        read_file(b'user,item\n1,a\n2,b\rc\n', "r.csv", user="user", item="item")


def test_bad_requests_are_refused_and_lose_nothing(client):
    shop = _project(client)
    r = client.post(f"{P}/{shop}/interactions", json={"user": "42", "item": "sku-7", "rating": 4.5,
                                                      "time": "2026-12-05T11:30:00+02:00"})
    assert r.status_code == 201 and r.json()["added"] == 1 and r.json()["version"] == 1
    (kept,) = client.get(f"{P}/{shop}/interactions", params={"user": "42"}).json()["items"]
    assert kept["at"].startswith("2026-12-05T09:30:00") and kept["rating"] == 4.5
    before = client.get(f"{P}/{shop}/interactions").json()
    assert before["counts"] == {"interactions": 1, "users": 1, "items": 1}

    bad = client.post(f"{P}/{shop}/interactions", json={"interactions": [
        {"user": "1", "item": "a"}, {"user": "", "item": "b"}, {"user": "2", "item": "c", "rating": "x"}]})
    assert bad.status_code == 422
    body = bad.json()["error"]
    assert "2 of 3 interactions are wrong" in body["message"] and "Nothing was added" in body["message"]
    assert [d["row"] for d in body["details"]] == [2, 3]
    nan = client.post(f"{P}/{shop}/interactions", content=b'{"user": "1", "item": "a", "rating": NaN}',
                      headers={"Content-Type": "application/json"})
    assert nan.status_code == 422 and "finite" in nan.text
    missing = client.post(f"{P}/{shop}/interactions", json={"user": "1"})
    assert missing.status_code == 422 and "no 'item'" in missing.text
    huge = client.post(f"{P}/{shop}/interactions",
                       json={"interactions": [{"user": str(i), "item": "a"} for i in range(10_001)]})
    assert huge.status_code == 413 and "batches of at most 10,000" in huge.text
    no_file_column = client.post(f"{P}/{shop}/interactions/import", files={"file": ("r.csv", b"u,i\n1,a\n")},
                                 data={"user": "u", "item": "item"})
    assert no_file_column.status_code == 422 and "no item column 'item'" in no_file_column.text
    assert client.post(f"{P}/nowhere/interactions", json={"user": "1", "item": "a"}).status_code == 404
    assert client.get(f"{P}/{shop}/recommend", params={"user": "1"}).status_code == 409  # no model yet
    client.post(P, json={"name": "photos", "task": "image-classification"})
    wrong = client.post(f"{P}/photos/interactions", json={"user": "1", "item": "a"})
    assert wrong.status_code == 422 and "interactions go into projects of: recommendation" in wrong.text
    # nothing of the refused requests landed: one version, one interaction
    assert client.get(f"{P}/{shop}/interactions").json()["counts"] == before["counts"]
    assert len(_versions(client, shop)) == 1


def test_versions_chain_their_hashes_and_stay_cheap(client, core):
    a, b, c = _project(client, "a"), _project(client, "b"), _project(client, "c")
    first = [{"user": f"u{k % 7}", "item": f"i{k % 11}", "time": 1764927000 + k} for k in range(30)]
    second = [{"user": f"u{k % 5}", "item": f"i{k % 13}", "rating": k % 5 + 1, "time": 1764928000 + k}
              for k in range(20)]
    for name, batches in ((a, [first, second]), (b, [first, second]), (c, [first, second[:-1]])):
        for batch in batches:
            assert client.post(f"{P}/{name}/interactions", json={"interactions": batch}).status_code == 201
    va, vb, vc = (sorted(_versions(client, n), key=lambda v: v["number"]) for n in (a, b, c))
    assert [v["parent"] for v in va] == [None, 1]
    assert [v["hash"] for v in va] == [v["hash"] for v in vb]  # the same interactions: the same hashes
    assert va[0]["hash"] == vc[0]["hash"] and va[1]["hash"] != vc[1]["hash"]
    assert va[1]["counts"] == {"interactions": 50, "users": 7, "items": 13} and va[1]["size"] == 50
    # the hash of version 2 is the parent's chained with a digest of what was added
    with core.db.read() as s:
        pid = s.scalar(select(ProjectRow.id).where(ProjectRow.name == a))
        mark = s.scalar(select(DatasetVersionRow.watermark).where(DatasetVersionRow.project_id == pid,
                                                                   DatasetVersionRow.number == 1))
        rows = s.scalars(select(InteractionRow).where(InteractionRow.project_id == pid, InteractionRow.id > mark)
                         .order_by(InteractionRow.id)).all()
        items = s.scalar(select(func.count()).select_from(VersionItemRow))
    from dyntrain.datasets.interactions import _line

    digest = hashlib.sha256("".join(_line(r) for r in rows).encode()).hexdigest()
    assert va[1]["hash"] == hashlib.sha256(f"{va[0]['hash']}\n{digest}".encode()).hexdigest()
    assert items == 0  # no item row per interaction, in any version

    # privacy: one person's interactions go, as a recounted version; the versions that held them say so
    r = client.delete(f"{P}/{a}/interactions", params={"user": "u3"})
    assert r.status_code == 200 and r.json() == {"deleted": 8, "version": 3}
    v3 = next(v for v in _versions(client, a) if v["number"] == 3)
    assert v3["counts"] == {"interactions": 42, "users": 6, "items": 13} and v3["parent"] == 2
    assert v3["hash"] != va[1]["hash"]
    purged = {v["number"]: v["purged"] for v in _versions(client, a)}
    assert purged == {1: 4, 2: 8, 3: 0}
    assert client.delete(f"{P}/{a}/interactions", params={"user": "u3"}).status_code == 404
    assert client.get(f"{P}/{a}/interactions", params={"user": "u3"}).json()["items"] == []


@pytest.mark.slow
def test_a_large_import_is_one_version(client, core):
    shop = _project(client)
    lines = ["user,item,stars,ts"] + [f"{k % 2000},{(k * 7919) % 5000},{k % 5 + 1},{1764000000 + k}"
                                      for k in range(100_000)]
    start = time.perf_counter()
    r = client.post(f"{P}/{shop}/interactions/import", files={"file": ("ratings.csv", "\n".join(lines).encode())},
                    data={"user": "user", "item": "item", "rating": "stars", "time": "ts"})
    took = time.perf_counter() - start
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 100_000 and r.json()["version"] == 1
    (version,) = _versions(client, shop)
    assert version["counts"] == {"interactions": 100_000, "users": 2000, "items": 5000}
    with core.db.read() as s:
        assert s.scalar(select(func.count()).select_from(DatasetVersionRow)) == 1
        assert s.scalar(select(func.count()).select_from(VersionItemRow)) == 0
    # the next batch costs what the batch costs, not what the history costs
    start = time.perf_counter()
    r = client.post(f"{P}/{shop}/interactions", json={"interactions": [{"user": "new", "item": "0"}]})
    append = time.perf_counter() - start
    assert r.json()["version"] == 2 and _versions(client, shop)[0]["counts"]["users"] == 2001
    print(f"\n10^5-row import {took:.1f} s, then one interaction appended as a version in {append * 1000:.0f} ms")
    assert append < 2.0


def test_training_waits_for_enough_data():
    from dyntrain import tasks

    target = tasks.get("recommendation").target
    with pytest.raises(Invalid) as waiting:
        target.check_trainable({"interactions": 4, "users": 1, "items": 3})
    assert waiting.value.message.startswith("waiting for data: a recommender needs at least 10 interactions of 2 "
                                            "people with 2 items; add 6 more interactions (there are 4) and "
                                            "interactions of 1 more person (there are 1)")
    target.check_trainable({"interactions": 10, "users": 2, "items": 2})  # enough


def test_versions_of_interactions_are_not_restored_as_samples(client):
    shop = _project(client)
    client.post(f"{P}/{shop}/interactions", json={"interactions": [{"user": "1", "item": "a"}]})
    client.post(f"{P}/{shop}/interactions", json={"interactions": [{"user": "2", "item": "b"}]})
    r = client.post(f"{P}/{shop}/dataset-versions/1/restore")
    assert r.status_code == 422 and "learns from interactions, not samples" in r.text
    assert len(_versions(client, shop)) == 2  # nothing made


def test_the_gate_scores_both_models_only_on_choices_the_served_one_never_saw():
    from dyntrain import tasks
    from dyntrain.registry.gate import measure_served
    from dyntrain.tasks.recommend import SeenUpTo

    target = tasks.get("recommendation").target
    # people whose newest held-out item came after the served model's watermark (100) are compared
    predictions = [
        {"content_hash": f"{101 + k}:u{k}", "user": f"u{k}", "true": ["old", f"new{k}"], "fresh": [f"new{k}"],
         "predicted": ["old", f"new{k}", "x"], "recent": []} for k in range(6)
    ] + [{"content_hash": "90:seen", "user": "seen", "true": ["a"], "fresh": [], "predicted": ["a"], "recent": []}]
    served_lists = {f"u{k}": {"items": ["y", f"new{k}"] if k < 3 else ["y", "z"]} for k in range(6)}
    record = measure_served(predictions, SeenUpTo(100), [], "recommendation",
                            lambda samples: [served_lists[p["user"]] for p in samples], version=1)
    assert record["n"] == 6 and record["left_out_seen"] == 1 and record["enough"]
    # "old" was seen by the served model: no hit and no slot for the new one either, so its fresh
    # choice ranks first (NDCG 1) for all six; the served file found it second for three of them
    assert record["new"]["ndcg"] == pytest.approx(1.0) and record["new"]["hit_rate"] == 1.0
    assert record["metrics"]["hit_rate"] == 0.5
    assert record["metrics"]["ndcg"] == pytest.approx(0.5 / math.log2(3))
