"""A segmentation project's class colours (setting ``class_colors``): each class is given a colour
when it first appears and keeps it as other classes come, are renamed or deleted; the owner may
change one (two classes alike, or the unlabelled colour, are refused); pages draw masks in them."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import masks as mk

API = "/api/v1/projects/kitchen"


def _upload(client, classes: list[str], name: str, seed: int = 0):
    """A photo whose mask paints each of ``classes`` (after background) in a band."""
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "PNG")
    names = ["background", *classes]
    mask = np.zeros((40, 48), np.uint8)
    for i in range(1, len(names)):
        mask[i * 5:i * 5 + 5] = i
    label = {"mask": base64.b64encode(mk.encode_png(mask, names)).decode(), "classes": names}
    r = client.post(f"{API}/samples", files=[("files", (name, buf.getvalue()))], data={"label": json.dumps(label)})
    assert r.status_code == 201, r.text
    return r.json()["samples"][0]


def _colors(client) -> dict:
    return client.get(API).json()["settings"]["class_colors"]


def test_class_colours_fill_from_the_voc_map_around_pinned_ones():
    names = ["background", "bowl", "cup", "plate"]
    assert mk.class_colors(names) == mk.default_colors(names)
    table = mk.class_colors(names, {"cup": [128, 0, 0]})  # bowl's VOC colour, taken by cup
    assert table["cup"] == [128, 0, 0] and table["bowl"] not in ([128, 0, 0], [0, 0, 0])
    assert len({tuple(c) for c in table.values()}) == 4  # no two classes alike
    pinned = mk.pin_new_colors({}, ["background", "cup", "plate"], ["bowl"])
    assert pinned == {"background": [0, 0, 0], "cup": [128, 0, 0], "plate": [0, 128, 0], "bowl": [128, 128, 0]}


@pytest.mark.parametrize("database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_class_keeps_its_colour_as_classes_come_and_go(client):
    assert client.post("/api/v1/projects", json={"name": "kitchen", "task": "semantic-segmentation"}).status_code == 201
    _upload(client, ["cup", "plate"], "a.png")
    first = _colors(client)
    assert first == {"background": [0, 0, 0], "cup": [128, 0, 0], "plate": [0, 128, 0]}
    # "bowl" sorts before both: by place it would take cup's colour and push plate's; pinned, nobody moves
    _upload(client, ["bowl"], "b.png", seed=1)
    second = _colors(client)
    assert {k: second[k] for k in first} == first and second["bowl"] == [128, 128, 0]
    # a class made by hand gets its colour too
    assert client.post(f"{API}/classes", json={"label": "fork"}).status_code in (200, 201)
    assert _colors(client)["fork"] == [0, 0, 128]
    # renamed, it keeps its colour under the new name
    assert client.patch(f"{API}/classes/plate", json={"label": "dish"}).status_code == 200
    third = _colors(client)
    assert third["dish"] == [0, 128, 0] and "plate" not in third

    # the owner changes one; two classes alike or the unlabelled colour are refused, naming them
    r = client.patch(API, json={"settings": {"class_colors": {**third, "cup": [10, 200, 30]}}})
    assert r.status_code == 200, r.text
    assert _colors(client)["cup"] == [10, 200, 30]
    r = client.patch(API, json={"settings": {"class_colors": {**third, "cup": third["bowl"]}}})
    assert r.status_code == 422 and "same colour" in r.text
    r = client.patch(API, json={"settings": {"class_colors": {**third, "cup": list(mk.UNLABELLED_COLOR)}}})
    assert r.status_code == 422 and "unlabelled" in r.text
    r = client.patch(API, json={"settings": {"class_colors": {"cup": [1, 2]}}})
    assert r.status_code == 422 and "[r, g, b]" in r.text
    assert _colors(client)["cup"] == [10, 200, 30]

    # the data page is drawn in them: the table it hands masks.js, and each class's colour input
    page = client.get("/projects/kitchen/fragments/data").text
    assert f"data-mk-colors='{json.dumps(mk.class_colors(['background', 'bowl', 'cup', 'dish', 'fork'], _colors(client)))}'" in page
    assert 'data-set-colour="cup" value="#0ac81e"' in page


def test_other_tasks_keep_no_colours(client, make_png):
    assert client.post("/api/v1/projects", json={"name": "shop"}).status_code == 201
    r = client.post("/api/v1/projects/shop/samples", files=[("files", ("a.png", make_png(1)))], data={"label": "mug"})
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/projects/shop").json()["settings"]["class_colors"] is None


def test_the_settings_page_offers_class_colours_only_where_classes_have_colours(client):
    assert client.post("/api/v1/projects", json={"name": "kitchen", "task": "semantic-segmentation"}).status_code == 201
    assert client.post("/api/v1/projects", json={"name": "shop"}).status_code == 201
    _upload(client, ["cup"], "a.png")
    page = client.get("/projects/kitchen/settings").text
    assert 'name="class_colors"' in page and "Colour of each class in masks" in page
    assert "&#34;cup&#34;: [128, 0, 0]" in page or '"cup": [128, 0, 0]' in page
    assert 'name="class_colors"' not in client.get("/projects/shop/settings").text
