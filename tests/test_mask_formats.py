"""Segmentation data sets on disk (codecs.mask_formats): COCO polygons painted into masks, the
class tables read, and a data set with something missing refused saying what."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import masks as mk
from dyntrain.codecs.mask_formats import read_class_table, read_masks
from dyntrain.kernel.errors import Invalid


def _photo(w=40, h=30) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _mask_of(label: dict) -> tuple[list[str], np.ndarray]:
    return label["classes"], mk.decode_png(base64.b64decode(label["mask"]), label["classes"], label.get("colors"))


def test_coco_polygons_and_rle_become_masks(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(_photo())
    rle = np.zeros((30, 40), np.uint8, order="F")
    rle[20:25, 30:35] = 1  # a 5x5 square as uncompressed RLE (column-major runs)
    counts, run, value = [], 0, 0
    for v in rle.flatten(order="F"):
        if v != value:
            counts.append(run)
            run, value = 0, v
        run += 1
    counts.append(run)
    doc = {"images": [{"id": 7, "file_name": "a.png", "width": 40, "height": 30}],
           "categories": [{"id": 3, "name": "cup"}, {"id": 9, "name": "plate"}],
           "annotations": [
               {"id": 1, "image_id": 7, "category_id": 9, "segmentation": [[0, 0, 20, 0, 20, 10, 0, 10]]},
               {"id": 2, "image_id": 7, "category_id": 3, "segmentation": {"size": [30, 40], "counts": counts}}]}
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    [(label, name, data)] = list(read_masks(tmp_path))
    assert name == "a.png" and data == (tmp_path / "images" / "a.png").read_bytes()
    classes, ids = _mask_of(label)
    assert classes == ["background", "cup", "plate"]
    assert (ids[2:8, 2:18] == 2).all() and ids[25, 35] == 0  # inside the plate polygon; outside everything
    assert (ids[20:25, 30:35] == 1).all() and int((ids == 1).sum()) == 25  # the cup's RLE square exactly


def test_class_tables():
    assert read_class_table("classes.json", b'["background", "cup"]') == (["background", "cup"], None)
    assert read_class_table("classes.json", b'{"background": [0, 0, 0], "cup": [9, 9, 9]}') == \
        (["background", "cup"], {"background": [0, 0, 0], "cup": [9, 9, 9]})
    assert read_class_table("classes.txt", b"background\ncup\n") == (["background", "cup"], None)
    with pytest.raises(Invalid, match="line 2: the colour must be r,g,b"):
        read_class_table("labelmap.txt", b"background:0,0,0::\ncup:red::\n")


@pytest.mark.parametrize("missing, words", [
    ("table", "need a class table"),
    ("mask", "1 photos have no mask"),
    ("everything", "no segmentation data found"),
])
def test_an_incomplete_data_set_is_refused_saying_what_is_missing(tmp_path, missing, words):
    if missing != "everything":
        (tmp_path / "images").mkdir()
        (tmp_path / "masks").mkdir()
        (tmp_path / "images" / "a.png").write_bytes(_photo())
        (tmp_path / "images" / "b.png").write_bytes(_photo())
        (tmp_path / "masks" / "a.png").write_bytes(mk.encode_png(np.zeros((30, 40), np.uint8), ["background"]))
        if missing == "mask":
            (tmp_path / "classes.json").write_text('["background"]')
    else:
        (tmp_path / "photo.png").write_bytes(_photo())
    with pytest.raises(Invalid, match=words):
        list(read_masks(tmp_path))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_zip_of_masks_over_http_is_one_version_and_a_bad_mask_refuses_it(client, tmp_path):
    import zipfile

    names = ["background", "cup"]
    ids = np.zeros((30, 40), np.uint8)
    ids[5:15, 5:20] = 1

    def archive(mask: bytes) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for stem in ("a", "b"):
                z.writestr(f"kitchen/images/{stem}.png", _photo())
                z.writestr(f"kitchen/masks/{stem}.png", mk.encode_png(ids, names) if stem == "a" else mask)
            z.writestr("kitchen/classes.json", json.dumps(names))
        return buf.getvalue()

    api = "/api/v1/projects/kitchen"
    client.post("/api/v1/projects", json={"name": "kitchen", "task": "semantic-segmentation"})
    r = client.post(f"{api}/samples/archive", files={"file": ("kitchen.zip", archive(b"not a png"))})
    assert r.status_code == 422 and "masks/b.png: not a PNG" in r.text, r.text
    assert client.get(f"{api}/dataset-versions").json() == []
    r = client.post(f"{api}/samples/archive", files={"file": ("kitchen.zip", archive(mk.encode_png(ids, names)))})
    assert r.status_code == 201, r.text
    assert r.json()["version"]["number"] == 1 and [s["label"] for s in r.json()["samples"]] == ["cup", "cup"]
