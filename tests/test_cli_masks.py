"""Masks through the CLI: `dyntrain import` reads images/ + masks/ PNG folders (indexed with a
classes.json, RGB with a labelmap.txt) and COCO polygons / RLE into a semantic-segmentation project
as one dataset version, `dyntrain export --format png|coco` writes them back, and a bad mask is
refused naming its file, with nothing uploaded."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dyntrain.cli import app
from dyntrain.codecs import masks as mk
from dyntrain.ops.scenes import make_scenes

runner = CliRunner(env={"COLUMNS": "200"})
SIZE = (120, 90)


def _png(array, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def scenes():
    return make_scenes(5, classes=2, size=SIZE, seed=4)


def _indexed_folder(root, scenes, names):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, sc in enumerate(scenes):
        (root / "images" / f"s{i}.jpg").write_bytes(_jpeg(sc.image))
        (root / "masks" / f"s{i}.png").write_bytes(mk.encode_png(sc.mask, names))
    (root / "classes.json").write_text(json.dumps(names))
    return root


def _jpeg(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _stored(client, project):
    """{file name: (classes, mask ids)} of a project's samples, read back through the API."""
    out = {}
    for s in client.get(f"/api/v1/projects/{project}/samples").json()["items"]:
        ann = s["annotation"]
        png = client.get(f"/api/v1/projects/{project}/samples/{s['id']}/blobs/{ann['mask']}").content
        out[s["meta"]["filename"]] = (ann["classes"], mk.decode_png(png, ann["classes"]))
    return out


def _names_of(classes, ids):
    """A mask as class names per pixel (ids differ between tables; the painting must not)."""
    table = np.array([*classes, *["?"] * (255 - len(classes)), "unlabelled"], object)
    return table[ids]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_mask_folders_and_coco_import_and_export(live_server, scenes, tmp_path, client):
    url = ["--url", live_server.url]
    names = ["background", *scenes[0].class_names]
    folder = _indexed_folder(tmp_path / "kitchen", scenes, names)
    r = runner.invoke(app, ["import", str(folder), "-p", "kitchen", "--task", "semantic-segmentation", *url])
    assert r.exit_code == 0, r.output
    assert "imported 5 examples" in r.output and "dataset version 1" in r.output
    first = _stored(client, "kitchen")
    assert sorted(first) == [f"s{i}.jpg" for i in range(5)]
    for i, sc in enumerate(scenes):
        classes, ids = first[f"s{i}.jpg"]
        assert (_names_of(classes, ids) == _names_of(names, sc.mask)).all()

    # back out and in again, as PNG folders and as COCO RLE: the same paintings
    for fmt in ("png", "coco"):
        out = tmp_path / f"out-{fmt}"
        r = runner.invoke(app, ["export", "kitchen", "--out", str(out), "--format", fmt, *url])
        assert r.exit_code == 0, r.output
        assert (out / ("masks" if fmt == "png" else "annotations.json")).exists()
        r = runner.invoke(app, ["import", str(out), "-p", f"again-{fmt}", "--task", "semantic-segmentation", *url])
        assert r.exit_code == 0, r.output
        again = _stored(client, f"again-{fmt}")
        assert sorted(again) == sorted(first)
        for name, (classes, ids) in first.items():
            assert (_names_of(*again[name]) == _names_of(classes, ids)).all(), (fmt, name)

    # a zip of the folder (one top folder around it) reads the same
    import shutil

    archive = shutil.make_archive(str(tmp_path / "kitchen"), "zip", tmp_path, "kitchen")
    r = runner.invoke(app, ["import", archive, "-p", "zipped", "--task", "semantic-segmentation", *url])
    assert r.exit_code == 0, r.output
    assert {n: _names_of(*v).tolist() for n, v in _stored(client, "zipped").items()} == \
        {n: _names_of(*v).tolist() for n, v in first.items()}

    # RGB masks with a labelmap.txt (CVAT / Pascal VOC's class table) read the same
    rgb = tmp_path / "rgb"
    (rgb / "images").mkdir(parents=True)
    (rgb / "SegmentationClass").mkdir()
    colors = mk.default_colors(names)
    lut = np.zeros((256, 3), np.uint8)
    for k, n in enumerate(names):
        lut[k] = colors[n]
    for i, sc in enumerate(scenes):
        (rgb / "images" / f"s{i}.jpg").write_bytes(_jpeg(sc.image))
        (rgb / "SegmentationClass" / f"s{i}.png").write_bytes(_png(lut[sc.mask]))
    (rgb / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n"
                                      + "".join(f"{n}:{','.join(map(str, colors[n]))}::\n" for n in names))
    r = runner.invoke(app, ["import", str(rgb), "-p", "rgb", "--task", "semantic-segmentation", *url])
    assert r.exit_code == 0, r.output
    assert {n: _names_of(*v).tolist() for n, v in _stored(client, "rgb").items()} == \
        {n: _names_of(*v).tolist() for n, v in first.items()}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("damage, words", [
    ("jpeg", "s3.png: not a PNG file"),
    ("size", "s3.png: the mask is 60x45 pixels but its image is 120x90"),
    ("colour", "s3.png: unknown colour [1, 2, 3]"),
    ("class", "s3.png: class id 7"),
])
def test_a_bad_mask_is_named_and_nothing_lands(live_server, scenes, tmp_path, client, damage, words):
    names = ["background", *scenes[0].class_names]
    folder = _indexed_folder(tmp_path / "bad", scenes, names)
    bad = folder / "masks" / "s3.png"
    if damage == "jpeg":
        bad.write_bytes(_jpeg(np.zeros((SIZE[1], SIZE[0], 3), np.uint8)))
    elif damage == "size":
        bad.write_bytes(mk.encode_png(scenes[3].mask[::2, ::2], names))
    elif damage == "colour":
        rgb = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
        rgb[5, 5] = [1, 2, 3]
        bad.write_bytes(_png(rgb))
    else:
        ids = scenes[3].mask.copy()
        ids[0, 0] = 7
        bad.write_bytes(_png(ids, "L"))
    r = runner.invoke(app, ["import", str(folder), "-p", "bad", "--task", "semantic-segmentation",
                            "--url", live_server.url])
    assert r.exit_code == 1 and words in " ".join(r.output.split()), r.output
    assert client.get("/api/v1/projects/bad").status_code == 404  # the project made for it is gone again


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_predict_prints_class_areas_and_writes_the_mask(live_server, core, scenes, tmp_path, monkeypatch):
    """A served segmenter (trained here in-process on the scenes) answers the CLI: areas printed, the
    mask written as an indexed PNG of the photo's size."""
    from dyntrain.learners.features import FeatureExtractor
    from dyntrain.learners.segmenter import Segmenter
    from dyntrain.registry.models import register_model, set_alias
    from dyntrain.storage.rows import ProjectRow
    from dyntrain.tasks.masks import MaskPhotoModality

    names = ["background", *scenes[0].class_names]
    runner.invoke(app, ["import", str(_indexed_folder(tmp_path / "k", scenes, names)), "-p", "k", "--task",
                        "semantic-segmentation", "--url", live_server.url])
    photos = MaskPhotoModality().features(["image.segment_photo"], list("abcde"),
                                          dict(zip("abcde", (_png(s.image) for s in scenes))).get,
                                          FeatureExtractor(core.settings.cache_dir))
    learner = Segmenter(epochs=4).fit(photos["image.segment_photo"], [s.mask for s in scenes], n_classes=3,
                                      class_names=names)
    path = learner.export_onnx(tmp_path / "model.onnx", backbone_dir=core.settings.cache_dir)
    with core.db.write() as s:
        pid = s.query(ProjectRow).filter_by(name="k").one().id
    version = register_model(core, pid, path, {"labels": names, "task": "semantic-segmentation"}, run_id=None)
    with core.db.write() as s:
        set_alias(s, s.get(ProjectRow, pid), version.version, "test")
    (tmp_path / "photo.jpg").write_bytes(_jpeg(scenes[1].image))
    r = runner.invoke(app, ["predict", "k", str(tmp_path / "photo.jpg"), "--out", str(tmp_path / "masks"),
                            "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert "background" in r.output and "%" in r.output and "v1" in r.output
    written = mk.decode_png((tmp_path / "masks" / "photo.png").read_bytes(), names)
    assert written.shape == (SIZE[1], SIZE[0])
