"""Live webcam mode on Try (issue 19) in headless Chromium with a fake camera
(``--use-fake-device-for-media-stream --use-fake-ui-for-media-stream``): continuous predictions
about every half second, never two frames in flight, stopped with the toggle or the camera; the
current frame captured into a class as a training sample. Desktop and phone sizes, no console
errors, no sideways scroll on the phone. Real Lite0 training, real HTTP, real SQLite."""

from __future__ import annotations

import time

import httpx
import pytest

from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.kernel.projects import create_project
from dyntrain.ops.demo import digit_images
from dyntrain.scheduler import queue
from dyntrain.scheduler.jobs import run_job
from tests.conftest import LiveServer
from tests.web.conftest import launch_chromium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from dyntrain.api import create_app

    tmp = tmp_path_factory.mktemp("live-camera")
    core = Core.create(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                seed_demo=False, scheduler_enabled=False))
    create_project(core, "digits", settings={"auto_train": False, "time_budget_s": 5})
    data = digit_images(digits=(0, 1, 7), per_class=5)
    add_samples(core, "digits", [Upload(f"{i}.png", d) for i, (_, d) in enumerate(data)], [x for x, _ in data])
    queue.request_training(core, "digits")
    run_job(core, queue.claim_next(core))
    create_project(core, "notes", task="text-classification")
    with LiveServer(create_app(core=core)) as live:
        yield live
    core.db.dispose()


@pytest.fixture(scope="module")
def camera_browser(playwright):
    """Chromium with a fake camera that the page may use without asking (from the session's driver)."""
    b = launch_chromium(playwright, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
    yield b
    b.close()


def _page(browser, viewport):
    context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500)
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    return context, page, problems


def _until(page, expression: str, timeout: float = 20) -> None:
    """Poll ``expression`` in the page (wait_for_function would need eval, which the CSP refuses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"{expression} stayed false for {timeout} s"
        time.sleep(0.1)


def _recorded(live) -> int:
    return httpx.get(f"{live.url}/api/v1/projects/digits/predictions?limit=1").json()["total"]


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_live_predictions_and_capture_into_a_class(server, camera_browser, viewport, screenshots):
    live = server
    api = f"{live.url}/api/v1/projects/digits"
    context, page, problems = _page(camera_browser, viewport)
    page.goto(f"{live.url}/projects/digits/try")
    assert page.locator("#cam-live").is_hidden()  # only while the camera is open
    page.click("#camera-start")
    page.wait_for_selector("#cam-live:visible")
    _until(page, "document.querySelector('#camera-video').videoWidth > 0")
    before = _recorded(live)

    page.check("#cam-live-toggle")
    _until(page, "dyntrain.liveCam.answered >= 5")
    answer = page.locator("#cam-live-answer").inner_text()
    assert answer.endswith("sure)") or answer.startswith("Not sure"), answer
    stats = page.evaluate("dyntrain.liveCam")
    assert stats["sent"] - stats["answered"] <= 1  # never a second frame while one is in flight
    assert min(stats["gaps"]) >= 450, stats["gaps"]  # about every half second, not faster
    page.uncheck("#cam-live-toggle")
    time.sleep(0.7)  # the frame in flight (if any) is aborted or answered
    sent = page.evaluate("dyntrain.liveCam.sent")
    time.sleep(1.2)
    assert page.evaluate("dyntrain.liveCam.sent") == sent  # off means off
    # the API has no "do not record": each live answer is a recorded prediction, as the page says
    assert _recorded(live) - before == page.evaluate("dyntrain.liveCam.answered")
    assert "kept in Predictions" in page.locator("#cam-live-note").inner_text()

    # capture the current frame into a class: a new training sample and data version
    sevens = len(httpx.get(f"{api}/samples?label=digit-7&limit=100").json()["items"])
    page.select_option("#cam-capture-class", "digit-7")
    page.click("#cam-capture")
    page.wait_for_selector("#cam-capture-msg.ok")
    assert page.locator("#cam-capture-msg").inner_text().startswith("Added to digit-7 (data version")
    assert len(httpx.get(f"{api}/samples?label=digit-7&limit=100").json()["items"]) == sevens + 1
    if viewport["width"] < 500:
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.screenshot(path=str(screenshots / "try-live-camera-mobile.png"))

    from tests.web.test_accessibility import AXE, _violations  # the same check as every other page

    assert _violations(page, AXE.read_text()) == []
    # closing the camera stops live mode and hides it
    page.check("#cam-live-toggle")
    _until(page, "dyntrain.liveCam.sent > %d" % sent)
    page.click("#camera-stop")
    page.wait_for_selector("#cam-live", state="hidden")
    assert not page.is_checked("#cam-live-toggle")
    assert problems == []
    context.close()


def test_no_live_mode_where_the_task_has_no_photos(server, camera_browser):
    context, page, problems = _page(camera_browser, {"width": 1366, "height": 900})
    page.goto(f"{server.url}/projects/notes/try")
    assert page.locator("#cam-live").count() == 0 and page.locator("#camera-start").count() == 0
    assert problems == []
    context.close()
