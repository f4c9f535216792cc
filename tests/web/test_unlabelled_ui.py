"""The Unlabelled page in headless Chromium: a keyboard-only pass through the labelling queue of a
trained digits project (real Lite0 training), the confirmed batch as ONE data version, no console
errors, and no sideways scroll on a 390×844 phone."""

from __future__ import annotations

import httpx
import pytest

from dyntrain.datasets.changes import Upload, add_samples
from dyntrain.datasets.unlabelled import add_unlabelled
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.kernel.projects import create_project
from dyntrain.ops.demo import digit_images
from dyntrain.scheduler import queue
from dyntrain.scheduler.jobs import run_job
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from dyntrain.api import create_app

    tmp = tmp_path_factory.mktemp("queue-ui")
    core = Core.create(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                seed_demo=False, scheduler_enabled=False))
    create_project(core, "digits", settings={"auto_train": False, "time_budget_s": 5})
    labelled = digit_images(digits=(0, 1, 7), per_class=6)
    add_samples(core, "digits", [Upload(f"{i}.png", d) for i, (_, d) in enumerate(labelled)],
                [label for label, _ in labelled])
    queue.request_training(core, "digits")
    run_job(core, queue.claim_next(core))
    waiting = digit_images(digits=(0, 1, 7), per_class=3, offset=6)
    added = add_unlabelled(core, "digits", [Upload(f"new-{i}.png", d) for i, (_, d) in enumerate(waiting)])["added"]
    truth = {s.id: label for s, (label, _) in zip(added, waiting)}
    create_project(core, "prices", task="tabular-regression")
    with LiveServer(create_app(core=core)) as live:
        yield live, truth
    core.db.dispose()


def _wait_js(page, expression: str, timeout: float = 30) -> None:
    """Poll ``expression`` in the page (page.wait_for_function would need eval, which the UI's
    Content-Security-Policy refuses)."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"{expression} stayed false for {timeout} s"
        time.sleep(0.1)


def _page(browser, viewport):
    context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500)
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    return context, page, problems


def test_keyboard_only_pass_through_the_queue(server, browser):
    live, truth = server
    api = f"{live.url}/api/v1/projects/digits"
    context, page, problems = _page(browser, {"width": 1366, "height": 900})
    page.goto(f"{live.url}/projects/digits")
    page.keyboard.press("Tab")  # the nav link is reachable from the keyboard too
    page.goto(f"{live.url}/projects/digits/unlabelled")
    page.wait_for_selector("#queue-item img")
    assert page.locator("nav.tabs a[aria-current=page]").inner_text() == "Unlabelled"
    assert page.locator("#queue-count").inner_text() == "9 left to label"
    assert page.evaluate("document.activeElement.id") == "queue-item"
    order = page.evaluate("dyntrain.queue.items.map(x => x.id)")
    first = page.evaluate("dyntrain.queue.items[0]")
    assert first["suggestion"]["label"] in {"digit-0", "digit-1", "digit-7"}
    assert page.locator("#queue-suggestion").inner_text().startswith(f"Suggestion: {first['suggestion']['label']}")
    _wait_js(page, "document.querySelector('#queue-item img').naturalWidth > 0")  # the image itself loads

    page.keyboard.press("Enter")  # accept the suggestion for item 1
    page.keyboard.press("2")  # item 2 is class 2 (digit-1)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("3")  # back on item 2: corrected to digit-7
    page.keyboard.press("s")  # item 3 skipped: it moves to the end
    _wait_js(page, f"dyntrain.queue.items[dyntrain.queue.items.length - 1].id === {order[2]}")
    picks = dict(page.evaluate("Array.from(dyntrain.queue.picks)"))
    assert picks == {order[0]: first["suggestion"]["label"], order[1]: "digit-7"}
    assert page.locator("#queue-count").inner_text() == "7 left to label · 2 picked"
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#queue-msg.ok")
    assert "Added 2 labelled images" in page.locator("#queue-msg").inner_text()
    _wait_js(page, "document.querySelector('#queue-count').textContent === '7 left to label'")

    versions = httpx.get(f"{api}/dataset-versions").json()
    assert [v["number"] for v in versions] == [2, 1] and versions[0]["size"] == 20  # the batch is ONE version
    items = {i["sample_id"]: i["label"] for i in httpx.get(f"{api}/dataset-versions/2").json()["items"]}
    assert items[order[0]] == first["suggestion"]["label"] and items[order[1]] == "digit-7"
    assert httpx.get(f"{api}/unlabelled").json()["total"] == 7
    assert problems == []
    context.close()


def test_phone_fits_and_other_projects_say_why(server, browser, screenshots):
    live, _ = server
    context, page, problems = _page(browser, {"width": 390, "height": 844})
    page.goto(f"{live.url}/projects/digits/unlabelled")
    page.wait_for_selector("#queue-item img")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "unlabelled-mobile.png"))
    # a regression project has no queue: no tab, and the page says why
    page.goto(f"{live.url}/projects/prices/unlabelled")
    assert "has no labelling queue" in page.locator("main").inner_text()
    assert page.locator("nav.tabs a", has_text="Unlabelled").count() == 0
    assert problems == []
    context.close()
