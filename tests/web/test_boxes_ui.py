"""The box annotation editor (static/boxes.js) in headless Chromium: draw, move, resize and
delete boxes with the mouse, a keyboard-only pass, the model's suggestions, and a finger on a
390×844 phone, with no console errors. The widget runs on a small page served from a temporary
folder (the real boxes.js, boxes.css and style.css next to a real photo from scikit-learn)."""

from __future__ import annotations

import functools
import json
import http.server
import shutil
import threading
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "src" / "dyntrain" / "web" / "static"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CLASSES = ["pagoda", "sky", "tree"]
PHOTO_W, PHOTO_H = 640, 427  # china.jpg

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Box editor</title><link rel="icon" href="data:,"><link rel="stylesheet" href="style.css"><link rel="stylesheet" href="boxes.css" data-boxes-css></head>
<body><main><h1>Box editor</h1><button type="button" id="before">Before</button>
<div id="host"></div><button type="button" id="after">After</button></main>
<script src="boxes.js"></script><script src="harness.js"></script></body></html>
"""

# The page's use of the widget: boxes and suggestions from the query string; what it saves and
# how often it was cancelled are kept for the test to read.
_HARNESS = """"use strict";
const params = new URLSearchParams(location.search);
window.saved = [];
window.cancelled = 0;
window.editor = window.dyntrain.boxes.createEditor(document.getElementById("host"), {
  src: "photo.jpg", title: "the test photo", classes: JSON.parse(params.get("classes") || "[]"),
  boxes: JSON.parse(params.get("boxes") || "[]"), suggestions: JSON.parse(params.get("suggestions") || "[]"),
  onSave: (boxes) => { window.saved.push(boxes); },
  onCancel: () => { window.cancelled += 1; },
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

    root = tmp_path_factory.mktemp("boxes-site")
    for name in ("boxes.js", "boxes.css", "style.css"):
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


class Page:
    """One browser page on the widget, with everything that went wrong on it."""

    def __init__(self, browser, base: str, viewport=DESKTOP, **query):
        import json
        from urllib.parse import urlencode

        phone = viewport["width"] < 500
        self.context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status} {r.url}"))
        query = {"classes": CLASSES, **query}
        self.page.goto(f"{base}/index.html?" + urlencode({k: json.dumps(v) for k, v in query.items()}))
        self.page.evaluate("window.editor.ready.then(() => true)")

    def value(self) -> list[dict]:
        return self.page.evaluate("window.editor.value()")

    def suggestions(self) -> list[dict]:
        return self.page.evaluate("window.editor.suggestions()")

    def image(self) -> dict:
        return self.page.locator(".bx-stage img").bounding_box()

    def scale(self) -> float:
        """Original pixels per screen pixel."""
        return PHOTO_W / self.image()["width"]

    def screen(self, x: float, y: float) -> tuple[float, float]:
        """The screen point of original pixel (x, y)."""
        r = self.image()
        return r["x"] + x / self.scale(), r["y"] + y / self.scale()

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        m = self.page.mouse
        m.move(*start)
        m.down()
        m.move(*end, steps=steps)
        m.up()

    def status(self) -> str:
        return self.page.locator(".bx-status").inner_text()

    def focused_stage(self) -> bool:
        return self.page.evaluate("document.activeElement === document.querySelector('.bx-stage')")


@pytest.fixture
def open_page(browser, site):
    opened: list[Page] = []

    def open_(viewport=DESKTOP, **query) -> Page:
        p = Page(browser, site, viewport, **query)
        opened.append(p)
        return p

    yield open_
    problems = [x for p in opened for x in p.problems]
    for p in opened:
        p.context.close()
    assert not problems, problems


def near(box: dict, **expected) -> None:
    """Each coordinate within 2 original pixels (one screen pixel is ~0.7 here, plus rounding)."""
    for k, v in expected.items():
        assert abs(box[k] - v) <= 2, (k, box, expected)


def test_draw_move_resize_and_delete_with_the_mouse(open_page):
    p = open_page()
    page = p.page
    # the box layer lies exactly over the image, so a box drawn on screen lands on its pixels
    layer = page.locator(".bx-layer").bounding_box()
    img = p.image()
    assert all(abs(layer[k] - img[k]) < 1 for k in ("x", "y", "width", "height")), (layer, img)

    p.drag(p.screen(100, 80), p.screen(300, 230))
    [box] = p.value()
    assert box["label"] == "pagoda"  # the first class until another is picked
    near(box, x=100, y=80, w=200, h=150)
    assert page.locator(".bx-box.bx-selected .bx-handle").count() == 8

    # move: drag the box's middle by 40, 30 original pixels
    p.drag(p.screen(200, 155), p.screen(240, 185))
    [box] = p.value()
    near(box, x=140, y=110, w=200, h=150)

    # resize: the bottom-right handle out by 60 × 40, then the left handle in by 30
    se = page.locator(".bx-h-se").bounding_box()
    start = (se["x"] + se["width"] / 2, se["y"] + se["height"] / 2)
    p.drag(start, (start[0] + 60 / p.scale(), start[1] + 40 / p.scale()))
    [box] = p.value()
    near(box, x=140, y=110, w=260, h=190)
    w = page.locator(".bx-h-w").bounding_box()
    start = (w["x"] + w["width"] / 2, w["y"] + w["height"] / 2)
    p.drag(start, (start[0] + 30 / p.scale(), start[1]))
    [box] = p.value()
    near(box, x=170, y=110, w=230, h=190)
    # dragging an edge past the opposite one turns the box over instead of giving it a negative size
    e = page.locator(".bx-h-e").bounding_box()
    start = (e["x"] + e["width"] / 2, e["y"] + e["height"] / 2)
    p.drag(start, (start[0] - 330 / p.scale(), start[1]))
    [box] = p.value()
    near(box, x=70, y=110, w=100, h=190)
    assert box["w"] > 0

    # boxes never leave the image: a move far past the corner stops at it
    p.drag(p.screen(120, 200), p.screen(-300, -300))
    near(p.value()[0], x=0, y=0, w=100, h=190)

    # the class picker relabels the selected box (and Ctrl+Z undoes it) ...
    page.select_option(".bx-class", "sky")
    assert p.value()[0]["label"] == "sky"
    page.focus(".bx-stage")
    page.keyboard.press("Control+z")
    assert p.value()[0]["label"] == "pagoda"
    # ... and with nothing selected (a click on the empty image), says what the next box is
    page.mouse.click(*p.screen(350, 20))
    assert page.locator(".bx-selected").count() == 0
    page.select_option(".bx-class", "sky")
    p.drag(p.screen(400, 250), p.screen(600, 400))
    assert [b["label"] for b in p.value()] == ["pagoda", "sky"]
    # a click on the empty image selects nothing and draws nothing
    page.mouse.click(*p.screen(350, 20))
    assert len(p.value()) == 2 and page.locator(".bx-selected").count() == 0

    # click a box to select it, Delete removes it, Ctrl+Z brings it back, Backspace removes it
    page.mouse.click(*p.screen(500, 320))
    page.keyboard.press("Delete")
    assert [b["label"] for b in p.value()] == ["pagoda"]
    page.keyboard.press("Control+z")
    assert [b["label"] for b in p.value()] == ["pagoda", "sky"]
    page.mouse.click(*p.screen(30, 100))
    page.keyboard.press("Backspace")
    assert [b["label"] for b in p.value()] == ["sky"]
    # the list under the image offers the same: delete the last box from it
    page.get_by_role("button", name="Delete box 1 (sky)").click()
    assert p.value() == []
    assert "No boxes left" in p.status()

    # a slip (a box thinner than 2 pixels) is not kept
    p.drag(p.screen(50, 50), p.screen(50.4, 300), steps=4)
    assert p.value() == []


def test_keyboard_only(open_page):
    p = open_page()
    page = p.page
    kb = page.keyboard
    page.focus("#before")
    for _ in range(10):  # the toolbar's controls, then the image
        kb.press("Tab")
        if p.focused_stage():
            break
    assert p.focused_stage()
    assert page.evaluate("document.activeElement.matches(':focus-visible')")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"

    kb.press("n")  # a box in the middle, a quarter of the image
    near(p.value()[0], x=240, y=160, w=160, h=107)
    kb.press("2")
    assert p.value()[0]["label"] == "sky"
    for _ in range(3):
        kb.press("ArrowRight")  # 1% of the width = 6 px each
    kb.press("ArrowDown")  # 1% of the height = 4 px
    kb.press("Alt+ArrowLeft")  # 1 px
    kb.press("Shift+ArrowRight")  # 6 px wider
    kb.press("Shift+Alt+ArrowDown")  # 1 px taller
    assert p.value()[0] == {"label": "sky", "x": 257, "y": 164, "w": 166, "h": 108}

    kb.press("N")
    kb.press("3")
    kb.press("Shift+ArrowLeft")
    assert [b["label"] for b in p.value()] == ["sky", "tree"]
    assert p.value()[1]["w"] == 154

    # Tab goes from box to box and, after the last one, out of the image
    kb.press("Tab")
    assert not p.focused_stage()
    assert page.locator(".bx-selected").count() == 0
    kb.press("Shift+Tab")
    assert p.focused_stage()
    kb.press("Tab")
    assert "Box 1 of 2: sky" in p.status()
    kb.press("Tab")
    assert "Box 2 of 2: tree" in p.status()
    kb.press("Delete")
    assert [b["label"] for b in p.value()] == ["sky"]
    kb.press("Control+z")
    assert [b["label"] for b in p.value()] == ["sky", "tree"]
    kb.press("Control+Shift+z")
    assert [b["label"] for b in p.value()] == ["sky"]
    kb.press("Control+z")

    # a new class from the picker, by keyboard alone: Shift+Tab back through the boxes and out of
    # the image to the picker, whose last entry is "New class…"
    for _ in range(10):
        kb.press("Shift+Tab")
        if page.evaluate("document.activeElement.classList.contains('bx-class')"):
            break
    assert page.locator(".bx-selected").count() == 0
    kb.press("End")
    assert page.locator(".bx-new-name").evaluate("e => e === document.activeElement")
    kb.type("pagoda roof")
    kb.press("Enter")
    assert p.focused_stage()
    assert page.locator(".bx-class option").all_inner_texts()[3] == "4. pagoda roof"
    kb.press("n")
    assert [b["label"] for b in p.value()] == ["sky", "tree", "pagoda roof"]

    kb.press("Enter")  # save
    assert page.evaluate("window.saved") == [p.value()]
    assert "Saved 3 boxes" in p.status()
    kb.press("Escape")
    assert page.evaluate("window.cancelled") == 1


def test_suggestions_accept_and_reject(open_page):
    suggestions = [{"label": "pagoda", "confidence": 0.87, "x": 60, "y": 30, "w": 230, "h": 330},
                   {"label": "tree", "confidence": 0.41, "x": 420, "y": 200, "w": 120, "h": 150},
                   {"label": "sky", "confidence": 0.66, "x": 330, "y": 10, "w": 280, "h": 120}]
    boxes = [{"label": "tree", "x": 500.25, "y": 300.5, "w": 80.75, "h": 90}]
    p = open_page(suggestions=suggestions, boxes=boxes)
    page = p.page
    shown = page.locator(".bx-box.bx-suggested")
    assert shown.count() == 3
    assert shown.first.evaluate("e => getComputedStyle(e).borderTopStyle") == "dashed"
    assert page.locator(".bx-box:not(.bx-suggested)").evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    assert shown.first.inner_text() == "pagoda 87%"
    # suggestions are not boxes until accepted; the boxes the image had keep their exact numbers
    assert p.value() == boxes
    assert page.evaluate("window.editor.changed()") is False

    page.get_by_role("button", name="Accept suggestion 2 (pagoda)").click()
    assert [b["label"] for b in p.value()] == ["tree", "pagoda"]
    page.get_by_role("button", name="Reject suggestion 3 (tree)").click()
    assert [s["label"] for s in p.suggestions()] == ["sky"]
    # moving a suggestion accepts it where it was put
    p.drag(p.screen(470, 70), p.screen(470, 100))
    assert p.suggestions() == []
    near(p.value()[2], x=330, y=40, w=280, h=120)
    assert page.locator(".bx-suggested").count() == 0
    page.keyboard.press("Control+z")  # the move and the acceptance go back together
    assert [s["label"] for s in p.suggestions()] == ["sky"]
    page.get_by_role("button", name="Accept all 1 suggestion").click()
    assert p.suggestions() == [] and len(p.value()) == 3
    page.get_by_role("button", name="Save boxes").click()
    [saved] = page.evaluate("window.saved")
    assert [set(b) for b in saved] == [{"label", "x", "y", "w", "h"}] * 3  # no confidence in what is saved

    # by keyboard: Tab to a suggestion, A accepts it, Delete rejects the next one
    p2 = open_page(suggestions=suggestions)
    p2.page.focus(".bx-stage")
    p2.page.keyboard.press("Tab")
    p2.page.keyboard.press("a")
    p2.page.keyboard.press("Tab")
    p2.page.keyboard.press("Delete")
    assert [b["label"] for b in p2.value()] == ["pagoda"]
    assert [s["label"] for s in p2.suggestions()] == ["sky"]
    p2.page.keyboard.press("Shift+A")
    assert [b["label"] for b in p2.value()] == ["pagoda", "sky"]


def test_unnamed_boxes_are_not_saved(open_page):
    """The first box of a project without classes asks for its class, and saving waits for it."""
    p = open_page(classes=[])
    page = p.page
    p.drag(p.screen(100, 100), p.screen(200, 200))
    assert page.locator(".bx-new-name").evaluate("e => e === document.activeElement")
    page.keyboard.press("Escape")  # leave the name for now
    page.focus(".bx-stage")
    page.keyboard.press("Enter")
    assert page.evaluate("window.saved") == []
    assert "Give every box a class" in p.status()
    page.select_option(".bx-class", "\u0000new")
    page.fill(".bx-new-name", "mug/cup")
    page.keyboard.press("Enter")
    assert "cannot hold" in p.status()
    page.fill(".bx-new-name", "mug")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert [[b["label"] for b in s] for s in page.evaluate("window.saved")] == [["mug"]]


def _touch_drag(page, start, end, steps: int = 8) -> None:
    """A one-finger drag through Chromium's touch input (what a phone sends)."""
    cdp = page.context.new_cdp_session(page)
    (x0, y0), (x1, y1) = start, end
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
    for i in range(1, steps + 1):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
            {"x": x0 + (x1 - x0) * i / steps, "y": y0 + (y1 - y0) * i / steps}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_phone_touch_without_sideways_scrolling(open_page):
    p = open_page(PHONE)
    page = p.page
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    img = p.image()
    assert img["x"] >= 0 and img["x"] + img["width"] <= PHONE["width"]
    page.locator(".bx-stage").scroll_into_view_if_needed()
    scrolled = page.evaluate("window.scrollY")
    _touch_drag(page, p.screen(100, 80), p.screen(300, 230))
    assert page.evaluate("window.scrollY") == scrolled  # the finger drew; the page did not scroll
    [box] = p.value()
    near(box, x=100, y=80, w=200, h=150)
    _touch_drag(page, p.screen(200, 150), p.screen(260, 190))
    near(p.value()[0], x=160, y=120, w=200, h=150)
    # the handles are finger-sized: at least 30 css px including their invisible margin
    size = page.locator(".bx-h-se").evaluate("e => { const r = getComputedStyle(e, '::after'); "
                                             "return e.getBoundingClientRect().width - 2 * parseFloat(r.left); }")
    assert size >= 30
    se = page.locator(".bx-h-se").bounding_box()
    start = (se["x"] + se["width"] / 2, se["y"] + se["height"] / 2)
    _touch_drag(page, start, (start[0] + 20, start[1] + 20))
    assert p.value()[0]["w"] > 200
    page.get_by_role("button", name="Delete box", exact=True).tap()
    assert p.value() == []
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


# -- end to end on a real object-detection project ---------------------------------------------

_EDITOR = "[...window.dyntrain.boxes.createEditor.live][0]"


def _png(scene) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(scene.image).save(out, "PNG")
    return out.getvalue()


class _Dialog:
    """The box editor open in a project page's dialog."""

    def __init__(self, page):
        self.page = page
        page.wait_for_selector("#bx-dialog[open] .bx-stage img")
        page.evaluate(f"{_EDITOR}.ready.then(() => true)")

    def screen(self, x: float, y: float) -> tuple[float, float]:
        r = self.page.locator("#bx-dialog .bx-stage img").bounding_box()
        size = self.page.evaluate(f"{_EDITOR}.size()")
        return r["x"] + x * r["width"] / size["width"], r["y"] + y * r["height"] / size["height"]

    def drag(self, a, b) -> None:
        m = self.page.mouse
        m.move(*self.screen(*a))
        m.down()
        m.move(*self.screen(*b), steps=8)
        m.up()


@pytest.mark.slow
def test_edit_and_add_boxes_on_a_real_project(browser, live_server):
    """A detection project made through the API: move a box and draw one of a new class in the
    browser, add an image with its boxes drawn before upload; the API then holds exactly those
    boxes in new dataset versions, on desktop and on a phone, without console errors."""
    import httpx

    from dyntrain.ops.scenes import make_scenes

    base, api = live_server.url, f"{live_server.url}/api/v1/projects"
    httpx.post(api, json={"name": "shelf", "task": "object-detection", "settings": {"auto_train": False}}).raise_for_status()
    scenes = [s for s in make_scenes(12, classes=3, size=(320, 240), seed=3) if s.boxes][:3]
    ids = []
    for i, s in enumerate(scenes[:2]):
        r = httpx.post(f"{api}/shelf/samples", files={"files": (f"scene-{i}.png", _png(s), "image/png")},
                       data={"label": json.dumps(s.boxes)})
        r.raise_for_status()
        ids.append(r.json()["samples"][0]["id"])
    versions = len(httpx.get(f"{api}/shelf/dataset-versions").json())

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(f"{base}/projects/shelf")
    page.wait_for_load_state("networkidle")
    # every image is shown with every one of its boxes drawn over it
    assert page.locator(".bx-card").count() == 2
    for sample_id, s in zip(ids, scenes):
        assert page.locator(f'li[data-sample="{sample_id}"] .bx-box').count() == len(s.boxes)

    # move the first box by (20, 10) and draw a box of a new class, then save with Enter
    before = httpx.get(f"{api}/shelf/samples/{ids[0]}").json()["annotation"]
    page.locator(f'li[data-sample="{ids[0]}"] .bx-thumb').click()
    d = _Dialog(page)
    first = page.evaluate(f"{_EDITOR}.value()")[0]
    middle = (first["x"] + first["w"] / 2, first["y"] + first["h"] / 2)
    d.drag(middle, (middle[0] + 20, middle[1] + 10))
    page.mouse.click(*d.screen(2, 2))  # nothing selected: the new class goes to the next box
    page.select_option("#bx-dialog .bx-class", "\u0000new")
    page.fill("#bx-dialog .bx-new-name", "cup")
    page.keyboard.press("Enter")
    top = page.locator("#bx-dialog .bx-stage img").bounding_box()["y"]
    d.drag((250, 170), (300, 220))
    # the image stays put under the pointer while the list under it grows by the new box
    assert page.locator("#bx-dialog .bx-stage img").bounding_box()["y"] == top
    page.keyboard.press("Enter")
    page.wait_for_selector("#bx-dialog", state="hidden")
    after = httpx.get(f"{api}/shelf/samples/{ids[0]}").json()["annotation"]
    assert len(after) == len(before) + 1
    [cup] = [b for b in after if b["label"] == "cup"]
    near(cup, x=250, y=170, w=50, h=50)
    moved = [b for b in after if b["label"] == first["label"] and abs(b["w"] - first["w"]) < 1 and abs(b["h"] - first["h"]) < 1]
    assert any(abs(b["x"] - first["x"] - 20) <= 2 and abs(b["y"] - first["y"] - 10) <= 2 for b in moved), (first, after)
    assert len(httpx.get(f"{api}/shelf/dataset-versions").json()) == versions + 1
    assert "cup" in [c["label"] for c in httpx.get(f"{api}/shelf/classes").json()]
    # the page refreshes its cards from the server: the new box appears on the card
    page.locator(f'li[data-sample="{ids[0]}"] .bx-box').nth(len(after) - 1).wait_for()

    # opening and saving without a change makes no new version
    page.locator(f'li[data-sample="{ids[1]}"] .bx-thumb').click()
    _Dialog(page)
    page.keyboard.press("Enter")
    page.wait_for_selector("#bx-dialog", state="hidden")
    assert len(httpx.get(f"{api}/shelf/dataset-versions").json()) == versions + 1

    # a new image: its boxes are drawn before it is uploaded (class 1 by keyboard)
    page.set_input_files("#bx-files", files=[{"name": "new.png", "mimeType": "image/png", "buffer": _png(scenes[2])}])
    d = _Dialog(page)
    d.drag((40, 40), (140, 120))
    page.keyboard.press("1")
    label = page.evaluate(f"{_EDITOR}.value()")[0]["label"]
    page.get_by_role("button", name="Add image", exact=True).click()
    page.wait_for_selector("#bx-dialog", state="hidden")
    samples = httpx.get(f"{api}/shelf/samples").json()["items"]
    [new] = [s for s in samples if s["id"] not in ids]
    assert [b["label"] for b in new["annotation"]] == [label]
    near(new["annotation"][0], x=40, y=40, w=100, h=80)
    assert len(httpx.get(f"{api}/shelf/dataset-versions").json()) == versions + 2

    # a phone: the page and the open editor fit its width
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    mobile = phone.new_page()
    mobile.on("pageerror", lambda e: problems.append(f"phone page error: {e}"))
    mobile.goto(f"{base}/projects/shelf")
    mobile.wait_for_load_state("networkidle")
    assert mobile.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    mobile.locator(f'li[data-sample="{ids[0]}"] .bx-thumb').tap()
    _Dialog(mobile)
    box = mobile.locator("#bx-dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert mobile.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    mobile.keyboard.press("Escape")
    mobile.wait_for_selector("#bx-dialog", state="hidden")
    phone.close()
    context.close()
    assert not problems, problems
