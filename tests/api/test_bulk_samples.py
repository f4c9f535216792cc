"""Bulk relabel and delete (issue 19): many samples in one request make ONE dataset version, all
or nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.conftest import png_bytes


def _project(client, n=6):
    assert client.post("/api/v1/projects", json={"name": "shop", "settings": {"auto_train": False}}).status_code == 201
    files = [("files", (f"p{i}.png", png_bytes(i))) for i in range(n)]
    r = client.post("/api/v1/projects/shop/samples", files=files,
                    data={"labels": ["mug" if i % 2 else "cup" for i in range(n)]})
    assert r.status_code == 201, r.text
    return {s["meta"]["filename"]: s["id"] for s in client.get("/api/v1/projects/shop/samples").json()["items"]}


def _versions(client) -> list[int]:
    return [v["number"] for v in client.get("/api/v1/projects/shop/dataset-versions").json()]


def test_many_samples_moved_or_deleted_as_one_version(client):
    ids = _project(client)
    cups = [ids["p0.png"], ids["p2.png"], ids["p4.png"]]
    r = client.post("/api/v1/projects/shop/samples/bulk", json={"sample_ids": cups + [ids["p1.png"]], "label": "bowl"})
    assert r.status_code == 200, r.text
    assert r.json()["version"]["number"] == 2 and r.json()["version"]["counts"] == {"bowl": 4, "mug": 2}
    assert _versions(client) == [2, 1]
    assert {c["label"]: c["count"] for c in client.get("/api/v1/projects/shop/classes").json()} == \
        {"bowl": 4, "cup": 0, "mug": 2}  # the new class exists; the emptied one stays until deleted
    diff = client.get("/api/v1/projects/shop/dataset-versions/2/diff", params={"against": 1}).json()
    assert sorted(d["sample_id"] for d in diff["relabelled"]) == sorted(cups + [ids["p1.png"]])
    # moving them where they are already makes no version
    r = client.post("/api/v1/projects/shop/samples/bulk", json={"sample_ids": cups, "label": "bowl"})
    assert r.json()["version"] is None and _versions(client) == [2, 1]
    # deleting many: one version, the rest stays
    r = client.post("/api/v1/projects/shop/samples/bulk", json={"sample_ids": cups, "delete": True})
    assert r.status_code == 200 and r.json()["version"]["number"] == 3 and r.json()["version"]["size"] == 3
    assert client.get("/api/v1/projects/shop/samples").json()["total"] == 3
    # the versions a sample was in, with its label in each (a deleted sample's too)
    history = client.get(f"/api/v1/projects/shop/samples/{cups[0]}/versions").json()
    assert [(v["number"], v["label"]) for v in history] == [(2, "bowl"), (1, "cup")]
    kept = client.get(f"/api/v1/projects/shop/samples/{ids['p3.png']}/versions").json()
    assert [(v["number"], v["label"]) for v in kept] == [(3, "mug"), (2, "mug"), (1, "mug")]


def test_a_bulk_change_is_all_or_nothing(client):
    ids = _project(client)
    gone = ids["p5.png"]
    assert client.delete(f"/api/v1/projects/shop/samples/{gone}").status_code == 200
    before = client.get("/api/v1/projects/shop/samples").json()
    r = client.post("/api/v1/projects/shop/samples/bulk", json={"sample_ids": [ids["p0.png"], gone], "label": "mug"})
    assert r.status_code == 404 and str(gone) in r.json()["error"]["message"]
    assert client.get("/api/v1/projects/shop/samples").json() == before and _versions(client) == [2, 1]
    for body in ({"sample_ids": [], "label": "mug"}, {"sample_ids": [ids["p0.png"]]},
                 {"sample_ids": [ids["p0.png"]], "label": "mug", "delete": True},
                 {"sample_ids": [ids["p0.png"]], "label": "bad/label"}):
        r = client.post("/api/v1/projects/shop/samples/bulk", json=body)
        assert r.status_code == 422, (body, r.text)
    assert _versions(client) == [2, 1]
    # a sample of another project is not this project's
    client.post("/api/v1/projects", json={"name": "other", "settings": {"auto_train": False}})
    other = client.post("/api/v1/projects/other/samples", files=[("files", ("o.png", png_bytes(99)))],
                        data={"label": "x"}).json()["samples"][0]["id"]
    r = client.post("/api/v1/projects/shop/samples/bulk", json={"sample_ids": [other], "delete": True})
    assert r.status_code == 404 and client.get(f"/api/v1/projects/other/samples/{other}").status_code == 200
