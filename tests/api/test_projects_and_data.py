"""The REST API for projects, samples, classes, batches and dataset versions, on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.conftest import png_bytes


def _create(client, name="products", **kw):
    r = client.post("/api/v1/projects", json={"name": name, **kw})
    assert r.status_code == 201, r.text
    return r.json()


def _upload(client, project, files, label=None, labels=None, batch=None):
    data = {}
    if label is not None:
        data["label"] = label
    if labels is not None:
        data["labels"] = labels
    return client.post(f"/api/v1/projects/{project}/samples", params={"batch": batch} if batch else None,
                       files=[("files", (n, b)) for n, b in files], data=data)


def test_project_crud_and_errors(client):
    p = _create(client, description="three products")
    assert p["task"] == "image-classification" and p["settings"]["auto_train"] is True
    r = client.post("/api/v1/projects", json={"name": "products"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert client.post("/api/v1/projects", json={"name": "bad name/../x"}).status_code == 422
    assert client.post("/api/v1/projects", json={"name": "x", "task": "juggling"}).status_code == 422
    r = client.get("/api/v1/projects/nope")
    assert r.status_code == 404 and "does not exist" in r.json()["error"]["message"]
    assert [x["name"] for x in client.get("/api/v1/projects").json()] == ["products"]
    r = client.patch("/api/v1/projects/products", json={"settings": {"train_delay_s": 2}})
    assert r.status_code == 200 and r.json()["settings"]["train_delay_s"] == 2
    # a PATCH merges: the earlier change survives the next one
    r = client.patch("/api/v1/projects/products", json={"settings": {"gate_tolerance": 0.02}})
    assert r.json()["settings"]["train_delay_s"] == 2 and r.json()["settings"]["gate_tolerance"] == 0.02
    r = client.patch("/api/v1/projects/products", json={"settings": {"no_such_key": 1}})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "no_such_key"
    assert client.patch("/api/v1/projects/products", json={"settings": {"train_delay_s": -1}}).status_code == 422
    schema = client.get("/api/v1/settings-schema").json()
    assert {"auto_train", "train_delay_s", "gate_metric", "webhook_url"} <= {s["name"] for s in schema}
    assert all(s["description"] for s in schema)
    assert client.delete("/api/v1/projects/products").status_code == 204
    assert client.get("/api/v1/projects/products").status_code == 404


def test_every_change_is_one_new_immutable_version(client):
    _create(client)
    r = _upload(client, "products", [("a.png", png_bytes(1)), ("b.png", png_bytes(2))], label="mug")
    assert r.status_code == 201, r.text
    assert r.json()["version"]["number"] == 1 and r.json()["version"]["counts"] == {"mug": 2}
    r = _upload(client, "products", [("c.png", png_bytes(3)), ("d.png", png_bytes(4))], labels=["cup", "mug"])
    assert r.json()["version"]["number"] == 2 and r.json()["version"]["counts"] == {"cup": 1, "mug": 3}
    ids = {s["meta"]["filename"]: s["id"] for s in client.get("/api/v1/projects/products/samples").json()["items"]}
    v1 = client.get("/api/v1/projects/products/dataset-versions/1").json()
    # relabel → version 3, delete → version 4
    # a class project's label is text: a list or an object (which box and mask targets take) is a 422
    for wrong in ([{}], {"x": 1}):
        r = client.patch(f"/api/v1/projects/products/samples/{ids['a.png']}", json={"label": wrong})
        assert r.status_code == 422 and "label is text" in r.json()["error"]["message"], r.text
    assert client.patch(f"/api/v1/projects/products/samples/{ids['a.png']}", json={"label": 3}).status_code == 422
    r = client.patch(f"/api/v1/projects/products/samples/{ids['a.png']}", json={"label": "cup"})
    assert r.status_code == 200 and r.json()["version"]["number"] == 3
    r = client.delete(f"/api/v1/projects/products/samples/{ids['b.png']}")
    assert r.json()["version"]["number"] == 4 and r.json()["version"]["size"] == 3
    # old versions unchanged, the deleted sample's content still there
    assert client.get("/api/v1/projects/products/dataset-versions/1").json() == v1
    assert client.get(f"/api/v1/projects/products/samples/{ids['b.png']}").status_code == 404
    diff = client.get("/api/v1/projects/products/dataset-versions/4/diff", params={"against": 2}).json()
    assert [d["sample_id"] for d in diff["removed"]] == [ids["b.png"]]
    assert diff["relabelled"] == [{"sample_id": ids["a.png"], "content_hash": diff["relabelled"][0]["content_hash"],
                                   "from": "mug", "to": "cup"}]
    # restore version 1: a NEW version (5) with version 1's exact content
    r = client.post("/api/v1/projects/products/dataset-versions/1/restore")
    assert r.json()["version"]["number"] == 5 and r.json()["version"]["hash"] == v1["hash"]
    versions = client.get("/api/v1/projects/products/dataset-versions").json()
    assert [v["number"] for v in versions] == [5, 4, 3, 2, 1]
    assert versions[0]["parent"] == 4
    # an edit that changes nothing makes no version
    first = client.get("/api/v1/projects/products/samples").json()["items"][0]
    r = client.patch(f"/api/v1/projects/products/samples/{first['id']}", json={"label": first["label"]})
    assert r.json()["version"] is None
    assert client.get("/api/v1/projects/nope/dataset-versions/1").status_code == 404
    assert client.get("/api/v1/projects/products/dataset-versions/99").status_code == 404


def test_classes_rename_relabels_in_one_version(client):
    _create(client)
    _upload(client, "products", [(f"{i}.png", png_bytes(i)) for i in range(3)], label="hedset")
    assert client.post("/api/v1/projects/products/classes", json={"label": "earbuds", "description": "small"}).status_code == 201
    assert client.post("/api/v1/projects/products/classes", json={"label": "earbuds"}).status_code == 409
    classes = client.get("/api/v1/projects/products/classes").json()
    assert classes == [{"label": "earbuds", "description": "small", "count": 0,
                        "waiting": "'earbuds' needs 2 more examples before the model can learn it"},
                       {"label": "hedset", "description": "", "count": 3, "waiting": None}]
    r = client.patch("/api/v1/projects/products/classes/hedset", json={"label": "headset"})
    assert r.status_code == 200 and r.json()["count"] == 3
    versions = client.get("/api/v1/projects/products/dataset-versions").json()
    assert [v["number"] for v in versions] == [2, 1] and versions[0]["counts"] == {"headset": 3}
    assert client.patch("/api/v1/projects/products/classes/headset", json={"label": "earbuds"}).status_code == 409
    r = client.delete("/api/v1/projects/products/classes/headset")
    assert r.json()["version"]["size"] == 0
    assert client.delete("/api/v1/projects/products/classes/headset").status_code == 404


def test_batch_commits_to_exactly_one_version_and_discard_leaves_none(client):
    _create(client)
    batch = client.post("/api/v1/projects/products/batches").json()["id"]
    for i in range(3):
        r = _upload(client, "products", [(f"{i}.png", png_bytes(i))], label="mug" if i % 2 else "cup", batch=batch)
        assert r.status_code == 201 and r.json()["version"] is None
    assert client.get("/api/v1/projects/products/samples").json()["total"] == 0  # staged, not visible yet
    r = client.post(f"/api/v1/projects/products/batches/{batch}/commit")
    assert r.json()["version"]["number"] == 1 and r.json()["version"]["size"] == 3
    assert client.post(f"/api/v1/projects/products/batches/{batch}/commit").status_code == 409
    other = client.post("/api/v1/projects/products/batches").json()["id"]
    _upload(client, "products", [("x.png", png_bytes(9))], label="mug", batch=other)
    assert client.delete(f"/api/v1/projects/products/batches/{other}").status_code == 204
    assert len(client.get("/api/v1/projects/products/dataset-versions").json()) == 1
    assert client.get("/api/v1/projects/products/samples").json()["total"] == 3
    assert _upload(client, "products", [("y.png", png_bytes(8))], label="mug", batch="nope").status_code == 404


def test_samples_paging_filter_image_and_thumbnail(client):
    _create(client)
    files = [(f"{i}.png", png_bytes(i)) for i in range(5)]
    _upload(client, "products", files, labels=["a", "b", "a", "b", "a"])
    page = client.get("/api/v1/projects/products/samples", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and len(page["items"]) == 2
    assert client.get("/api/v1/projects/products/samples", params={"label": "b"}).json()["total"] == 2
    sid = page["items"][0]["id"]
    r = client.get(f"/api/v1/projects/products/samples/{sid}/image")
    assert r.status_code == 200 and r.content == files[1][1] and r.headers["content-type"] == "image/png"
    r = client.get(f"/api/v1/projects/products/samples/{sid}/thumbnail", params={"size": 32})
    assert r.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(r.content)).size) <= 32


def _image(mode: str, fmt: str, size=(30, 20), **save) -> bytes:
    buf = io.BytesIO()
    if mode == "I;16":
        img = Image.fromarray((np.arange(600).reshape(20, 30) * 100).astype(np.uint16))
    else:
        img = Image.new(mode, size, (10, 20, 30, 40)[: len(mode)] if mode not in ("L", "P") else 5)
    img.save(buf, fmt, **save)
    return buf.getvalue()


def test_awkward_but_valid_images_are_accepted(client):
    _create(client)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: stored 30x20, shown 20x30
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), "red").save(buf, "JPEG", exif=exif)
    files = [("cmyk.jpg", _image("CMYK", "JPEG")), ("grey16.png", _image("I;16", "PNG")),
             ("alpha.png", _image("RGBA", "PNG")), ("palette.gif", _image("P", "GIF")),
             ("grey.png", _image("L", "PNG")), ("rotated.jpg", buf.getvalue())]
    r = _upload(client, "products", files, label="misc")
    assert r.status_code == 201, r.text
    meta = {s["meta"]["filename"]: s["meta"] for s in r.json()["samples"]}
    assert (meta["rotated.jpg"]["width"], meta["rotated.jpg"]["height"]) == (20, 30)


def test_bad_files_reject_the_whole_request_and_name_each_file(client, core):
    _create(client)
    good = png_bytes(1)
    core.settings.max_image_pixels = 10_000
    bomb = _image("L", "PNG", size=(200, 200))  # 40,000 pixels > the limit set above
    files = [("good.png", good), ("empty.png", b""), ("text.png", b"hello, not an image"),
             ("truncated.png", good[: len(good) // 2]), ("bomb.png", bomb)]
    r = _upload(client, "products", files, label="mug")
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid" and "nothing was added" in err["message"]
    reasons = {d["file"]: d["reason"] for d in err["details"]}
    assert set(reasons) == {"empty.png", "text.png", "truncated.png", "bomb.png"}
    assert "0 bytes" in reasons["empty.png"] and "limit" in reasons["bomb.png"]
    assert client.get("/api/v1/projects/products/samples").json()["total"] == 0
    assert client.get("/api/v1/projects/products/dataset-versions").json() == []
    # label problems
    assert _upload(client, "products", [("a.png", good)]).status_code == 422
    assert _upload(client, "products", [("a.png", good), ("b.png", good)], labels=["x", "y", "z"]).status_code == 422
    r = _upload(client, "products", [("a.png", good)], label="a/b")
    assert r.status_code == 422 and "slashes" in r.json()["error"]["details"][0]["reason"]
    assert _upload(client, "nope", [("a.png", good)], label="x").status_code == 404
    r = client.post("/api/v1/projects/products/samples", data={"label": "x"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"


def test_identical_uploads_are_stored_once(client, core):
    _create(client)
    _upload(client, "products", [("a.png", png_bytes(7)), ("copy.png", png_bytes(7))], label="mug")
    blobs = [p for p in core.settings.blob_dir.rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_health_and_docs(client):
    health = client.get("/api/v1/health").json()
    assert health["status"] == "ok" and health["database"] is True and health["version"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/projects/{name}/samples" in paths and "/api/v1/projects/{name}/dataset-versions/{number}/diff" in paths
    r = client.get("/api/v1/no-such-route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
