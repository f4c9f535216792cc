"""The masks target (semantic segmentation): labels as clients send them, every bad input named,
the mask kept as a blob (not in the annotation), class renames, versions that change exactly when
the painting does, and the blob kept by housekeeping, backups and the API."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from dyntrain import tasks
from dyntrain.codecs import masks as mk
from dyntrain.kernel.errors import Invalid
from dyntrain.ops.scenes import make_scene

TARGET = tasks.get("semantic-segmentation").target
META = {"width": 6, "height": 4}
NAMES = ["background", "plate", "cup"]


def _mask() -> np.ndarray:
    m = np.zeros((4, 6), np.uint8)
    m[1:3, 1:3] = 2  # cup
    m[0, 4:] = 1  # plate
    m[3, 5] = mk.UNLABELLED
    return m


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _indexed(mask=None, names=NAMES) -> dict:
    return {"mask": _b64(mk.encode_png(_mask() if mask is None else mask, names)), "classes": names}


def _rgb_png(mask: np.ndarray, colors: dict) -> bytes:
    rgb = np.zeros((*mask.shape, 3), np.uint8)
    for i, name in enumerate(NAMES):
        rgb[mask == i] = colors.get(name, [0, 0, 0])
    rgb[mask == mk.UNLABELLED] = mk.UNLABELLED_COLOR
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def test_an_indexed_mask_becomes_its_canonical_annotation():
    key, ann = TARGET.read_label(json.dumps(_indexed()), META)
    assert key == "cup/plate"
    # background first, then the painted classes by name: ids renumbered to match
    assert ann["classes"] == ["background", "cup", "plate"]
    expected = _mask()
    expected = np.where(expected == 2, 1, np.where(expected == 1, 2, expected)).astype(np.uint8)
    assert ann["digest"] == mk.digest(expected)
    assert len(ann["mask"]) == 64 and "base64" not in json.dumps(ann)  # a hash, never the PNG inlined
    assert TARGET.label_classes(key, ann) == {"background", "cup", "plate"}


def test_a_colour_mask_and_a_data_url_give_the_same_annotation():
    colors = {"plate": [0, 128, 0], "cup": [128, 0, 0]}
    rgb = {"mask": "data:image/png;base64," + _b64(_rgb_png(_mask(), colors)), "colors": colors}
    assert TARGET.read_label(rgb, META) == TARGET.read_label(_indexed(), META)


def test_the_same_painting_in_another_class_order_is_the_same_label():
    reordered = _mask()
    reordered = np.where(reordered == 2, 1, np.where(reordered == 1, 2, reordered)).astype(np.uint8)
    assert TARGET.read_label(_indexed(reordered, ["background", "cup", "plate"]), META) == \
        TARGET.read_label(_indexed(), META)


@pytest.mark.parametrize("label, words", [
    ({"mask": _b64(b"\xff\xd8\xff\xe0 a jpeg"), "classes": NAMES}, "not a PNG"),
    (_indexed(np.zeros((4, 5), np.uint8)), "the mask is 5x4 pixels but its image is 6x4"),
    ({"mask": _b64(_rgb_png(_mask(), {"plate": [0, 128, 0], "cup": [1, 2, 3]})),
      "colors": {"plate": [0, 128, 0], "cup": [128, 0, 0]}}, "unknown colour [1, 2, 3]"),
    ({"mask": _b64(mk.encode_png(_mask(), NAMES)), "classes": ["background", "plate"]}, "class id 2"),
    ('{"mask": "abc", "classes": [', "not valid JSON"),
    ("cup", "JSON object"),
    ({"mask": "not base64!", "classes": NAMES}, "not valid base64"),
    ({"mask": _b64(mk.encode_png(_mask(), NAMES))}, "say which class"),
    (_indexed(np.full((4, 6), mk.UNLABELLED, np.uint8)), "no labelled pixel"),
    ({"mask": _b64(mk.encode_png(_mask(), NAMES)), "classes": ["background", "a/b", "cup"]}, "no slashes"),
    ({"mask": "ab" * 32, "classes": NAMES}, "not a stored mask"),
])
def test_every_bad_mask_is_refused_saying_what_is_wrong(label, words):
    with pytest.raises(Invalid) as err:
        TARGET.read_label(label if isinstance(label, str) else json.dumps(label), META)
    assert words in err.value.message, err.value.message


def test_renaming_a_class_renames_it_in_the_class_table_only():
    key, ann = TARGET.read_label(_indexed(), META)
    new_key, new_ann = TARGET.renamed(key, ann, "cup", "mug")
    assert new_key == "mug/plate"
    assert new_ann["classes"] == ["background", "mug", "plate"]
    assert (new_ann["mask"], new_ann["digest"]) == (ann["mask"], ann["digest"])  # the pixels keep their ids
    with pytest.raises(Invalid, match="every segmentation project has"):
        TARGET.renamed(key, ann, "background", "floor")


def test_deleting_a_class_leaves_its_pixels_unlabelled():
    from dyntrain.tasks.masks import class_table

    key, ann = TARGET.read_label(_indexed(), META)
    new_key, new_ann = TARGET.without_class(key, ann, "cup")
    assert new_key == "plate" and new_ann["classes"] == ["background", None, "plate"]
    assert new_ann["mask"] == ann["mask"]  # the PNG stays; its cup id now names no class
    assert TARGET.label_classes(new_key, new_ann) == {"background", "plate"}
    assert class_table(new_ann["classes"]) == ["background", "deleted/1", "plate"]
    assert TARGET.renamed(new_key, new_ann, "plate", "dish")[0] == "dish"
    with pytest.raises(Invalid, match="every segmentation project has"):
        TARGET.without_class(key, ann, "background")


def test_the_training_panel_names_each_targets_headline_score():
    """The panel says "right 85% of the time" from accuracy itself; every other target its own headline."""
    said = {name: tasks.get(name).target.headline_words(metrics) for name, metrics in (
        ("semantic-segmentation", {"miou": 0.823}), ("object-detection", {"map50": 0.9, "miou": 0.1}),
        ("tabular-regression", {"r2": 0.5}), ("image-classification", {"accuracy": 0.85}))}
    assert said["semantic-segmentation"] == "mIoU 82%" and said["object-detection"] == "mAP50 90%"
    assert said["tabular-regression"].startswith("R²") and said["image-classification"] == "85%"
    assert tasks.get("semantic-segmentation").target.headline_words({"accuracy": 1.0}) is None


def test_counts_and_trainability():
    counts = TARGET.counts(["cup/plate", "cup", "", "cup"])
    assert counts == {"cup": 3, "plate": 1, "background": 4}
    assert TARGET.waiting(counts) == {"plate": 1}
    TARGET.check_trainable(counts)
    with pytest.raises(Invalid, match="at least 4 photos"):
        TARGET.check_trainable(TARGET.counts(["cup", "cup"]))
    with pytest.raises(Invalid, match="nothing but background|shows anything but background"):
        TARGET.check_trainable(TARGET.counts(["", "", "", ""]))


def _photo(seed: int = 3) -> tuple[bytes, np.ndarray, list[str]]:
    scene = make_scene(seed, classes=2, size=(96, 64), seed=5)
    buf = io.BytesIO()
    Image.fromarray(scene.image).save(buf, "PNG")
    return buf.getvalue(), scene.mask, ["background", *scene.class_names]


def test_masks_live_in_the_blob_store_and_versions_follow_the_painting(client, core):
    from dyntrain.ops.backup import _inventory
    from dyntrain.ops.housekeeping import content_in_use

    api = "/api/v1/projects/kitchen"
    assert client.post("/api/v1/projects", json={"name": "kitchen", "task": "semantic-segmentation"}).status_code == 201
    photo, mask, names = _photo()
    mask = mask.copy()
    mask[:4, :4] = 1  # at least one painted class
    label = {"mask": _b64(mk.encode_png(mask, names)), "classes": names}

    # a bad mask refuses the whole upload, naming the file; nothing is stored
    r = client.post(f"{api}/samples", files=[("files", ("a.png", photo)), ("files", ("b.png", photo))],
                    data={"labels": [json.dumps(label), json.dumps({**label, "classes": names[:1]})]})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["file"] == "b.png", r.text
    assert "class id" in r.json()["error"]["details"][0]["reason"]
    assert client.get(f"{api}/dataset-versions").json() == []

    r = client.post(f"{api}/samples", files=[("files", ("a.png", photo))], data={"label": json.dumps(label)})
    assert r.status_code == 201, r.text
    sample = r.json()["samples"][0]
    ann = sample["annotation"]
    assert set(ann) == {"mask", "classes", "digest"} and core.blobs.exists(ann["mask"])
    # the stored PNG, served by the sample's blob route, decodes to the painting
    png = client.get(f"{api}/samples/{sample['id']}/blobs/{ann['mask']}")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    stored = mk.decode_png(png.content, ann["classes"])
    assert mk.digest(stored) == ann["digest"]
    assert client.get(f"{api}/samples/{sample['id']}/blobs/{sample['content_hash']}").status_code == 404

    # the same painting sent again (an RGB file this time): no new version; one pixel repainted: one
    colors = mk.default_colors(names)
    lut = np.zeros((256, 3), np.uint8)
    for i, name in enumerate(names):
        lut[i] = colors[name]
    lut[mk.UNLABELLED] = mk.UNLABELLED_COLOR
    buf = io.BytesIO()
    Image.fromarray(lut[mask]).save(buf, "PNG")
    again = client.patch(f"{api}/samples/{sample['id']}",
                         json={"label": {"mask": _b64(buf.getvalue()), "colors": colors}}).json()
    assert again["version"] is None and again["samples"][0]["annotation"] == ann, again
    mask[-1, -1] = 1 if mask[-1, -1] != 1 else 0
    changed = client.patch(f"{api}/samples/{sample['id']}",
                           json={"label": {"mask": _b64(mk.encode_png(mask, names)), "classes": names}}).json()
    assert changed["version"]["number"] == 2 and changed["samples"][0]["annotation"]["digest"] != ann["digest"]

    # housekeeping and backups keep both masks: the old version still names the first
    new_sha = changed["samples"][0]["annotation"]["mask"]
    assert {ann["mask"], new_sha} <= content_in_use(core)
    if core.settings.database_url.startswith("sqlite"):
        db = core.settings.database_url.removeprefix("sqlite:///")
        assert {ann["mask"], new_sha} <= set(_inventory(db)["hashes"])

    # renaming a class renames it inside the mask's class table, as one new version
    painted = [c for c in changed["samples"][0]["annotation"]["classes"] if c != "background"][0]
    r = client.patch(f"{api}/classes/{painted}", json={"label": "thing"})
    assert r.status_code == 200, r.text
    after = client.get(f"{api}/samples/{sample['id']}").json()
    assert "thing" in after["annotation"]["classes"] and after["annotation"]["mask"] == new_sha
    assert client.patch(f"{api}/classes/background", json={"label": "floor"}).status_code == 422

    # deleting a class keeps the photo: the class's pixels become unlabelled (its id is null), one version
    r = client.delete(f"{api}/classes/thing")
    assert r.status_code == 200, r.text
    kept = client.get(f"{api}/samples/{sample['id']}").json()["annotation"]
    assert None in kept["classes"] and "thing" not in kept["classes"] and kept["mask"] == new_sha
    assert client.get(f"{api}/samples/{sample['id']}/blobs/{new_sha}").status_code == 200
    # the stored annotation sent back as it is (an editor saving what it was given): the same label
    r = client.patch(f"{api}/samples/{sample['id']}", json={"label": kept})
    assert r.status_code == 200 and r.json()["version"] is None and r.json()["samples"][0]["annotation"] == kept

    # purging the photo takes its masks with it: no sample, version or correction names them any more
    r = client.post(f"{api}/purge", json={"content_hash": sample["content_hash"]})
    assert r.status_code == 200, r.text
    assert r.json()["annotation_files_deleted"] == 2, r.json()
    assert not core.blobs.exists(ann["mask"]) and not core.blobs.exists(new_sha)
