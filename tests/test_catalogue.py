"""The item catalogue of recommendation projects (issue 18): entries checked and named, stored
append-only and versioned by a mark like interactions; the content learner and the cold-start
answers built on the catalogue's vectors; the recommend filter by category and attributes.

Codec and learner tests need no database; the API tests run on SQLite and PostgreSQL with a model
trained by the real job (categories and attributes; one run also embeds texts with MiniLM and
pictures with Lite0).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from dyntrain.codecs.catalogue import KEEP, parse_entries, read_file
from dyntrain.kernel.errors import Invalid
from dyntrain.learners.item_features import item_matrix
from dyntrain.learners.recommend import Interactions, export_recommender, load_recommender
from dyntrain.learners.recommend_models import fit_learner
from dyntrain.storage.rows import CatalogueRow, DatasetVersionRow, ProjectRow

P = "/api/v1/projects"
CATS = ("shoes", "hats", "bags", "socks")


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, "PNG")
    return buf.getvalue()


# -- the codec ------------------------------------------------------------------------------
def test_entries_are_checked_one_by_one_and_unmentioned_fields_are_kept():
    out = parse_entries([{"item": 7, "category": "shoes", "color": "red", "size": 42},
                         {"item": "b", "attributes": {"color": "blue"}, "text": None}])
    assert out[0]["item_id"] == "7" and out[0]["category"] == "shoes"
    assert out[0]["attributes"] == {"color": "red", "size": "42"} and out[0]["text"] is KEEP
    assert out[0]["image_bytes"] is KEEP
    assert out[1]["category"] is KEEP and out[1]["text"] is None and out[1]["attributes"] == {"color": "blue"}
    with pytest.raises(Invalid) as err:
        parse_entries([{"item": "a"}, {"category": "x"}, {"item": "a"}, {"item": "c", "attributes": [1]},
                       {"item": "d", "image": "photo.png"}])
    rows = {d["row"]: d["reason"] for d in err.value.details}
    assert set(rows) == {2, 3, 4, 5} and "appears twice" in rows[3] and "attributes must be an object" in rows[4]
    assert "data: URLs" in rows[5] and "Nothing was added" in err.value.message


def test_unreadable_csv_is_a_refusal_naming_the_file():
    with pytest.raises(Invalid, match="c.csv is not a readable CSV file"):
        read_file(b"item,cat\regory\nx,y\n", "c.csv")


def test_files_map_columns_and_archives_carry_pictures():
    csv = b"sku,kind,blurb,colour\ns1,shoes,A red shoe,red\ns2,hats,,blue\n"
    out = read_file(csv, "c.csv", item="sku", category="kind", text="blurb")
    assert [(e["item_id"], e["category"], e["text"], e["attributes"]) for e in out] == [
        ("s1", "shoes", "A red shoe", {"colour": "red"}), ("s2", "hats", None, {"colour": "blue"})]
    assert out[0]["image_bytes"] is KEEP  # no image column: pictures are not touched
    with pytest.raises(Invalid, match="no item column 'item'"):
        read_file(csv, "c.csv")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("items.csv", "item,category,image\ns1,shoes,pics/s1.png\ns2,hats,s2.png\n")
        z.writestr("pics/s1.png", _png("red"))
        z.writestr("pics/s2.png", _png("blue"))
    out = read_file(buf.getvalue(), "cat.zip")
    assert [e["image_bytes"][:4] for e in out] == [b"\x89PNG"] * 2
    with pytest.raises(Invalid, match="not in the archive"):
        buf2 = io.BytesIO()
        with zipfile.ZipFile(buf2, "w") as z:
            z.writestr("items.jsonl", '{"item": "s1", "image": "missing.png"}\n')
        read_file(buf2.getvalue(), "cat.zip")


# -- item vectors and the content learner ------------------------------------------------------
def _shop(n_people=40, per_cat=8, cold=2, seed=0):
    """People who each stay in one category; ``cold`` items per category nobody touched."""
    rng = np.random.default_rng(seed)
    catalogue, users, items, times = {}, [], [], []
    for c in CATS:
        for k in range(per_cat + cold):
            catalogue[f"{c}-{k}"] = {"category": c, "attributes": {"color": ("red", "blue")[k % 2]},
                                     "text": f"{c} number {k}", "image": None}
    t = 0
    for p in range(n_people):
        c = CATS[p % len(CATS)]
        for k in rng.choice(per_cat, 6, replace=False):
            users.append(f"u{p}")
            items.append(f"{c}-{k}")
            times.append(t)
            t += 1
    return catalogue, users, items, times


def test_item_vectors_weigh_each_block_equally():
    cat = {"a": {"category": "x", "attributes": {"c": "r"}, "text": "t1", "image": None},
           "b": {"category": "x", "attributes": {"c": "r"}, "text": None, "image": None},
           "c": {"category": "y", "attributes": {"c": "unique"}, "text": "t2", "image": None}}
    embed = lambda texts: np.asarray([[1.0, 0.0] if t == "t1" else [0.0, 1.0] for t in texts])  # noqa: E731
    F, info = item_matrix(["a", "b", "c", "none"], cat, embed_texts=embed)
    assert info == {"items": 3, "categories": 2, "attribute_values": 1, "texts": 2, "width": 5}
    assert not F[3].any()  # not in the catalogue: no content evidence
    assert np.allclose(np.linalg.norm(F[0]), 1.0)  # three blocks of unit length, each 1/sqrt(3)
    assert F[2, 2] == 0  # a value only one item has is not encoded
    assert item_matrix(["z"], cat)[0] is None


def test_content_learner_recommends_items_nobody_has_touched(tmp_path):
    catalogue, users, items, times = _shop()
    ids = sorted(catalogue)
    data = Interactions.from_columns(users, items, timestamps=times, item_ids=ids)
    F, _ = item_matrix(ids, catalogue)
    model = fit_learner("content", data, item_features=F)
    served = load_recommender(export_recommender(model, tmp_path / "m.npz"))
    cold = [i for i in ids if int(i.split("-")[1]) >= 8]
    answer = served.recommend("u0", 2, allowed_items=cold)  # u0 chose shoes only; 2 shoes are untouched
    assert answer["source"] == "model" and all(i.startswith("shoes-") for i in answer["items"])
    stranger = served.recommend("nobody", 3, history=["hats-0", "hats-2"])
    assert stranger["source"] == "model" and all(i.startswith("hats-") for i in stranger["items"])
    similar = served.similar("bags-9", 3)  # nobody touched it
    assert similar["source"] == "model" and all(i.startswith("bags-") for i in similar["items"])
    # a neighbour model carries the vectors too: an untouched item has content neighbours, and a
    # person's list continues with items like theirs where the neighbours run out
    knn = load_recommender(export_recommender(fit_learner("item_knn", data, {"K": 100}, item_features=F),
                                              tmp_path / "k.npz"))
    assert knn.similar("socks-8", 3)["source"] == "content"
    assert all(i.startswith("shoes-") for i in knn.recommend("u0", 2, allowed_items=cold)["items"])
    plain = fit_learner("item_knn", data, {"K": 100})
    assert not all(i.startswith("shoes-") for i in plain.recommend("u0", 8, allowed_items=cold)["items"])


def test_item_vectors_from_minilm_texts_and_lite0_pictures(tmp_path):
    from dyntrain.learners.features import FeatureExtractor
    from dyntrain.training.recommend import _item_features

    pics = {"d-red": _png((220, 20, 20)), "d-red2": _png((200, 30, 30)), "d-blue": _png((20, 20, 220))}
    cat = {"s1": {"category": None, "attributes": {}, "text": "a red running shoe", "image": "d-red"},
           "s2": {"category": None, "attributes": {}, "text": "crimson trainers for jogging", "image": "d-red2"},
           "h1": {"category": None, "attributes": {}, "text": "a woollen winter hat", "image": "d-blue"}}
    F, info = _item_features(cat, ["s1", "s2", "h1"], FeatureExtractor(tmp_path / "cache"), pics.__getitem__)
    assert info["texts"] == 3 and info["pictures"] == 3 and F.shape == (3, 384 + 1280)
    Fn = F / np.linalg.norm(F, axis=1, keepdims=True)
    assert Fn[0] @ Fn[1] > Fn[0] @ Fn[2]  # the two red shoes are nearer each other than the hat


# -- versions through the API (SQLite and PostgreSQL) -----------------------------------------
def _project(client, name="shop", settings=None):
    r = client.post(P, json={"name": name, "task": "recommendation",
                             "settings": {"auto_train": False, **(settings or {})}})
    assert r.status_code == 201, r.text


def _versions(client, name="shop"):
    return client.get(f"{P}/{name}/dataset-versions").json()


def test_catalogue_changes_are_cheap_versions(client, core):
    _project(client)
    r = client.post(f"{P}/shop/interactions", json={"interactions": [{"user": "u", "item": "s1"}] * 3})
    assert r.status_code == 201
    r = client.post(f"{P}/shop/catalogue", json={"items": [
        {"item": "s1", "category": "shoes", "attributes": {"color": "red"}, "text": "Red shoe"},
        {"item": "h1", "category": "hats", "text": "Hat"}]})
    assert r.status_code == 201, r.text
    assert r.json() == {"added": 2, "unchanged": 0, "version": 2, "items": 2}
    v = _versions(client)
    assert v[0]["counts"] == {"interactions": 3, "users": 1, "items": 1, "catalogue": 2} and v[0]["parent"] == 1
    assert v[0]["hash"] != v[1]["hash"]
    # the same entries again change nothing and make no version
    again = client.post(f"{P}/shop/catalogue", json={"items": [
        {"item": "s1", "category": "shoes", "attributes": {"color": "red"}, "text": "Red shoe"}]})
    assert again.json() == {"added": 0, "unchanged": 1, "version": 2, "items": 2}
    # one changed field: one row, one version; the other fields are kept
    assert client.post(f"{P}/shop/catalogue", json={"item": "s1", "text": "Red trail shoe"}).json()["version"] == 3
    # a refused batch lands nothing
    bad = client.post(f"{P}/shop/catalogue", json={"items": [{"item": "x1"}, {"nope": 1}]})
    assert bad.status_code == 422 and "row 2" in bad.text and len(_versions(client)) == 3
    # a picture on its own; interactions after it keep the catalogue mark
    put = client.put(f"{P}/shop/catalogue/h1/image", files={"file": ("h.png", _png("blue"), "image/png")})
    assert put.status_code == 200 and put.json()["version"] == 4
    assert client.put(f"{P}/shop/catalogue/h1/image", files={"file": ("h.txt", b"not a picture")}).status_code == 422
    assert client.post(f"{P}/shop/interactions", json={"user": "v", "item": "h1"}).json()["version"] == 5
    got = client.get(f"{P}/shop/catalogue/h1/image")
    assert got.status_code == 200 and got.headers["content-type"] == "image/png" and got.content == _png("blue")
    # housekeeping keeps a picture an entry names, and collects one nobody names
    from datetime import datetime, timedelta, timezone

    from dyntrain.ops.housekeeping import gc

    orphan = core.blobs.put(_png("green"))
    gc(core, now=datetime.now(timezone.utc) + timedelta(days=400))
    assert client.get(f"{P}/shop/catalogue/h1/image").content == _png("blue")
    with pytest.raises(Exception):
        core.blobs.get(orphan)
    page = client.get(f"{P}/shop/catalogue", params={"items": "s1,zz,h1"}).json()
    assert [(e["item"], e["text"], e["image"]) for e in page["items"]] == [("s1", "Red trail shoe", False),
                                                                           ("h1", "Hat", True)]
    assert page["summary"]["categories"] == {"hats": 1, "shoes": 1} and page["summary"]["with_image"] == 1
    with core.db.read() as s:
        project = s.scalars(select(ProjectRow).where(ProjectRow.name == "shop")).one()
        marks = dict(s.execute(select(DatasetVersionRow.number, DatasetVersionRow.catalogue_mark)
                               .where(DatasetVersionRow.project_id == project.id)).all())
        assert marks[1] is None and marks[4] == marks[5] and marks[2] < marks[3] < marks[4]
        assert s.query(CatalogueRow).filter_by(project_id=project.id).count() == 4  # rows, never rewritten
        from dyntrain.datasets.interactions import load_log

        assert load_log(s, project, 2).catalogue["s1"]["text"] == "Red shoe"  # each version its own catalogue
        assert load_log(s, project, 5).catalogue["s1"]["text"] == "Red trail shoe"
        assert load_log(s, project, 1).catalogue == {}
    assert _versions(client)[0]["counts"]["catalogue"] == 2


def test_catalogue_import_from_a_csv_and_an_archive(client):
    _project(client)
    r = client.post(f"{P}/shop/catalogue/import", files={"file": ("c.csv", b"item,category,color\na,shoes,red\nb,hats,\n")})
    assert r.status_code == 201 and r.json()["added"] == 2
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("list.jsonl", '{"item": "a", "image": "a.png"}\n')
        z.writestr("a.png", _png("red"))
    r = client.post(f"{P}/shop/catalogue/import", files={"file": ("c.zip", buf.getvalue())})
    assert r.status_code == 201, r.text
    entry = client.get(f"{P}/shop/catalogue", params={"items": "a"}).json()["items"][0]
    assert entry == {"item": "a", "category": "shoes", "attributes": {"color": "red"}, "text": None, "image": True}
    wrong = client.post(f"{P}/shop/catalogue/import", files={"file": ("c.csv", b"sku\n1\n")})
    assert wrong.status_code == 422 and "no item column" in wrong.text


# -- a trained model: the filter and the cold start (SQLite and PostgreSQL) ------------------------
def _trained(client, core, catalogue, users, items, times, extra_catalogue=()):
    from dyntrain.scheduler import queue
    from dyntrain.scheduler.jobs import run_job

    _project(client, settings={"time_budget_s": 30})
    rows = [{"user": u, "item": i, "time": 1_700_000_000 + t} for u, i, t in zip(users, items, times)]
    assert client.post(f"{P}/shop/interactions", json={"interactions": rows}).status_code == 201
    entries = [{"item": k, "category": e["category"], "attributes": e["attributes"]} for k, e in catalogue.items()]
    assert client.post(f"{P}/shop/catalogue", json={"items": entries}).status_code == 201
    queue.request_training(core, "shop")
    run_job(core, queue.claim_next(core))
    runs = client.get(f"{P}/shop/runs").json()
    assert runs and runs[0]["status"] == "succeeded", runs
    return client.get(f"/api/v1/runs/{runs[0]['id']}").json()


def test_recommend_filters_by_attributes_and_answers_cold_starts(client, core):
    catalogue, users, items, times = _shop()
    run = _trained(client, core, catalogue, users, items, times)
    scores = {s["label"]: s for s in run["result"]["selection"]["scores"]}
    assert scores["rec.content()"]["error"] is None and scores["rec.content()"]["ndcg"] > 0
    assert run["result"]["catalogue"]["categories"] == 4
    assert run["result"]["distinct_items"] == 40  # the 8 untouched items are known to the model too

    def rec(**params):
        r = client.get(f"{P}/shop/recommend", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    hats = rec(user="u0", category="hats", n=5)  # u0 chose shoes; asked for hats, gets hats only
    assert len(hats["items"]) == 5 and all(catalogue[i]["category"] == "hats" for i in hats["items"])
    red = rec(user="u1", where=["color:red"], n=20)
    assert red["items"] and all(catalogue[i]["attributes"]["color"] == "red" for i in red["items"])
    both = client.post(f"{P}/shop/recommend", json={"user": "u2", "category": "bags", "where": {"color": "blue"},
                                                      "n": 20}).json()
    assert both["items"] and all(catalogue[i]["category"] == "bags" and catalogue[i]["attributes"]["color"] == "blue"
                                 for i in both["items"])
    assert rec(user="u0", category="no-such-thing")["items"] == []
    assert client.get(f"{P}/shop/recommend", params={"user": "u0", "where": "color"}).status_code == 422
    # a stranger: the popular list, filtered all the same
    stranger = rec(user="nobody", category="socks", n=3)
    assert stranger["source"] == "popular" and all(i.startswith("socks-") for i in stranger["items"])
    # a newcomer with two interactions gets items like theirs
    newcomer = client.post(f"{P}/shop/recommend", json={"user": "new", "history": ["bags-1", "bags-2"], "n": 4}).json()
    assert newcomer["source"] == "model" and all(i.startswith("bags-") for i in newcomer["items"])
    # items nobody has touched: similar ones by the catalogue, and recommended to the right people
    similar = client.get(f"{P}/shop/similar", params={"item": "hats-9", "n": 3}).json()
    assert similar["source"] != "popular" and all(i.startswith("hats-") for i in similar["items"])
    untouched = ",".join(i for i in catalogue if int(i.split("-")[1]) >= 8)
    fresh = rec(user="u3", items=untouched, n=2)  # u3 chose socks; two socks are untouched
    assert len(fresh["items"]) == 2 and all(i.startswith("socks-") for i in fresh["items"])
    # an item described after the model trained: its category's popular items until a retrain
    assert client.post(f"{P}/shop/catalogue", json={"item": "shoes-new", "category": "shoes"}).status_code == 201
    late = client.get(f"{P}/shop/similar", params={"item": "shoes-new", "n": 3}).json()
    assert late["source"] == "category" and all(i.startswith("shoes-") for i in late["items"])


def test_the_filter_is_in_the_openapi_schema(client):
    spec = client.get("/openapi.json").json()
    get = {p["name"] for p in spec["paths"]["/api/v1/projects/{name}/recommend"]["get"]["parameters"]}
    assert {"category", "where"} <= get
    body = spec["components"]["schemas"]["RecommendBody"]["properties"]
    assert {"category", "where"} <= set(body)
    assert "/api/v1/projects/{name}/catalogue/import" in spec["paths"]


def test_cli_imports_a_catalogue_checked_before_sending(loop_server, tmp_path):
    import httpx
    from typer.testing import CliRunner

    from dyntrain.cli import app

    api = httpx.Client(base_url=loop_server.url + "/api/v1", timeout=60)
    assert api.post("/projects", json={"name": "shop", "task": "recommendation",
                                       "settings": {"auto_train": False}}).status_code == 201
    runner = CliRunner(env={"COLUMNS": "200"})
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,kind\ns1,shoes\n,hats\n")
    r = runner.invoke(app, ["import", str(bad), "-p", "shop", "--catalogue", "--item", "sku", "--url", loop_server.url])
    assert r.exit_code == 1 and "row 3" in r.output and api.get("/projects/shop/dataset-versions").json() == []
    good = tmp_path / "items.csv"
    good.write_text("sku,kind,title,colour\ns1,shoes,Red shoe,red\ns2,hats,Warm hat,grey\n")
    r = runner.invoke(app, ["import", str(good), "-p", "shop", "--catalogue", "--item", "sku", "--category", "kind",
                            "--text-column", "title", "--url", loop_server.url])
    assert r.exit_code == 0, r.output
    assert "2 of 2 items changed" in r.output and "dataset version 1" in r.output
    entry = api.get("/projects/shop/catalogue", params={"items": "s2"}).json()["items"][0]
    assert entry == {"item": "s2", "category": "hats", "attributes": {"colour": "grey"}, "text": "Warm hat",
                     "image": False}
