"""Object-detection data over HTTP, on SQLite and PostgreSQL: a zip of photos with COCO, Pascal VOC
or YOLO box files imported as one version (a bad box refuses the whole archive, naming file and
box), and deleting a class takes its boxes off every image while the images stay."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from dyntrain.codecs.box_formats import AnnotatedImage, write_dataset
from tests.conftest import png_bytes

W, H = 64, 48
BOXES = {"a.png": [{"label": "cup", "x": 2, "y": 3, "w": 20, "h": 10}, {"label": "pen", "x": 30, "y": 5, "w": 8, "h": 30}],
         "b.png": [{"label": "cup", "x": 10, "y": 10, "w": 12, "h": 12}],
         "c.png": [{"label": "pen", "x": 1, "y": 1, "w": 5, "h": 40}],
         "d.png": []}


def _project(client, name="shelf", task="object-detection"):
    r = client.post("/api/v1/projects", json={"name": name, "task": task})
    assert r.status_code == 201, r.text


def _zip(tmp_path, fmt: str) -> bytes:
    images = [AnnotatedImage(name, W, H, boxes) for name, boxes in BOXES.items()]
    blobs = {name: png_bytes(i, (W, H)) for i, name in enumerate(BOXES)}
    return write_dataset(tmp_path / f"{fmt}.zip", images, ["cup", "pen"], fmt, blobs).read_bytes()


def _stored(client, name="shelf"):
    items = client.get(f"/api/v1/projects/{name}/samples").json()["items"]
    return {s["meta"]["filename"]: (s["label"], s["annotation"]) for s in items}


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_a_zip_of_box_files_is_one_version_in_the_format_it_holds(client, tmp_path, fmt):
    _project(client)
    r = client.post("/api/v1/projects/shelf/samples/archive", files={"file": (f"{fmt}.zip", _zip(tmp_path, fmt))})
    assert r.status_code == 201, r.text
    assert r.json()["version"]["number"] == 1 and len(r.json()["samples"]) == 4
    stored = _stored(client)
    for name, boxes in BOXES.items():
        key, annotation = stored[name]
        assert key == "/".join(sorted({b["label"] for b in boxes}))
        assert [(b["label"], b["x"], b["y"], b["w"], b["h"]) for b in annotation] == \
            sorted((b["label"], b["x"], b["y"], b["w"], b["h"]) for b in boxes), (name, annotation)
    assert {c["label"] for c in client.get("/api/v1/projects/shelf/classes").json()} == {"cup", "pen"}
    assert [v["number"] for v in client.get("/api/v1/projects/shelf/dataset-versions").json()] == [1]


def test_a_bad_box_refuses_the_whole_archive_naming_file_and_box(client, tmp_path):
    _project(client)
    good = _zip(tmp_path, "voc")
    client.post("/api/v1/projects/shelf/samples/archive", files={"file": ("good.zip", good)}).raise_for_status()
    buf = io.BytesIO()  # the same photos; b.xml's box now runs past the 64 px wide image
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("b.xml"):
                data = data.replace(b"<xmax>22</xmax>", b"<xmax>90</xmax>")
                assert b"<xmax>90</xmax>" in data, data
            out.writestr(info.filename.replace(".png", "-2.png").replace(".xml", "-2.xml"),
                         data.replace(b".png<", b"-2.png<"))
    before = _stored(client)
    r = client.post("/api/v1/projects/shelf/samples/archive", files={"file": ("bad.zip", buf.getvalue())})
    assert r.status_code == 422, r.text
    assert "bad.zip" in r.text and "b-2.xml" in r.text and "box 0" in r.text and "outside" in r.text, r.text
    assert _stored(client) == before  # nothing stored
    assert [v["number"] for v in client.get("/api/v1/projects/shelf/dataset-versions").json()] == [1]

    r = client.post("/api/v1/projects/shelf/samples/archive", files={"file": ("x.zip", b"not a zip")})
    assert r.status_code == 422 and "not a zip" in r.text, r.text
    r = client.post("/api/v1/projects/shelf/samples/archive", files={"file": ("g.zip", good)}, data={"format": "csv"})
    assert r.status_code == 422 and "coco, voc, yolo" in r.text, r.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_classification_project_reads_class_folders_from_the_zip(client):
    _project(client, "shop", "image-classification")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            zf.writestr(f"{'mug' if i % 2 else 'pen'}/{i}.png", png_bytes(i))
    r = client.post("/api/v1/projects/shop/samples/archive", files={"file": ("shop.zip", buf.getvalue())})
    assert r.status_code == 201, r.text
    assert sorted(s["label"] for s in r.json()["samples"]) == ["mug", "mug", "pen", "pen"]


def test_deleting_a_class_takes_its_boxes_off_every_image_in_one_version(client, tmp_path):
    _project(client)
    client.post("/api/v1/projects/shelf/samples/archive",
                files={"file": ("coco.zip", _zip(tmp_path, "coco"))}).raise_for_status()
    r = client.delete("/api/v1/projects/shelf/classes/cup")
    assert r.status_code == 200, r.text
    assert r.json()["version"]["number"] == 2
    stored = _stored(client)
    assert set(stored) == set(BOXES)  # every image stays
    assert stored["a.png"] == ("pen", [{"label": "pen", "x": 30.0, "y": 5.0, "w": 8.0, "h": 30.0}])
    assert stored["b.png"] == ("", [])  # nothing left to find on it: it teaches the background
    assert stored["c.png"][0] == "pen" and stored["d.png"] == ("", [])
    assert [c["label"] for c in client.get("/api/v1/projects/shelf/classes").json()] == ["pen"]
    items = client.get("/api/v1/projects/shelf/dataset-versions/2").json()["items"]
    assert sorted(json.dumps(i.get("annotation")) for i in items) == sorted(
        json.dumps([{k: float(b[k]) if k != "label" else b[k] for k in ("label", "x", "y", "w", "h")}
                    for b in boxes if b["label"] != "cup"]) for boxes in BOXES.values())
    # the old version still holds the cups: restoring it brings them back as version 3
    assert client.post("/api/v1/projects/shelf/dataset-versions/1/restore").json()["version"]["number"] == 3
    assert _stored(client)["b.png"][0] == "cup"
