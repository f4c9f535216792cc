"""The Versions and Models pages over real HTTP on SQLite and PostgreSQL: they render for a new
project of every task; a version's change in words and its maker (matched from the audit log,
whose times each backend stores its own way); interactions (versions without samples) told from
their sizes, with nothing offered to restore."""

from __future__ import annotations

import re

from dyntrain import tasks
from dyntrain.kernel.projects import create_project


def _text(html: str, element_id: str) -> str:
    """The words of the table row with this id (tags dropped, spaces collapsed)."""
    row = re.search(rf'<tr id="{element_id}">(.*?)</tr>', html, re.S)
    assert row, f"no #{element_id}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(1))).strip()


def test_every_task_has_both_pages(client, core):
    for k, task in enumerate(tasks.names()):
        create_project(core, f"p{k}", task=task)
        for page, tab in (("versions", "Versions"), ("models", "Models")):
            r = client.get(f"/projects/p{k}/{page}")
            assert r.status_code == 200, (task, page, r.text[-300:])
            assert re.search(rf'aria-current="page" class="active">{tab}</a>', r.text), (task, page)
    assert client.get("/projects/nowhere/versions").status_code == 404


def test_changes_in_words_and_who_made_them(client, core, make_png):
    create_project(core, "shop", settings={"auto_train": False})
    api = "/api/v1/projects/shop"
    r = client.post(f"{api}/samples", data={"label": "mug"},
                    files=[("files", (f"m{i}.png", make_png(i), "image/png")) for i in range(3)])
    assert r.status_code == 201, r.text
    r = client.post(f"{api}/samples", data={"label": "cup"},
                    files=[("files", (f"c{i}.png", make_png(10 + i), "image/png")) for i in range(2)])
    cup = r.json()["samples"][0]["id"]
    assert client.patch(f"{api}/samples/{cup}", json={"label": "mug"}).status_code == 200
    page = client.get("/projects/shop/versions").text
    assert _text(page, "version-1").startswith("1 ")
    assert "The first version" in _text(page, "version-1") and "added examples" in _text(page, "version-1")
    assert "Added 2 images of cup (against version 1)" in _text(page, "version-2")
    assert "Relabelled 1 image from cup to mug" in _text(page, "version-3")
    assert "changed the class of an example" in _text(page, "version-3")
    assert "Restore version 1" in _text(page, "version-1") and "Restore" not in _text(page, "version-3")
    assert 'data-to="2"' in page  # undo the last change = restore its parent


def test_interaction_versions_are_told_by_size(client, core):
    create_project(core, "recs", task="recommendation", settings={"auto_train": False})
    api = "/api/v1/projects/recs/interactions"
    assert client.post(api, json={"interactions": [{"user": "a", "item": "x"}, {"user": "b", "item": "y"}]}).status_code == 201
    assert client.post(api, json={"interactions": [{"user": "a", "item": "y"}]}).status_code == 201
    page = client.get("/projects/recs/versions").text
    assert "Added 1 interaction (against version 1)" in _text(page, "version-2")
    assert "only ever added" in page and "Restore version" not in page and "compare-form" not in page
