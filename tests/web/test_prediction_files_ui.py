"""A recorded prediction's page in headless Chromium shows what the model answered: the mask it
painted over the photo (at the photo's resolution, exactly over it, opacity slider, class swatches),
or a filter's output image. Models are trained in-process and registered (no training run)."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from dyntrain.codecs import masks as mk
from dyntrain.ops.scenes import make_scenes

SIZE = (160, 120)
DESKTOP = {"width": 1280, "height": 900}


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def _serve(core, project, path, card):
    from dyntrain.registry.models import register_model, set_alias
    from dyntrain.storage.rows import ProjectRow

    with core.db.write() as s:
        pid = s.query(ProjectRow).filter_by(name=project).one().id
    version = register_model(core, pid, path, card, run_id=None)
    with core.db.write() as s:
        set_alias(s, s.get(ProjectRow, pid), version.version, "test")


def _open(browser, url):
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    page.goto(url)
    return page, problems


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_prediction_page_overlays_the_recorded_mask(live_server, core, browser, tmp_path):
    from dyntrain.learners.features import FeatureExtractor
    from dyntrain.learners.segmenter import Segmenter
    from dyntrain.tasks.masks import MaskPhotoModality

    scenes = make_scenes(6, classes=2, size=SIZE, seed=5)
    names = ["background", *scenes[0].class_names]
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    assert api.post("/projects", json={"name": "k", "task": "semantic-segmentation"}).status_code == 201
    keys = [str(i) for i in range(5)]
    photos = MaskPhotoModality().features(["image.segment_photo"], keys,
                                          dict(zip(keys, (_png(s.image) for s in scenes))).get,
                                          FeatureExtractor(core.settings.cache_dir))
    learner = Segmenter(epochs=6).fit(photos["image.segment_photo"], [s.mask for s in scenes[:5]], n_classes=3,
                                      class_names=names)
    _serve(core, "k", learner.export_onnx(tmp_path / "m.onnx", backbone_dir=core.settings.cache_dir),
           {"labels": names, "task": "semantic-segmentation"})
    said = api.post("/projects/k/predict", files=[("files", ("n.png", _png(scenes[5].image)))]).json()["predictions"][0]
    painted = sum(f for c, f in said["areas"].items() if c != "background")
    assert painted > 0.01, said["areas"]  # something to see

    page, problems = _open(browser, f"{live_server.url}/projects/k/predictions/{said['prediction_id']}")
    page.wait_for_selector("#prediction-mask[data-drawn=yes]")
    canvas = page.locator("#prediction-mask-frame canvas.mk-overlay")
    assert canvas.evaluate("(c) => [c.width, c.height]") == list(SIZE)  # the photo's own pixels
    box, img = canvas.bounding_box(), page.locator("#prediction-mask-frame img").bounding_box()
    assert img["width"] > 100 and all(abs(box[k] - img[k]) < 1 for k in ("x", "y", "width", "height")), (box, img)
    # exactly the recorded mask's painted share is coloured (background clear)
    alpha = canvas.evaluate("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                            " let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n / (c.width * c.height); }")
    assert abs(alpha - painted) < 0.01, (alpha, said["areas"])
    page.locator("#prediction-opacity").fill("20")
    assert canvas.evaluate("(c) => getComputedStyle(c).opacity") == "0.2"
    # each painted class listed with its area and its colour (the one every view gives it)
    items = page.locator("#prediction-areas li")
    assert items.count() == sum(1 for f in said["areas"].values() if f > 0)
    swatch = page.locator("#prediction-areas [data-mk-class]").first
    colour = swatch.evaluate("(s) => getComputedStyle(s).backgroundColor")
    index = names.index(swatch.get_attribute("data-mk-class"))
    expected = page.evaluate(f"() => window.dyntrain.masks.vocColour({index})")
    assert colour == f"rgb({expected[0]}, {expected[1]}, {expected[2]})"

    # confirmed as it is: the photo joins training with exactly the recorded mask
    page.get_by_role("button", name="Yes — add the photo with this mask to training").click()
    page.wait_for_function("() => document.querySelector('#prediction-msg').textContent.includes('added to the training')")
    kept = api.get(f"/projects/k/predictions/{said['prediction_id']}/files/mask").content
    [sample] = api.get("/projects/k/samples").json()["items"]
    stored = api.get(f"/projects/k/samples/{sample['id']}/blobs/{sample['annotation']['mask']}").content
    as_names = lambda png, classes: np.array(classes + ["?"] * (256 - len(classes)), object)[mk.decode_png(png, classes)]  # noqa: E731
    assert (as_names(stored, sample["annotation"]["classes"]) == as_names(kept, said["classes"])).all()

    # corrected: the editor opens on the photo at its own size with the recorded mask; a repainted
    # corner goes back as the correction, a second sample
    page.get_by_role("button", name="Correct this mask and add to training…").click()
    page.wait_for_function("() => window.dyntrain.masks.createEditor.live.size > 0")
    page.evaluate("Promise.all([...window.dyntrain.masks.createEditor.live].map((x) => x.ready))")
    start = page.evaluate("() => Array.from([...window.dyntrain.masks.createEditor.live][0].value())")
    classes = page.evaluate("() => [...window.dyntrain.masks.createEditor.live][0].classes()")
    assert len(start) == SIZE[0] * SIZE[1]
    recorded = as_names(kept, said["classes"]).ravel()
    assert (np.array(classes + ["?"] * (256 - len(classes)), object)[np.array(start)] == recorded).all()
    page.evaluate("() => { const ed = [...window.dyntrain.masks.createEditor.live][0];"
                  " ed.setClass(ed.classes().indexOf('background')); ed.setTool('brush'); ed.setSize(30); }")
    r = page.locator(".mk-stage canvas.mk-mask").bounding_box()
    page.mouse.move(r["x"] + 2, r["y"] + 2)
    page.mouse.down()
    page.mouse.move(r["x"] + r["width"] / 3, r["y"] + 2, steps=5)
    page.mouse.up()
    corrected = page.evaluate("() => Array.from([...window.dyntrain.masks.createEditor.live][0].value())")
    corrected = np.array(classes + ["?"] * (256 - len(classes)), object)[np.array(corrected)].reshape(SIZE[1], SIZE[0])
    page.get_by_role("button", name="Add to training with this mask").click()
    page.wait_for_selector("#mk-dialog", state="hidden")
    items = api.get("/projects/k/samples").json()["items"]
    assert len(items) == 2
    newest = max(items, key=lambda x: x["id"])
    stored = api.get(f"/projects/k/samples/{newest['id']}/blobs/{newest['annotation']['mask']}").content
    assert (as_names(stored, newest["annotation"]["classes"]) == corrected).all()
    assert (corrected[:5, :20] == "background").all()
    page.context.close()
    assert not problems, problems


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_prediction_page_shows_a_filters_output(live_server, core, browser, tmp_path):
    from dyntrain.learners.filter import FilterCNN
    from dyntrain.ops.edge_pairs import sample_crops, sobel_map

    photos = sample_crops(5, seed=7)
    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    assert api.post("/projects", json={"name": "f", "task": "image-to-image"}).status_code == 201
    learner = FilterCNN(steps=50).fit(photos, [sobel_map(p) for p in photos])
    _serve(core, "f", learner.export_onnx(tmp_path / "f.onnx"), {"labels": [], "task": "image-to-image"})
    said = api.post("/projects/f/predict", files=[("files", ("p.png", _png(photos[1])))]).json()["predictions"][0]
    page, problems = _open(browser, f"{live_server.url}/projects/f/predictions/{said['prediction_id']}")
    out = page.locator("#prediction-output-image")
    page.wait_for_function("() => { const i = document.querySelector('#prediction-output-image');"
                           " return i.complete && i.naturalWidth > 0; }")
    h, w = photos[1].shape[:2]
    assert out.evaluate("(i) => [i.naturalWidth, i.naturalHeight]") == [w, h]
    page.context.close()
    assert not problems, problems
