"""Box files through the CLI: `dyntrain import` reads COCO, Pascal VOC and YOLO into an
object-detection project as one dataset version, `dyntrain export --format` writes them back, and
a bad box is refused naming its file and box, with nothing uploaded."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from dyntrain.codecs.box_formats import AnnotatedImage, read_dataset, write_dataset
from dyntrain.cli import app
from dyntrain.ops.scenes import make_scenes

runner = CliRunner(env={"COLUMNS": "200"})


def _png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def scenes_zip(tmp_path):
    scenes = make_scenes(5, classes=2, size=(200, 160), seed=2)
    images = [AnnotatedImage(f"s{i}.png", 200, 160, sc.boxes) for i, sc in enumerate(scenes)]
    blobs = {f"s{i}.png": _png(sc.image) for i, sc in enumerate(scenes)}
    classes = sorted({b["label"] for sc in scenes for b in sc.boxes})
    return write_dataset(tmp_path / "shelf.zip", images, classes, "coco", blobs), scenes


def _boxes(api_samples):
    return sorted((s["meta"]["filename"], json.dumps(s["annotation"], sort_keys=True)) for s in api_samples)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_box_files_import_and_export_in_every_format(live_server, scenes_zip, tmp_path, client):
    path, scenes = scenes_zip
    url = ["--url", live_server.url]
    r = runner.invoke(app, ["import", str(path), "-p", "shelf", "--task", "object-detection", *url])
    assert r.exit_code == 0, r.output
    assert "dataset version 1" in r.output
    first = client.get("/api/v1/projects/shelf/samples").json()["items"]
    assert len(first) == 5 and sum(len(s["annotation"]) for s in first) == sum(len(sc.boxes) for sc in scenes)

    for fmt in ("voc", "yolo", "coco"):
        out = tmp_path / f"out-{fmt}"
        r = runner.invoke(app, ["export", "shelf", "--out", str(out), "--format", fmt, *url])
        assert r.exit_code == 0, r.output
        assert read_dataset(out).format == fmt
        r = runner.invoke(app, ["import", str(out), "-p", f"again-{fmt}", "--task", "object-detection", *url])
        assert r.exit_code == 0, r.output
        again = client.get(f"/api/v1/projects/again-{fmt}/samples").json()["items"]
        # the same boxes come back (YOLO's normalised numbers round within the target's 2 decimals)
        assert [(n, [(b["label"], round(b["x"]), round(b["y"]), round(b["w"]), round(b["h"])) for b in json.loads(a)])
                for n, a in _boxes(again)] == [
            (n, [(b["label"], round(b["x"]), round(b["y"]), round(b["w"]), round(b["h"])) for b in json.loads(a)])
            for n, a in _boxes(first)]

    r = runner.invoke(app, ["export", "shelf", "--out", str(tmp_path / "x"), "--format", "csv", *url])
    assert r.exit_code == 1 and "coco, voc, yolo" in r.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bad_box_is_named_and_nothing_lands(live_server, tmp_path, client):
    scenes = make_scenes(2, classes=2, size=(200, 160), seed=4)
    images = [AnnotatedImage("a.png", 200, 160, scenes[0].boxes), AnnotatedImage("b.png", 200, 160, scenes[1].boxes)]
    classes = sorted({b["label"] for im in images for b in im.boxes})
    coco = tmp_path / "bad"
    coco.mkdir()
    files = {"a.png": _png(scenes[0].image), "b.png": _png(scenes[1].image)}
    for name, data in files.items():
        (coco / name).write_bytes(data)
    from dyntrain.codecs.box_formats import write_coco

    data = json.loads(write_coco(images, classes))
    b_id = next(im["id"] for im in data["images"] if im["file_name"] == "b.png")
    next(a for a in data["annotations"] if a["image_id"] == b_id)["bbox"][2] = 900  # far outside the 200 px image
    (coco / "annotations.json").write_text(json.dumps(data))
    r = runner.invoke(app, ["import", str(coco), "-p", "bad", "--task", "object-detection", "--url", live_server.url])
    assert r.exit_code == 1 and "b.png" in r.output and "box" in r.output, r.output
    assert client.get("/api/v1/projects/bad").status_code == 404  # not even an empty project is left
