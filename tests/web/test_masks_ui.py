"""The mask editor (static/masks.js) in headless Chromium.

The widget part runs on a small page served from a temporary folder (the real masks.js,
masks.css and style.css next to a real photo from scikit-learn): brush, eraser, undo/redo, fill,
polygon, class change and the saved label, decoded with codecs.masks exactly as the server
decodes it, with no training. The page part drives a real server: the mask saved from the data
page is the one the API stores, a refused save shows the server's reason, and the Try page
overlays the served model's mask.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from dyntrain.codecs import masks as mk

STATIC = Path(__file__).resolve().parents[2] / "src" / "dyntrain" / "web" / "static"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CLASSES = ["background", "pagoda", "sky", "tree"]
PHOTO_W, PHOTO_H = 640, 427  # china.jpg
U = mk.UNLABELLED

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mask editor</title><link rel="icon" href="data:,"><link rel="stylesheet" href="style.css"><link rel="stylesheet" href="masks.css"></head>
<body><main><h1>Mask editor</h1><div id="host"></div></main>
<script src="masks.js"></script><script src="harness.js"></script></body></html>
"""

# The page's use of the widget: the classes (and a starting mask, base64 indexed PNG) from the
# query string; what it saves and how often it was cancelled are kept for the test to read.
_HARNESS = """"use strict";
const params = new URLSearchParams(location.search);
window.saved = [];
window.cancelled = 0;
const M = window.dyntrain.masks;
const start = params.get("mask");
(start ? M.decodeIndexedPng(M.base64Bytes(start)) : Promise.resolve(null)).then((mask) => {
  window.editor = M.createEditor(document.getElementById("host"), {
    src: "photo.jpg", title: "the test photo", classes: JSON.parse(params.get("classes") || "[]"),
    mask: mask && Object.assign(mask, { classes: JSON.parse(params.get("mask_classes") || "[]") }),
    onSave: (label) => { window.saved.push(label); },
    onCancel: () => { window.cancelled += 1; },
  });
});
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The widget's page on 127.0.0.1 (a real HTTP server, so the browser loads it as it would)."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    root = tmp_path_factory.mktemp("masks-site")
    for name in ("masks.js", "masks.css", "style.css"):
        shutil.copy(STATIC / name, root / name)
    Image.fromarray(load_sample_image("china.jpg")).save(root / "photo.jpg", quality=90)
    (root / "index.html").write_text(_PAGE)
    (root / "harness.js").write_text(_HARNESS)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Editor:
    """One browser page on a mask editor (the widget's or a project page's), with everything
    that went wrong on it."""

    def __init__(self, page, problems: list[str]):
        self.page = page
        self.problems = problems

    @classmethod
    def open(cls, browser, url: str, viewport=DESKTOP) -> "Editor":
        phone = viewport["width"] < 500
        context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
        page = context.new_page()
        page.set_default_timeout(15_000)
        problems: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
        page.goto(url)
        return cls(page, problems)

    def ready(self) -> None:
        self.page.wait_for_function("() => window.dyntrain.masks.createEditor.live.size > 0")
        self.page.evaluate("Promise.all([...window.dyntrain.masks.createEditor.live].map((e) => e.ready))")

    def ids(self) -> np.ndarray:
        """The editor's class ids, H × W."""
        data = self.page.evaluate("""() => {
          const ids = [...window.dyntrain.masks.createEditor.live][0].value();
          let s = "";
          for (let i = 0; i < ids.length; i += 8192) s += String.fromCharCode(...ids.subarray(i, i + 8192));
          return btoa(s);
        }""")
        size = self.page.evaluate("[...window.dyntrain.masks.createEditor.live][0].size()")
        return np.frombuffer(base64.b64decode(data), np.uint8).reshape(size["height"], size["width"])

    def classes(self) -> list[str]:
        return self.page.evaluate("[...window.dyntrain.masks.createEditor.live][0].classes()")

    def canvas(self) -> dict:
        return self.page.locator(".mk-stage canvas.mk-mask").bounding_box()

    def screen(self, x: float, y: float) -> tuple[float, float]:
        """The screen point of original pixel (x, y)."""
        r = self.canvas()
        return r["x"] + x * r["width"] / PHOTO_W, r["y"] + y * r["height"] / PHOTO_H

    def stroke(self, *points: tuple[float, float], steps: int = 6) -> None:
        m = self.page.mouse
        m.move(*self.screen(*points[0]))
        m.down()
        for p in points[1:]:
            m.move(*self.screen(*p), steps=steps)
        m.up()

    def click(self, x: float, y: float) -> None:
        self.page.mouse.click(*self.screen(x, y))

    def status(self) -> str:
        return self.page.locator(".mk-status").inner_text()


@pytest.fixture
def open_editor(browser, site):
    opened: list[Editor] = []

    def open_(viewport=DESKTOP, url: str | None = None, **query) -> Editor:
        from urllib.parse import urlencode

        query = {"classes": json.dumps(CLASSES), **query}
        e = Editor.open(browser, url or f"{site}/index.html?" + urlencode(query), viewport)
        opened.append(e)
        if url is None:
            e.ready()
        return e

    yield open_
    problems = [x for e in opened for x in e.problems]
    for e in opened:
        e.page.context.close()
    assert not problems, problems


def _decoded(label: dict) -> np.ndarray:
    """A saved label decoded as the server does (an unknown colour, e.g. anti-aliasing, fails)."""
    assert label["mask"].startswith("data:image/png;base64,")
    return mk.decode_png(base64.b64decode(label["mask"].split(",", 1)[1]), list(label["colors"]), label["colors"],
                         image_size=(PHOTO_W, PHOTO_H))


def _as_names(ids: np.ndarray, names: list[str]) -> np.ndarray:
    lut = np.array([names[i] if i < len(names) else "" for i in range(255)] + ["?"], dtype=object)
    return lut[ids]


def test_paint_erase_undo_fill_polygon_and_save(open_editor):
    e = open_editor()
    page = e.page
    # the mask lies exactly over the photo, at the photo's own resolution
    canvas = e.canvas()
    photo = page.locator(".mk-stage img").bounding_box()
    assert all(abs(canvas[k] - photo[k]) < 1 for k in ("x", "y", "width", "height")), (canvas, photo)
    assert page.evaluate("[document.querySelector('.mk-mask').width, document.querySelector('.mk-mask').height]") == [PHOTO_W, PHOTO_H]
    assert (e.ids() == U).all()  # nothing is painted yet

    # brush: class 2 ("pagoda", the first after background) by default, size 20 px
    e.page.evaluate("[...window.dyntrain.masks.createEditor.live][0].setSize(20)")
    e.stroke((100, 100), (300, 100))
    ids = e.ids()
    assert ids[100, 100:301].tolist() == [1] * 201  # the whole line ...
    assert (ids[92:109, 150:250] == 1).all()  # ... 20 px thick (a pixel of rounding at the edge)
    assert (ids[:85] == U).all() and (ids[116:] == U).all()  # ... and nothing beyond it
    assert set(np.unique(ids)) == {1, U}

    # eraser across it: a gap of unpainted pixels; undo and redo it
    page.keyboard.press("e")
    e.stroke((200, 60), (200, 140))
    assert (e.ids()[95:106, 195:206] == U).all()
    page.keyboard.press("Control+z")
    assert (e.ids()[95:106, 195:206] == 1).all()
    assert (e.ids() == ids).all()  # exactly back
    page.keyboard.press("Control+Shift+z")
    assert (e.ids()[95:106, 195:206] == U).all()
    page.get_by_role("button", name="Undo").click()
    assert (e.ids() == ids).all()
    page.get_by_role("button", name="Redo").click()
    erased = e.ids()
    assert (erased[95:106, 195:206] == U).all()

    # polygon with class 3 ("sky", key 3): a triangle, closed on its first point
    page.keyboard.press("p")
    page.keyboard.press("3")
    page.keyboard.press("p")
    for x, y in ((400, 200), (600, 200), (600, 400)):
        e.click(x, y)
    assert (e.ids() == erased).all()  # nothing is filled before the polygon is closed
    e.click(401, 201)
    ids = e.ids()
    assert (ids[210:395, 595] == 2).all() and ids[390, 420] == U and ids[300, 560] == 2 and ids[300, 480] == U
    tri = ids == 2
    assert 0.97 < tri.sum() / (200 * 200 / 2) < 1.03  # the triangle's area, by pixel centres

    # fill with "tree" (key 4) inside the triangle: only its connected pixels change
    page.keyboard.press("f")
    page.keyboard.press("4")
    e.click(580, 250)
    ids = e.ids()
    assert (ids[tri] == 3).all() and not (ids[~tri] == 3).any()
    # fill the unpainted rest with background from the class picker
    page.locator(".mk-class[data-class=background]").click()
    e.click(20, 20)
    ids = e.ids()
    assert (ids != U).all()  # the erased gap joined the outside through the stroke's ends
    assert set(np.unique(ids)) == {0, 1, 3}

    # save: the label is an RGB PNG whose every pixel is exactly a class colour
    page.get_by_role("button", name="Save mask").click()
    page.wait_for_function("() => window.saved.length === 1")
    label = page.evaluate("window.saved[0]")
    assert label["colors"] == {"background": [0, 0, 0], "pagoda": [128, 0, 0], "tree": [128, 128, 0]}
    saved = _decoded(label)
    names = list(label["colors"])
    assert (_as_names(saved, names) == _as_names(ids, CLASSES)).all()
    assert "Saved" in e.status()


def test_keyboard_only(open_editor):
    e = open_editor()
    page = e.page
    kb = page.keyboard
    for _ in range(40):  # the toolbar's controls, then the photo
        kb.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('mk-stage')"):
            break
    assert page.evaluate("() => document.activeElement.matches('.mk-stage:focus-visible')")

    kb.press("Space")  # the cursor appears in the middle, saying what is there
    assert e.status() == "320, 213: unpainted."
    kb.press("3")  # sky; the brush is 16 px (1/40 of 640)
    for _ in range(5):
        kb.press("Shift+ArrowRight")  # 1% of the width = 6 px, painting along the way
    assert e.status() == "Painted sky to 350, 213: sky."
    ids = e.ids()
    assert (ids[206:221, 320:351] == 2).all() and (ids[:204] == U).all() and (ids[223:] == U).all()
    kb.press("Alt+ArrowLeft")  # one pixel
    assert e.status().startswith("349, 213")
    kb.press("Alt+ArrowRight")

    # a polygon of tree, point by point
    kb.press("4")
    kb.press("p")
    kb.press("Space")  # (350.5, 213.5)
    for _ in range(10):
        kb.press("ArrowDown")  # 1% of the height = 4 px
    kb.press("Space")  # (350.5, 253.5)
    for _ in range(10):
        kb.press("ArrowRight")
    kb.press("Space")  # (410.5, 253.5)
    kb.press("Enter")
    ids = e.ids()
    assert ids[245, 380] == 3 and ids[225, 400] == U  # inside the triangle, and beyond its long side

    # fill the unpainted rest with background from the top-left corner; undo, redo
    kb.press("f")
    kb.press("1")
    for _ in range(70):
        kb.press("ArrowLeft")  # (stops at the edge)
    for _ in range(70):
        kb.press("ArrowUp")
    assert e.status() == "0, 0: unpainted."
    kb.press("Space")
    filled = e.ids()
    assert (filled != U).all() and set(np.unique(filled)) == {0, 2, 3}
    kb.press("Control+z")
    assert (e.ids() == ids).all()
    kb.press("Control+Shift+z")
    assert (e.ids() == filled).all()

    kb.press("Enter")  # save
    page.wait_for_function("() => window.saved.length === 1")
    saved = _decoded(page.evaluate("window.saved[0]"))
    label = page.evaluate("window.saved[0]")
    assert (_as_names(saved, list(label["colors"])) == _as_names(filled, CLASSES)).all()


def test_zoomed_painting_lands_on_the_same_pixels(open_editor):
    e = open_editor()
    page = e.page
    fitted = e.canvas()["width"]
    page.evaluate("[...window.dyntrain.masks.createEditor.live][0].setSize(9)")
    page.locator(".mk-stage").focus()
    page.keyboard.press("+")
    page.keyboard.press("+")  # 1.5×, then 2×
    assert abs(e.canvas()["width"] - 2 * fitted) < 2 and "Zoom 2×" in e.status()
    # the stage scrolls inside its frame; paint a pixel near the photo's centre, then the corner
    target = (330, 200)
    page.locator(".mk-stage-wrap").evaluate("(w) => { w.scrollLeft = w.scrollWidth / 2 - w.clientWidth / 2; "
                                            "w.scrollTop = w.scrollHeight / 2 - w.clientHeight / 2; }")
    e.click(*target)
    ids = e.ids()
    ys, xs = np.nonzero(ids == 1)
    assert abs(xs.mean() - target[0]) < 1 and abs(ys.mean() - target[1]) < 1 and len(xs) in range(55, 75)  # a 9 px disc
    page.keyboard.press("0")
    assert abs(e.canvas()["width"] - fitted) < 1


def _touch_stroke(page, points: list[tuple[float, float]]) -> None:
    """A finger drawn across the screen (Chrome DevTools touch events: pointer events of type touch)."""
    cdp = page.context.new_cdp_session(page)
    kinds = ["touchStart"] + ["touchMove"] * (len(points) - 1)
    for kind, (x, y) in zip(kinds, points):
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_a_finger_paints_on_a_phone_without_scrolling_the_page(open_editor):
    e = open_editor(PHONE)
    page = e.page
    r = e.canvas()
    assert r["width"] <= PHONE["width"]  # the photo fits the phone's screen
    page.evaluate("[...window.dyntrain.masks.createEditor.live][0].setSize(12)")
    scroll = page.evaluate("() => window.scrollY")
    _touch_stroke(page, [e.screen(100 + 20 * k, 200) for k in range(21)])  # x 100 → 500 along y = 200
    ids = e.ids()
    assert (ids[200, 110:490] == 1).all() and (ids[190, :] == U).all() and (ids[210, :] == U).all()
    assert page.evaluate("() => window.scrollY") == scroll
    # the toolbar is usable by finger too: a tap picks the eraser (after a moment, as a person's
    # would come: Chromium takes a tap right after a quick swipe as the swipe's end, not a click)
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Eraser").tap()
    page.wait_for_function("() => document.querySelector('.mk-stage').dataset.tool === 'eraser'")  # the tap's click
    _touch_stroke(page, [e.screen(300, 150 + 10 * k) for k in range(11)])
    assert (e.ids()[195:206, 297:304] == U).all()
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Undo").tap()
    page.wait_for_function("() => document.querySelector('.mk-status').textContent === 'Undone.'")
    assert (e.ids() == ids).all()


# --- the pages, on a real server -------------------------------------------------------------


def _photo_jpeg() -> bytes:
    import io

    from PIL import Image
    from sklearn.datasets import load_sample_image

    buf = io.BytesIO()
    Image.fromarray(load_sample_image("china.jpg")).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _stored_mask(api, project: str, sample: dict) -> np.ndarray:
    """A sample's stored mask as the API serves it, decoded with codecs.masks, in names."""
    a = sample["annotation"]
    r = api.get(f"/projects/{project}/samples/{sample['id']}/blobs/{a['mask']}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    return _as_names(mk.decode_png(r.content, a["classes"], image_size=(PHOTO_W, PHOTO_H)), a["classes"])


def test_data_page_adds_edits_and_stores_exactly_the_painted_mask(live_server, browser):
    import httpx

    api = httpx.Client(base_url=live_server.url + "/api/v1", timeout=60)
    r = api.post("/projects", json={"name": "temple", "task": "semantic-segmentation"})
    assert r.status_code == 201, r.text
    e = Editor.open(browser, f"{live_server.url}/projects/temple")
    page = e.page
    page.set_input_files("#mk-files", files=[{"name": "china.jpg", "mimeType": "image/jpeg", "buffer": _photo_jpeg()}])
    e.ready()
    assert page.locator("#mk-dialog[open]").count() == 1

    # a save the server refuses (nothing painted) shows its reason, keeps the editor open, adds nothing
    page.get_by_role("button", name="Add photo", exact=True).click()
    page.wait_for_function("() => document.querySelector('.mk-status').textContent.startsWith('Not saved')")
    assert "no labelled pixel" in e.status(), e.status()
    assert page.locator(".mk-editor").get_attribute("data-refused") == "422"
    assert page.locator("#mk-dialog[open]").count() == 1
    assert api.get("/projects/temple/samples").json()["total"] == 0
    e.problems[:] = [p for p in e.problems if "422" not in p]  # that refusal was the point

    # a new class, painted with the brush; a polygon of another; the rest background
    page.fill(".mk-new-name", "roof")
    page.keyboard.press("Enter")
    assert e.classes() == ["background", "roof"]
    page.evaluate("[...window.dyntrain.masks.createEditor.live][0].setSize(30)")
    e.stroke((60, 60), (250, 60), (250, 120))
    page.fill(".mk-new-name", "sky")
    page.keyboard.press("Enter")
    page.keyboard.press("p")
    for x, y in ((400, 10), (630, 10), (630, 150), (400, 150), (401, 11)):
        e.click(x, y)
    page.get_by_role("button", name="Unpainted → background").click()
    painted = _as_names(e.ids(), e.classes())
    assert set(np.unique(painted)) == {"background", "roof", "sky"}
    page.get_by_role("button", name="Add photo", exact=True).click()
    page.wait_for_selector("#mk-dialog", state="hidden")
    page.wait_for_selector(".mk-card canvas.mk-overlay[data-drawn=yes]")  # the card shows the stored mask

    # ... at thumbnail size, in the classes' colours, background clear
    card = page.locator(".mk-card canvas.mk-overlay")
    assert card.evaluate("(c) => [c.width, c.height]") == [320, 214]
    sky, ground = card.evaluate("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                                " const at = (x, y) => Array.from(d.slice((y * c.width + x) * 4, (y * c.width + x) * 4 + 4));"
                                " return [at(258, 40), at(150, 200)]; }")
    assert sky == [0, 128, 0, 255] and ground[3] == 0  # photo pixels (516, 80): sky; (300, 400): background

    [sample] = api.get("/projects/temple/samples").json()["items"]
    assert sample["annotation"]["classes"] == ["background", "roof", "sky"]
    assert (_stored_mask(api, "temple", sample) == painted).all()  # every pixel, exactly

    # the card opens the stored mask in the editor; an erased stroke is saved as unlabelled
    page.locator(".mk-card [data-edit-mask]").first.click()
    e.ready()
    assert (_as_names(e.ids(), e.classes()) == painted).all()
    page.keyboard.press("e")  # the editor has the keyboard as it opens
    assert e.status().startswith("Eraser") and "size 16 px" in e.status()  # 1/40 of the photo's longer side
    e.stroke((100, 300), (500, 300))
    repainted = _as_names(e.ids(), e.classes())
    assert (repainted[293:307, 110:490] == "?").all()  # "?" is unlabelled in _as_names
    assert (repainted[285:292, 110:490] != "?").all() and (repainted[309:315, 110:490] != "?").all()
    page.get_by_role("button", name="Save mask").click()
    page.wait_for_selector("#mk-dialog", state="hidden")
    [sample] = api.get("/projects/temple/samples").json()["items"]
    assert (_stored_mask(api, "temple", sample) == repainted).all()
    assert len(api.get("/projects/temple/dataset-versions").json()) == 2  # the repainting is a new version

    # opened and saved untouched: nothing changes, no new version
    page.locator(".mk-card [data-edit-mask]").first.click()
    e.ready()
    page.get_by_role("button", name="Save mask").click()
    page.wait_for_selector("#mk-dialog", state="hidden")
    assert "Nothing changed" in page.inner_text("#data-msg")
    assert len(api.get("/projects/temple/dataset-versions").json()) == 2

    # deleting a class keeps the photo and leaves its pixels unpainted (the page says so first)
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.locator("summary[aria-label='Rename roof']").click()
    page.get_by_role("button", name="Delete class (its pixels become unpainted)").click()
    page.wait_for_function("() => !document.querySelector('[data-rename=roof]')")
    assert "pixels become unpainted on 1 photo; the photos stay" in asked[0]
    assert page.inner_text(".mk-card-caption") == "sky"
    page.locator(".mk-card [data-edit-mask]").first.click()
    e.ready()
    assert e.classes() == ["background", "sky"]
    without = np.where(repainted == "roof", "?", repainted)
    assert (_as_names(e.ids(), e.classes()) == without).all()
    page.keyboard.press("Escape")
    page.wait_for_selector("#mk-dialog", state="hidden")
    page.context.close()
    assert not e.problems, e.problems


# --- the Try page, with a model in service -----------------------------------------------------

# Chromium's stand-in camera (a moving test pattern) and no permission prompt: the camera helper
# (app.js camera()) runs for real.
CAMERA_FLAGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
FAST = {"train_delay_s": 0.3, "train_max_delay_s": 5, "time_budget_s": 20}


def _b64png(mask: np.ndarray, names: list[str]) -> str:
    return base64.b64encode(mk.encode_png(mask, names)).decode()


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server (SQLite, scheduler on) whose project has a segmentation model in service, trained
    by the loop itself on 8 synthetic scenes of real photos (~1 min on 2 busy cores); and two
    scenes it has not seen."""
    import httpx

    from dyntrain.api import create_app
    from dyntrain.kernel.config import Settings
    from dyntrain.kernel.core import Core
    from dyntrain.ops.scenes import make_scenes
    from tests.conftest import LiveServer, wait_for

    tmp = tmp_path_factory.mktemp("masks-served")
    core = Core.create(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'dyntrain.db'}", seed_demo=False,
                                scheduler_enabled=True, scheduler_poll_s=0.2))
    scenes = make_scenes(10, classes=2, size=(256, 192), seed=5)
    train, new = scenes[:8], scenes[8:]
    names = ["background", *train[0].class_names]
    try:
        with LiveServer(create_app(core=core)) as server:
            api = httpx.Client(base_url=server.url + "/api/v1", timeout=120)
            assert api.post("/projects", json={"name": "scenes", "task": "semantic-segmentation",
                                               "settings": FAST}).status_code == 201
            r = api.post("/projects/scenes/samples", files=[("files", (f"s{i}.png", _png(s.image))) for i, s in enumerate(train)],
                         data={"labels": [json.dumps({"mask": _b64png(s.mask, names), "classes": names}) for s in train]})
            assert r.status_code == 201, r.text
            jobs = wait_for(lambda: [j for j in api.get("/projects/scenes/jobs").json()
                                     if j["status"] in ("succeeded", "failed")], timeout=600)
            assert jobs[0]["status"] == "succeeded", jobs
            assert api.get("/projects/scenes/models").json()[0]["aliases"] == ["production"]
            yield server, api, new
    finally:
        core.db.dispose()


@pytest.mark.slow
def test_try_page_overlays_the_served_mask_and_sends_a_correction(served, browser):
    server, api, new = served
    e = Editor.open(browser, f"{server.url}/projects/scenes/try")
    page = e.page
    photo = new[0].image
    h, w = photo.shape[:2]
    page.set_input_files("#try-file", files=[{"name": "new.png", "mimeType": "image/png", "buffer": _png(photo)}])
    page.wait_for_selector("#try-answer:not([hidden])")
    assert "version 1" in page.inner_text("#try-meta")
    # the model's mask over the photo, at the photo's own resolution, exactly where the photo is
    canvas = page.locator("#try-frame canvas.mk-overlay")
    assert canvas.evaluate("(c) => [c.width, c.height]") == [w, h]
    box, img = canvas.bounding_box(), page.locator("#try-preview").bounding_box()
    assert all(abs(box[k] - img[k]) < 1 for k in ("x", "y", "width", "height")), (box, img)
    # some of it painted (the scene's objects), with the answer's class colours
    alpha = canvas.evaluate("(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                            " let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n / (c.width * c.height); }")
    answer = page.evaluate("() => window.dyntrain.lastPrediction")
    painted = sum(f for c, f in answer["areas"].items() if c != "background")
    assert painted > 0.02 and abs(alpha - painted) < 0.01, (alpha, answer["areas"])
    # the opacity slider fades it; the areas are listed and said in words
    page.locator("#try-opacity").fill("20")
    assert canvas.evaluate("(c) => getComputedStyle(c).opacity") == "0.2"
    assert page.locator("#try-areas li").count() == len(answer["areas"])  # every class the model knows
    top = max((c for c in answer["areas"] if c != "background"), key=answer["areas"].get)
    assert page.inner_text("#try-label").startswith(f"{top} covers ")

    # "Correct this": the editor starts from the model's mask; a repainted corner goes back as feedback
    page.get_by_role("button", name="Correct this mask and add to training…").click()
    e.page.wait_for_function("() => window.dyntrain.masks.createEditor.live.size > 0")
    e.page.evaluate("Promise.all([...window.dyntrain.masks.createEditor.live].map((x) => x.ready))")
    start = page.evaluate("""() => { const ed = [...window.dyntrain.masks.createEditor.live][0];
                                     return [Array.from(ed.value().slice(0, 50)), ed.classes()]; }""")
    page.locator(".mk-class[data-class=background]").click()
    page.keyboard.press("f")
    page.evaluate("() => [...window.dyntrain.masks.createEditor.live][0].setTool('brush')")
    page.evaluate("() => [...window.dyntrain.masks.createEditor.live][0].setSize(40)")
    r = page.locator(".mk-stage canvas.mk-mask").bounding_box()
    page.mouse.move(r["x"] + 2, r["y"] + 2)
    page.mouse.down()
    page.mouse.move(r["x"] + r["width"] / 3, r["y"] + 2, steps=5)
    page.mouse.up()
    corrected = page.evaluate("() => Array.from([...window.dyntrain.masks.createEditor.live][0].value())")
    corrected = np.array(corrected, np.uint8).reshape(h, w)
    assert start[1][0] == "background" and (corrected[:10, :30] == 0).all()
    before = len(api.get("/projects/scenes/dataset-versions").json())
    page.get_by_role("button", name="Add to training with this mask").click()
    page.wait_for_selector("#mk-dialog", state="hidden")
    assert "added to the training examples" in page.inner_text("#try-msg")
    versions = api.get("/projects/scenes/dataset-versions").json()
    assert len(versions) == before + 1
    sample = api.get("/projects/scenes/samples", params={"limit": 100}).json()["items"]
    sample = max(sample, key=lambda s: s["id"])
    stored = mk.decode_png(api.get(f"/projects/scenes/samples/{sample['id']}/blobs/{sample['annotation']['mask']}").content,
                           sample["annotation"]["classes"])
    assert (_as_names(stored, sample["annotation"]["classes"]) == _as_names(corrected, start[1])).all()
    page.context.close()
    assert not e.problems, e.problems


@pytest.mark.slow
def test_the_camera_photo_goes_to_the_model(served, browser):
    """The one camera helper, on the segmentation try page: Chromium's stand-in camera."""
    from tests.web.conftest import CHROMIUM

    server, _, _ = served
    # a second Chromium from the same Playwright, with the stand-in camera
    b = browser.browser_type.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                    "--disable-background-networking", *CAMERA_FLAGS])
    try:
        e = Editor(b.new_page(), [])
        page = e.page
        page.on("pageerror", lambda err: e.problems.append(f"page error: {err}"))
        page.goto(f"{server.url}/projects/scenes/try")
        page.get_by_role("button", name="Use the camera").click()
        page.wait_for_selector("#camera:not([hidden])")
        page.wait_for_function("() => document.querySelector('#camera-video').videoWidth > 0")
        page.get_by_role("button", name="Take photo").click()
        page.wait_for_selector("#try-answer:not([hidden])")
        size = page.locator("#try-frame canvas.mk-overlay").evaluate("(c) => [c.width, c.height]")
        video = page.evaluate("() => [document.querySelector('#camera-video').videoWidth, document.querySelector('#camera-video').videoHeight]")
        assert size == video  # the snapshot, at the camera's size, went to the model and came back as a mask
        page.get_by_role("button", name="Close camera").click()
        assert page.locator("#camera").is_hidden()
        assert page.evaluate("() => document.querySelector('#camera-video').srcObject") is None
        assert not e.problems, e.problems
    finally:
        b.close()


@pytest.mark.slow
def test_run_page_reports_miou_classes_and_worst_photos(served, browser):
    server, api, _ = served
    [job] = [j for j in api.get("/projects/scenes/jobs").json() if j["status"] == "succeeded" and j["dataset_version"] == 1]
    metrics = api.get(f"/runs/{job['run_id']}").json()["result"]["metrics"]
    e = Editor.open(browser, f"{server.url}/projects/scenes/runs/{job['run_id']}")
    page = e.page
    facts = page.locator("section[aria-labelledby=words-h] dl.facts").inner_text()
    assert f"{round(100 * metrics['miou'])}%" in facts and "95%" in facts
    rows = page.locator("section[aria-labelledby=classes-h] tbody tr")
    assert rows.count() == len(metrics["per_class"])
    assert rows.first.locator("th").inner_text() == "background"
    said = page.locator("ul.sentences li").all_inner_texts()
    assert said and all(s.startswith("Covers ") for s in said), said
    # the worst photos: truth, prediction and difference, each a real picture
    pictures = page.locator(".mk-examples .mk-triple img")
    assert pictures.count() == 3 * len(metrics["worst"]) > 0
    assert all(pictures.nth(i).evaluate("(i) => i.complete && i.naturalWidth > 0") for i in range(pictures.count()))
    tops = [pictures.nth(i).bounding_box()["y"] for i in range(3)]
    assert max(tops) - min(tops) < 1, tops  # side by side on a desktop screen (masks.css is on the page)
    page.context.close()
    assert not e.problems, e.problems


@pytest.mark.slow
def test_a_new_photo_starts_from_the_served_models_mask(served, browser):
    server, api, new = served
    photo = new[1].image
    r = api.post("/projects/scenes/predict", files=[("files", ("n.png", _png(photo)))])
    p = r.json()["predictions"][0]
    predicted = _as_names(mk.decode_png(base64.b64decode(p["mask"]), p["classes"]), p["classes"])
    e = Editor.open(browser, f"{server.url}/projects/scenes")
    page = e.page
    page.set_input_files("#mk-files", files=[{"name": "new.png", "mimeType": "image/png", "buffer": _png(photo)}])
    e.ready()
    page.wait_for_function("() => document.querySelector('#mk-dialog-note').textContent.includes('painted this')")
    assert "covers" in page.inner_text("#mk-dialog-note")  # what it painted, in words
    assert (_as_names(e.ids(), e.classes()) == predicted).all()  # pre-annotation: the model's mask, exactly
    # Undo takes the suggestion away (an empty mask); Redo brings it back; accepted as it is
    page.get_by_role("button", name="Undo").click()
    assert (e.ids() == U).all()
    page.get_by_role("button", name="Redo").click()
    page.get_by_role("button", name="Add photo", exact=True).click()
    page.wait_for_selector("#mk-dialog", state="hidden")
    sample = max(api.get("/projects/scenes/samples", params={"limit": 100}).json()["items"], key=lambda s: s["id"])
    a = sample["annotation"]
    stored = mk.decode_png(api.get(f"/projects/scenes/samples/{sample['id']}/blobs/{a['mask']}").content, a["classes"])
    assert (_as_names(stored, a["classes"]) == predicted).all()
    page.context.close()
    assert not e.problems, e.problems
