"""The image-to-image pages (static/pairs.js) in headless Chromium, over a real server that trains:
a pair added from the data page's two file pickers is the pair the API stores, a JPEG output is
refused with the server's reason, and once a model serves, the try page shows its output beside the
photo and sends it back into training; the run page reports PSNR in words."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import pairs
from dyntrain.ops.edge_pairs import sample_crops, sobel_map
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def _png(array, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_pairs_are_added_tried_and_reported_in_the_browser(live_server, browser):
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    r = api.post("/projects", json={"name": "edges", "task": "image-to-image",
                                    "settings": {"train_delay_s": 0.3, "train_max_delay_s": 5, "time_budget_s": 15}})
    assert r.status_code == 201, r.text
    photos = sample_crops(6, seed=11)
    page = browser.new_page()
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto(f"{live_server.url}/projects/edges")
        # a JPEG output: the server's reason is shown, nothing is added
        page.set_input_files("#pr-input", files=[{"name": "p0.png", "mimeType": "image/png", "buffer": _png(photos[0])}])
        page.set_input_files("#pr-output", files=[{"name": "p0.jpg", "mimeType": "image/jpeg",
                                                   "buffer": _png(sobel_map(photos[0]), "JPEG")}])
        page.click("#pr-add button[type=submit]")
        page.wait_for_selector("#data-msg.error:has-text('JPEG')")
        assert api.get("/projects/edges/samples").json()["items"] == []
        # the right PNG: stored exactly, and its card shows photo and output side by side
        page.set_input_files("#pr-output", files=[{"name": "p0.png", "mimeType": "image/png",
                                                   "buffer": _png(sobel_map(photos[0]))}])
        page.click("#pr-add button[type=submit]")
        page.wait_for_selector("#data-msg.ok:has-text('Added p0.png')")
        stored = api.get("/projects/edges/samples").json()["items"]
        assert len(stored) == 1
        png = api.get(f"/projects/edges/samples/{stored[0]['id']}/blobs/{stored[0]['annotation']['image']}").content
        assert np.array_equal(pairs.read_output(png), sobel_map(photos[0]))
        page.wait_for_function("() => [...document.querySelectorAll('.pr-card img')].length === 2 && "
                               "[...document.querySelectorAll('.pr-card img')].every(i => i.complete && i.naturalWidth > 0)")
        # side by side (the stylesheet loads under the page's CSP, which refuses inline styles)
        boxes = [page.locator(".pr-card img").nth(k).bounding_box() for k in range(2)]
        assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[1]["x"] > boxes[0]["x"] + boxes[0]["width"] - 2

        # more pairs by the API: training starts by itself and a model goes into service
        labels = [json.dumps({"image": base64.b64encode(_png(sobel_map(p))).decode()}) for p in photos[1:5]]
        r = api.post("/projects/edges/samples", data={"labels": labels},
                     files=[("files", (f"p{i}.png", _png(p))) for i, p in enumerate(photos[1:5], 1)])
        assert r.status_code == 201, r.text
        wait_for(lambda: api.get("/projects/edges/models").json(), timeout=300)

        # the try page: the model's output beside the photo, sent back into training
        page.goto(f"{live_server.url}/projects/edges/try")
        page.set_input_files("#try-file", files=[{"name": "new.png", "mimeType": "image/png", "buffer": _png(photos[5])}])
        page.wait_for_selector("#try-answer:not([hidden])")
        page.wait_for_function("() => document.querySelector('#try-output').naturalWidth === 96")
        assert "greyscale 96×80" in page.inner_text("#try-meta")
        page.click("#try-confirm")
        page.wait_for_selector("#try-msg.ok:has-text('added to the training examples')")
        assert len(api.get("/projects/edges/samples").json()["items"]) == 6

        # the run page: PSNR in words and the worst photos as pictures
        run = next(j["run_id"] for j in api.get("/projects/edges/jobs").json() if j["status"] == "succeeded")
        page.goto(f"{live_server.url}/projects/edges/runs/{run}")
        assert "within" in page.inner_text("#words-h + ul") and "dB" in page.content()
        assert page.locator(".pr-triple img").count() == 9
        assert blocked == [], blocked
    finally:
        page.close()
