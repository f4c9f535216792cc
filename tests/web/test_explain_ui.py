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
    page.close()  # its event stream open, the server would wait 15 s to stop


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_prediction_page_shows_why_it_was_said(models, core, live_server, browser):
    """A recorded prediction's page asks for its explanation: heatmap and slider over the kept
    photo, the words highlighted in a kept text, and the server's reason when it cannot."""
    import httpx

    probe, scenes, reviews = models
    serve(core, "scenes", probe, CLASSES, "image-classification")
    serve(core, "reviews", reviews, REVIEW_CLASSES, "text-classification")
    buf = io.BytesIO()
    Image.fromarray(scenes[1].image).crop((0, 0, 320, 200)).save(buf, "PNG")
    api = f"{live_server.url}/api/v1/projects"
    photo = httpx.post(f"{api}/scenes/predict", files=[("files", ("scene.png", buf.getvalue()))]).json()
    text = "the staff were rude but the food was great"
    said = httpx.post(f"{api}/reviews/predict/texts", json={"texts": [text]}).json()["predictions"][0]
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(f"{live_server.url}/projects/scenes/predictions")
    page.click("a:has-text('details and why')")
    page.wait_for_url(f"**/projects/scenes/predictions/{photo['predictions'][0]['prediction_id']}")
    page.locator("#explain-summary", has_text="mattered most").wait_for()
    explanation = page.evaluate("window.dyntrain.explanation")
    assert explanation["method"] == "cam" and explanation["label"] == photo["predictions"][0]["label"]
    assert "class activation map" in page.locator("#explain-summary").inner_text()
    overlay = page.locator("#explain-overlay")
    assert overlay.is_visible()
    box, shown = overlay.bounding_box(), page.locator("#prediction-photo").bounding_box()
    # the 320×200 photo as object-fit: contain shows it in the 320×320 frame: 60 px above and below
    assert abs(box["width"] - 320) < 1.5 and abs(box["height"] - 200) < 1.5
    assert abs(box["y"] - (shown["y"] + 60)) < 1.5 and abs(box["x"] - shown["x"]) < 1.5
    page.locator("#explain-opacity").fill("35")
    assert page.evaluate("getComputedStyle(document.querySelector('#explain-overlay')).opacity") == "0.35"
    assert len(page.locator("#prediction-scores li").all()) == len(CLASSES)

    page.goto(f"{live_server.url}/projects/reviews/predictions/{said['prediction_id']}")
    page.locator("#prediction-text mark.moved-for").first.wait_for()
    marked = page.locator("#prediction-text mark.moved-for").all_inner_texts()
    assert ("great" if said["label"] == "good" else "rude") in marked
    assert page.locator("#prediction-text").inner_text() == text
    assert "supported" in page.locator("#explain-summary").inner_text()
    assert page.locator(".explain-key").is_visible()

    # the model version that answered is gone from the store: the page says so instead of a map
    from tests.test_explain import registry_path

    with core.db.read() as s:
        from dyntrain.kernel.projects import project_row

        pid = project_row(s, "reviews").id
    registry_path(core, pid, said["model_version"]).unlink()
    page.reload()
    page.locator("#explain-summary", has_text="No explanation").wait_for()
    assert "has been deleted" in page.locator("#explain-summary").inner_text()
    assert page.locator("#prediction-text mark").count() == 0 and not page.locator(".explain-key").is_visible()
    assert not errors, errors
    page.close()  # its event stream open, the server would wait 15 s to stop
