"""A class's colour changed on the data page of a segmentation project, in headless Chromium: the
project's class_colors is saved and every mask on the page is redrawn in it; a colour another class
has is refused with the server's reason and the input goes back."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import masks as mk

DESKTOP = {"width": 1280, "height": 900}


def _sample(api):
    photo = np.full((60, 80, 3), 120, np.uint8)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "PNG")
    names = ["background", "cup", "plate"]
    mask = np.zeros((60, 80), np.uint8)
    mask[:, :40] = 1  # cup on the left half, plate on the right
    mask[:, 40:] = 2
    label = {"mask": base64.b64encode(mk.encode_png(mask, names)).decode(), "classes": names}
    r = api.post("/projects/kitchen/samples", files=[("files", ("a.png", buf.getvalue()))],
                 data={"label": json.dumps(label)})
    assert r.status_code == 201, r.text


_LEFT_PIXEL = """(c) => Array.from(c.getContext('2d').getImageData(Math.floor(c.width / 4), Math.floor(c.height / 2), 1, 1).data)"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_class_colour_changed_on_the_data_page_redraws_its_masks(live_server, browser):
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    assert api.post("/projects", json={"name": "kitchen", "task": "semantic-segmentation"}).status_code == 201
    _sample(api)
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: m.type == "error" and "422" not in m.text and problems.append(m.text))
    page.goto(f"{live_server.url}/projects/kitchen")
    card = page.locator(".mk-card canvas.mk-overlay")
    page.wait_for_selector(".mk-card canvas.mk-overlay[data-drawn=yes]")
    assert card.evaluate(_LEFT_PIXEL)[:3] == [128, 0, 0]  # cup in its first colour

    page.locator("input[data-set-colour=cup]").fill("#0ac81e")
    page.wait_for_function("() => (document.querySelector('#data-msg') || {}).textContent.includes('new colour')")
    assert api.get("/projects/kitchen").json()["settings"]["class_colors"]["cup"] == [10, 200, 30]
    page.wait_for_function("() => { const c = document.querySelector('.mk-card canvas.mk-overlay');"
                           " return c && c.dataset.drawn === 'yes' &&"
                           " c.getContext('2d').getImageData(Math.floor(c.width / 4), Math.floor(c.height / 2), 1, 1).data[1] === 200; }")
    assert page.locator(".mk-card canvas.mk-overlay").evaluate(_LEFT_PIXEL)[:3] == [10, 200, 30]
    assert page.locator("input[data-set-colour=cup]").input_value() == "#0ac81e"

    # plate's colour for cup: refused, said, and the input shows cup's colour again
    page.locator("input[data-set-colour=cup]").fill("#008000")
    page.wait_for_function("() => (document.querySelector('#data-msg') || {}).textContent.includes('same colour')")
    assert page.locator("input[data-set-colour=cup]").input_value() == "#0ac81e"
    assert api.get("/projects/kitchen").json()["settings"]["class_colors"]["cup"] == [10, 200, 30]
    page.context.close()
    assert not problems, problems
