"""What the model answered, kept with a recorded prediction: a segmentation's mask, a learned
filter's output image (Target.output_files / Answer.files).

A served model answers over HTTP; the record keeps the answer's PNG as a blob while it keeps the
input, the answer links it (``urls``), ``…/predictions/{id}/files/{name}`` serves exactly the bytes
answered, the prediction page shows it, and housekeeping, purges and backups treat it as part of
the kept input: forgotten with it, never before. Models are trained here in-process (a few seconds)
and registered, as the CLI tests do.
"""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import masks as mk
from dyntrain.ops.scenes import make_scenes

SIZE = (120, 90)


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _serve(core, project: str, path, card: dict) -> None:
    from dyntrain.registry.models import register_model, set_alias
    from dyntrain.storage.rows import ProjectRow

    with core.db.write() as s:
        pid = s.query(ProjectRow).filter_by(name=project).one().id
    version = register_model(core, pid, path, card, run_id=None)
    with core.db.write() as s:
        set_alias(s, s.get(ProjectRow, pid), version.version, "test")


@pytest.fixture
def segmenter(client, core, tmp_path):
    """A segmentation project serving a small decoder trained on five scenes; the scenes."""
    from dyntrain.learners.features import FeatureExtractor
    from dyntrain.learners.segmenter import Segmenter
    from dyntrain.tasks.masks import MaskPhotoModality

    scenes = make_scenes(6, classes=2, size=SIZE, seed=4)
    names = ["background", *scenes[0].class_names]
    assert client.post("/api/v1/projects", json={"name": "k", "task": "semantic-segmentation"}).status_code == 201
    keys = [str(i) for i in range(5)]
    photos = MaskPhotoModality().features(["image.segment_photo"], keys,
                                          dict(zip(keys, (_png(s.image) for s in scenes))).get,
                                          FeatureExtractor(core.settings.cache_dir))
    learner = Segmenter(epochs=4).fit(photos["image.segment_photo"], [s.mask for s in scenes[:5]], n_classes=3,
                                      class_names=names)
    _serve(core, "k", learner.export_onnx(tmp_path / "model.onnx", backbone_dir=core.settings.cache_dir),
           {"labels": names, "task": "semantic-segmentation"})
    return scenes


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_recorded_mask_is_kept_served_shown_and_forgotten_with_its_photo(client, core, segmenter):
    from dyntrain.ops.housekeeping import gc
    from dyntrain.storage.rows import PredictionRow, utcnow

    api = "/api/v1/projects/k"
    photo = _png(segmenter[5].image)
    r = client.post(f"{api}/predict", files=[("files", ("new.png", photo))])
    assert r.status_code == 200, r.text
    said = r.json()["predictions"][0]
    pid = said["prediction_id"]
    answered = base64.b64decode(said["mask"])
    # the answer links the kept mask; the link serves exactly the PNG answered (the class ids and palette)
    assert said["urls"] == {"mask": f"{api}/predictions/{pid}/files/mask"}
    got = client.get(said["urls"]["mask"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert got.content == answered
    assert mk.decode_png(got.content, said["classes"]).shape == (SIZE[1], SIZE[0])
    # the record names it by hash; its JSON stays small (classes and areas, no PNG inside)
    record = client.get(f"{api}/predictions").json()["items"][0]
    assert set(record["output"]) == {"classes", "areas", "files"}
    digest = record["output"]["files"]["mask"]
    assert core.blobs.exists(digest) and core.blobs.get(digest) == answered
    assert client.get(f"{api}/predictions/{pid}/files/image").status_code == 404  # no such file of a mask
    # the photo itself, byte for byte (the editor paints a correction over it at its own size)
    sent = client.get(f"{api}/predictions/{pid}/input")
    assert sent.status_code == 200 and sent.content == photo and sent.headers["content-type"] == "image/png"

    # the prediction's page shows the mask over the photo, with each class's area
    page = client.get(f"/projects/k/predictions/{pid}")
    assert page.status_code == 200
    assert f'data-mask-url="{said["urls"]["mask"]}"' in page.text and 'id="prediction-opacity"' in page.text
    assert "/static/masks.js" in page.text
    top = max((c for c in said["areas"] if c != "background"), key=said["areas"].get)
    assert f'data-mk-class="{top}"' in page.text

    # a later gc keeps it while the photo is kept ...
    core.settings.gc_grace_s = 0
    gc(core, now=utcnow() + timedelta(days=1))
    assert core.blobs.exists(digest) and client.get(said["urls"]["mask"]).status_code == 200
    # ... and forgets it with the photo when the photo's retention ends
    report = gc(core, now=utcnow() + timedelta(days=400))
    assert not core.blobs.exists(digest)
    assert report.stored_inputs.files == 2  # the photo and its mask
    assert client.get(said["urls"]["mask"]).status_code == 404
    assert client.get(f"{api}/predictions/{pid}/input").status_code == 404
    assert "data-mask-url" not in client.get(f"/projects/k/predictions/{pid}").text
    with core.db.read() as s:
        assert s.get(PredictionRow, pid).input_stored is False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_purged_photo_takes_its_recorded_mask_and_a_backup_keeps_a_kept_one(client, core, segmenter, tmp_path):
    from dyntrain.ops.backup import _inventory

    api = "/api/v1/projects/k"
    kept, purged = (client.post(f"{api}/predict", files=[("files", ("p.png", _png(s.image)))]).json()["predictions"][0]
                    for s in segmenter[4:6])
    masks = {}
    for p in (kept, purged):
        with core.db.read() as s:
            from dyntrain.storage.rows import PredictionRow

            row = s.get(PredictionRow, p["prediction_id"])
            masks[p["prediction_id"]] = (row.input_hash, row.output["files"]["mask"])
    # the backup's inventory lists the kept masks with the photos
    from pathlib import Path

    inventory = _inventory(Path(core.settings.database_url.removeprefix("sqlite:///")))
    assert {m for _, m in masks.values()} <= set(inventory["hashes"])
    photo, mask = masks[purged["prediction_id"]]
    r = client.post(f"{api}/purge", json={"content_hash": photo})
    assert r.status_code == 200, r.text
    assert r.json()["answer_files_deleted"] == 1
    assert not core.blobs.exists(mask)
    assert core.blobs.exists(masks[kept["prediction_id"]][1])
    assert client.get(f"{api}/predictions/{purged['prediction_id']}/files/mask").status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_nothing_is_kept_when_the_project_keeps_no_inputs(client, core, segmenter):
    api = "/api/v1/projects/k"
    assert client.patch(api, json={"settings": {"store_prediction_inputs": False}}).status_code == 200
    before = sum(1 for _ in core.settings.data_dir.joinpath("blobs").rglob("*") if _.is_file())
    said = client.post(f"{api}/predict", files=[("files", ("p.png", _png(segmenter[5].image)))]).json()["predictions"][0]
    assert "mask" in said and "urls" not in said
    assert "files" not in client.get(f"{api}/predictions").json()["items"][0]["output"]
    assert sum(1 for _ in core.settings.data_dir.joinpath("blobs").rglob("*") if _.is_file()) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_filters_output_image_is_kept_and_shown_beside_the_photo(client, core, tmp_path):
    from dyntrain.codecs import pairs
    from dyntrain.learners.filter import FilterCNN
    from dyntrain.ops.edge_pairs import sample_crops, sobel_map

    photos = sample_crops(5, seed=7)
    assert client.post("/api/v1/projects", json={"name": "f", "task": "image-to-image"}).status_code == 201
    learner = FilterCNN(steps=50).fit(photos, [sobel_map(p) for p in photos])
    _serve(core, "f", learner.export_onnx(tmp_path / "f.onnx"), {"labels": [], "task": "image-to-image"})
    said = client.post("/api/v1/projects/f/predict", files=[("files", ("p.png", _png(photos[1])))]).json()
    said = said["predictions"][0]
    url = said["urls"]["image"]
    got = client.get(url)
    assert got.status_code == 200 and got.content == base64.b64decode(said["image"])
    assert np.array_equal(pairs.read_output(got.content), learner.predict([photos[1]])[0])
    page = client.get(f"/projects/f/predictions/{said['prediction_id']}").text
    assert f'src="{url}"' in page and 'id="prediction-output-image"' in page
