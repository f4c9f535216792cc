"""The Try page shows why: a heatmap over the photo with an opacity slider and a sentence saying
which part mattered; for texts, the words that moved the score highlighted. Real Chromium."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.explain_models import CLASSES, REVIEW_CLASSES, review_model, scene_probe, serve
from tests.web.test_browser import _wait_js


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain-models")
    probe, scenes = scene_probe(folder)
    return probe, scenes, review_model(folder)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_try_page_overlays_the_heatmap_and_highlights_words(models, core, live_server, browser):
    probe, scenes, reviews = models
    serve(core, "scenes", probe, CLASSES, "image-classification")
    serve(core, "reviews", reviews, REVIEW_CLASSES, "text-classification")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))

    page.goto(f"{live_server.url}/projects/scenes/try")
    buf = io.BytesIO()
    Image.fromarray(scenes[0].image).crop((0, 0, 320, 200)).save(buf, "PNG")  # wide: letterboxed in view
    page.set_input_files("#try-file", {"name": "scene.png", "mimeType": "image/png", "buffer": buf.getvalue()})
    page.locator("#explain-summary", has_text="mattered most").wait_for()
    explanation = page.evaluate("window.dyntrain.explanation")
    assert explanation["method"] == "cam" and explanation["status"] == "ready"
    overlay = page.locator("#explain-overlay")
    assert overlay.is_visible()
    # laid exactly over the photo as object-fit: contain shows it (320×200 in a 160×160 box)
    box, photo = overlay.bounding_box(), page.locator("#try-preview").bounding_box()
    assert abs(box["width"] - 160) < 1.5 and abs(box["height"] - 100) < 1.5
    assert abs(box["y"] - (photo["y"] + 30)) < 1.5 and abs(box["x"] - photo["x"]) < 1.5
    page.locator("#explain-opacity").fill("20")
    assert page.evaluate("getComputedStyle(document.querySelector('#explain-overlay')).opacity") == "0.2"
    assert page.locator("#try-label").inner_text().startswith("It is ")

    page.goto(f"{live_server.url}/projects/reviews/try")
    page.fill("#try-text", "the staff were rude but the food was great")
    page.click("#try-text-form button[type=submit]")
    _wait_js(page, "window.dyntrain.explanation && window.dyntrain.explanation.method === 'words'")
    page.locator("#try-sent mark.moved-for").first.wait_for()
    said = page.evaluate("window.dyntrain.explanation.label")
    marked = page.locator("#try-sent mark.moved-for").all_inner_texts()
    assert ("great" if said == "good" else "rude") in marked
    assert page.locator("#try-sent").inner_text() == "the staff were rude but the food was great"
    assert "supported" in page.locator("#explain-summary").inner_text()
    assert not errors, errors
