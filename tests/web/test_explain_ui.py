"""The Try page shows why: a heatmap over the photo with an opacity slider and a sentence saying
which part mattered; for texts, the words that moved the score highlighted. Real Chromium."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.explain_models import CLASSES, REVIEW_CLASSES, pixel_model, review_model, scene_probe, serve
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


def _noise_png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (64, 64, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_try_page_answers_before_its_explanation_is_ready(models, core, live_server, browser, tmp_path):
    """The Try page shows the answer at once and draws its explanation when the queue has made it:
    the photo's prediction is sent plain, the explanation asked for by the id the answer carries.
    The queue's one worker is held busy here, so every explanation is still pending when its answer
    shows: six photos in a row, with a second tab of the app open (the browser has six connections
    per host, and each tab's live event stream holds one), must each be answered within seconds —
    explanation requests held open 20 s stalled the fifth — and the last one's heatmap appear once
    the worker is free. Texts the same; a project that keeps no inputs says why there is none."""
    from dyntrain.serving import explain

    serve(core, "pixels", pixel_model(tmp_path), ["a", "b"], "image-classification")
    serve(core, "reviews", models[2], REVIEW_CLASSES, "text-classification")
    queue = explain.queue_for(core)
    free = threading.Event()
    queue.submit(("held by the test",), "test", lambda: (free.wait(120), {"status": "ready"})[1])
    context = browser.new_context()
    other, page = context.new_page(), context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url))
    try:
        other.goto(f"{live_server.url}/projects/pixels")
        other.locator("#live-conn", has_text="live").wait_for()  # its event stream holds a connection
        page.goto(f"{live_server.url}/projects/pixels/try")
        page.locator("#live-conn", has_text="live").wait_for()  # and this one's another
        for i in range(6):
            before = page.evaluate("(window.dyntrain.lastPrediction || {}).prediction_id || 0")
            start = time.monotonic()
            page.set_input_files("#try-file", {"name": f"noise-{i}.png", "mimeType": "image/png",
                                               "buffer": _noise_png(i)})
            _wait_js(page, f"((window.dyntrain.lastPrediction || {{}}).prediction_id || 0) > {before}", timeout=8_000)
            assert time.monotonic() - start < 8 and page.locator("#try-label").inner_text().startswith("It is ")
            assert page.evaluate("window.dyntrain.explanationState") in ("asking", "pending")
            assert page.evaluate("window.dyntrain.explanation") is None
        assert page.locator("#explain-summary").inner_text() == "Working out which part mattered…"
        assert not page.locator("#explain-overlay").is_visible()
        last = page.evaluate("window.dyntrain.lastPrediction")
        predicts = [u for u in sent if "/predict?" in u or u.endswith("/predict")]
        assert len(predicts) == 6 and not any("explain=" in u for u in predicts), predicts
        assert any(f"/predictions/{last['prediction_id']}/explanation?method=auto" in u for u in sent)

        free.set()  # the worker is free: the last photo's heatmap is drawn (no earlier one's)
        page.locator("#explain-summary", has_text="covering each part in turn").wait_for(timeout=30_000)
        explanation = page.evaluate("window.dyntrain.explanation")
        assert explanation["method"] == "occlusion" and explanation["label"] == last["label"]
        assert page.locator("#explain-overlay").is_visible()
        assert page.locator("#try-label").inner_text().startswith("It is ")

        # texts: the answer first, the words highlighted once the queue has weighed them
        free.clear()
        queue.submit(("held by the test", 2), "test", lambda: (free.wait(120), {"status": "ready"})[1])
        page.goto(f"{live_server.url}/projects/reviews/try")
        page.fill("#try-text", "the staff were rude but the food was great")
        page.click("#try-text-form button[type=submit]")
        page.locator("#try-label").wait_for(timeout=8_000)
        assert page.evaluate("window.dyntrain.explanationState") in ("asking", "pending")
        assert page.locator("#try-sent mark").count() == 0
        free.set()
        page.locator("#try-sent mark.moved-for").first.wait_for(timeout=30_000)
        assert page.evaluate("window.dyntrain.explanation.label") == page.evaluate("window.dyntrain.lastPrediction.label")

        # a project that keeps no inputs: the answer, and why there is no explanation
        import httpx

        httpx.patch(f"{live_server.url}/api/v1/projects/pixels",
                    json={"settings": {"store_prediction_inputs": False}}).raise_for_status()
        page.goto(f"{live_server.url}/projects/pixels/try")
        page.set_input_files("#try-file", {"name": "noise.png", "mimeType": "image/png", "buffer": _noise_png(9)})
        page.locator("#explain-summary", has_text="does not keep").wait_for()
        assert page.locator("#try-label").inner_text().startswith("It is ")
        assert not page.locator("#explain-overlay").is_visible()
        assert not errors, errors
    finally:
        free.set()
        context.close()  # the pages' event streams open, the server would wait 15 s to stop
