"""End to end in headless Chromium against a real server on 127.0.0.1 with real training:
create a project, upload two classes, watch training live, try the model, correct it,
and read a run's detail. Saves the screenshots under docs/screenshots/."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from dyntrain.ops.demo import digit_images

pytestmark = pytest.mark.slow

TRAINING_TIMEOUT_MS = 240_000  # real training on 2 shared cores: generous

_LOAD_IMAGES = """async () => {
  const imgs = [...document.images];
  imgs.forEach((i) => { i.loading = "eager"; });
  await Promise.all(imgs.map((i) => i.complete ? 0 : new Promise((r) => { i.onload = i.onerror = r; })));
}"""

_DROP_FILES = """(files) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, { type: "image/png" }));
  }
  return dt;
}"""


def _shot(page, folder, name: str) -> None:
    page.evaluate(_LOAD_IMAGES)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _register_copy_and_serve_it(core, base: str) -> None:
    """Version 2 = version 1's file registered again (as an external model) and served."""
    from dyntrain.kernel.projects import get_project
    from dyntrain.registry.models import get_model, register_model

    v1 = get_model(core, "digits", 1)
    register_model(core, get_project(core, "digits").id, core.settings.model_dir / v1.path,
                   {**v1.card, "source": "external"}, run_id=None, source="external")
    httpx.post(f"{base}/api/v1/projects/digits/models/2/promote").raise_for_status()


def _wait_js(page, expression: str, timeout: int = 30_000) -> None:
    """Like page.wait_for_function, which evaluates its expression with eval() inside the page and
    so is refused by the UI's Content-Security-Policy (no unsafe-eval): poll with page.evaluate,
    which runs through the browser's debugging protocol, outside the page's policy."""
    import time

    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise PlaywrightTimeout(f"{expression} was still false after {timeout} ms")
        time.sleep(0.1)


def _wait_training(page, base: str, expression: str, timeout: int = TRAINING_TIMEOUT_MS) -> None:
    """Wait for the page to see a training event; on timeout say what the server and page saw."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        _wait_js(page, expression, timeout=timeout)
    except PlaywrightTimeout:
        jobs = httpx.get(f"{base}/api/v1/projects/digits/jobs", params={"limit": 3}).text
        events = httpx.get(f"{base}/api/v1/projects/digits/events", params={"after": 0}).text
        seen = page.evaluate("({states: window.dyntrain.states, events: window.dyntrain.events, "
                             "progress: window.dyntrain.progress})")
        raise AssertionError(f"timed out waiting for {expression}\njobs: {jobs[:3000]}\n"
                             f"events: {events[-3000:]}\npage saw: {seen}") from None


def _tab(page, name: str):
    return page.locator("nav.tabs").get_by_role("link", name=name, exact=True)


def _files(images, prefix):
    return [{"name": f"{prefix}-{i:02d}.png", "mimeType": "image/png", "buffer": data}
            for i, (_, data) in enumerate(images)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_create_upload_watch_training_try_and_inspect(live_server, core, browser, screenshots):
    base = live_server.url
    ones = digit_images(digits=(1,), per_class=10)
    sevens = digit_images(digits=(7,), per_class=10)
    probe = digit_images(digits=(7,), per_class=1, offset=12)[0][1]
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())  # "Serve the previous version again?"
    page.set_default_timeout(20_000)

    # -- projects list: create a project ---------------------------------------------------
    page.goto(base + "/")
    page.get_by_label("Name").fill("digits")
    page.get_by_label("What should it recognise?").fill("Handwritten ones and sevens")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(base + "/projects/digits")

    # -- settings form: fast training for the test (and a visible countdown) --------------
    _tab(page, "Settings").click()
    page.fill("#s-time_budget_s", "5")
    page.fill("#s-train_delay_s", "3")
    page.get_by_role("button", name="Save settings").click()
    page.locator("#settings-msg", has_text="Saved.").wait_for()
    settings = httpx.get(f"{base}/api/v1/projects/digits").json()["settings"]
    assert settings["time_budget_s"] == 5 and settings["train_delay_s"] == 3

    # -- data: two classes, one filled by drag and drop, one by the file input -----------
    _tab(page, "Data & training").click()
    for label in ("digit-1", "digit-7"):
        page.get_by_label("New class name").fill(label)
        page.get_by_role("button", name="Add class").click()
        page.locator(f'section.class[data-label="{label}"]').wait_for()
    page.evaluate("window.__sameDocument = true")  # any reload would lose it
    transfer = page.evaluate_handle(_DROP_FILES, [{"name": f["name"], "b64": base64.b64encode(f["buffer"]).decode()}
                                                  for f in _files(ones, "one")])
    page.dispatch_event('section.class[data-label="digit-1"]', "drop", {"dataTransfer": transfer})
    page.locator('section.class[data-label="digit-1"] .thumb').nth(9).wait_for()
    page.set_input_files('input[data-upload-label="digit-7"]', _files(sevens, "seven"))
    page.locator('section.class[data-label="digit-7"] .thumb').nth(9).wait_for()
    assert page.locator('section.class[data-label="digit-1"] .count').inner_text() == "10"

    # -- live training through the event stream, without reloading ------------------------
    _wait_js(page, "window.dyntrain.states.includes('delayed')")  # the countdown was shown
    # Each stage is reported as it begins, so even a fast run shows two or more percentages;
    # the run may already have finished here, so the panel's past states are what is checked.
    _wait_training(page, base, "new Set(window.dyntrain.progress).size >= 2")
    assert "running" in page.evaluate("window.dyntrain.states")
    if page.locator("#live").get_attribute("data-status") == "running":
        assert page.locator("#live-progress-wrap").is_visible()
        _shot(page, screenshots, "project-training")
    _wait_training(page, base, "window.dyntrain.events.includes('model.promoted')")
    page.locator(".toast", has_text="is now in service").wait_for()
    page.locator("#in-service", has_text="version 1").wait_for()
    _wait_training(page, base, "window.dyntrain.events.includes('job.finished')", timeout=60_000)
    page.locator("#live-text", has_text="Training finished").wait_for()
    assert page.evaluate("window.__sameDocument") is True
    percents = page.evaluate("window.dyntrain.progress")
    assert len(set(percents)) >= 2, percents
    _shot(page, screenshots, "project")

    # -- the same page on a phone ------------------------------------------------------------
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    mobile = phone.new_page()
    mobile.on("pageerror", lambda e: errors.append(str(e)))
    mobile.goto(base + "/projects/digits")
    mobile.locator("#live-conn", has_text="live").wait_for()
    assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(mobile, screenshots, "project-mobile")
    phone.close()

    # -- history and the run's detail ---------------------------------------------------------
    _tab(page, "History").click()
    row = page.locator("table.runs tbody tr", has_text="went into service").first
    row.wait_for()
    row.locator("a").first.click()
    page.wait_for_url(re.compile(r".*/projects/digits/runs/\d+$"))
    page.locator(".sentences li").first.wait_for()
    assert "recognised correctly" in page.locator(".sentences").inner_text()
    assert page.locator("a.cm-cell").count() == 4
    page.locator("a.cm-cell").nth(3).click()  # digit-7 recognised as digit-7
    panel = page.locator("#examples")
    panel.locator("h3").wait_for()
    assert "digit-7" in panel.locator("h3").inner_text()
    assert panel.locator("img").count() >= 1
    _shot(page, screenshots, "run")

    # -- promote and roll back from the run page (a second version: a copy registered by hand) --
    run_url = page.url.split("?")[0]
    _register_copy_and_serve_it(core, base)
    page.goto(run_url)
    page.get_by_role("button", name="Put version 1 into service").click()
    page.locator(".outcome .badge", has_text="in service now").wait_for()
    page.get_by_role("button", name="Roll back to version 2").click()
    page.get_by_role("button", name="Put version 1 into service").wait_for()
    page.get_by_role("button", name="Put version 1 into service").click()
    page.locator(".outcome .badge", has_text="in service now").wait_for()
    assert httpx.get(f"{base}/api/v1/projects/digits").json()["status"]["production"]["version"] == 1
    _tab(page, "History").click()
    assert page.locator(".timeline li").count() == 5  # v1, v2, v1, v2 (rolled back), v1
    _shot(page, screenshots, "history")

    # -- switch auto-train off, so the correction below does not start a second run ---------
    _tab(page, "Settings").click()
    page.get_by_label("Retrain automatically when the data changes").uncheck()
    page.get_by_role("button", name="Save settings").click()
    page.locator("#settings-msg", has_text="Saved.").wait_for()
    _shot(page, screenshots, "settings")

    # -- try it, then correct it ---------------------------------------------------------------
    _tab(page, "Try it").click()
    page.set_input_files("#try-file", {"name": "probe.png", "mimeType": "image/png", "buffer": probe})
    page.locator("#try-label").wait_for(timeout=5_000)  # the answer never waits for its explanation
    prediction = page.evaluate("window.dyntrain.lastPrediction")
    assert set(prediction["scores"]) == {"digit-1", "digit-7"}
    assert page.locator("#try-scores li").count() == 2
    # then the explanation, asked for by the answer's id, is drawn over the photo
    page.locator("#explain-overlay").wait_for(timeout=60_000)
    explanation = page.evaluate("window.dyntrain.explanation")
    assert explanation["status"] == "ready" and explanation["label"] == prediction["label"]
    assert "mattered most" in page.locator("#explain-summary").inner_text() or \
        "stood out" in page.locator("#explain-summary").inner_text()
    actual = "digit-1" if prediction["label"] == "digit-7" else "digit-7"  # a correction either way
    page.get_by_label("No, this is actually").select_option(actual)
    page.get_by_role("button", name="Correct and add to training").click()
    page.locator("#try-msg", has_text=f"added to the training examples as {actual}").wait_for()
    _shot(page, screenshots, "try")
    samples = httpx.get(f"{base}/api/v1/projects/digits/samples", params={"label": actual}).json()
    assert samples["total"] == 11 and samples["items"][-1]["source"].startswith("prediction:")

    # -- predictions list: least confident first, corrected ------------------------------------
    _tab(page, "Predictions").click()
    page.get_by_label("Order").select_option("least_confident")
    page.wait_for_url(re.compile(r".*order=least_confident.*"))
    item = page.locator("li.pred").first
    assert f"Corrected: this is {actual}" in item.inner_text()
    _shot(page, screenshots, "predictions")

    # -- the projects list shows the status at a glance -----------------------------------------
    page.goto(base + "/")
    card = page.locator(".project-card", has_text="digits")
    assert "version 1" in card.inner_text() and "newer examples not trained yet" in card.inner_text()
    _shot(page, screenshots, "projects")

    # -- "Train now" starts a job that the panel follows; cancel it to end the test quickly -------
    page.locator(".project-card a", has_text="digits").click()
    page.locator("#live-detail", has_text="not trained yet").wait_for()
    page.get_by_role("button", name="Train now").click()
    _wait_js(page, "['queued', 'running'].some((s) => window.dyntrain.states.includes(s))")
    job = httpx.get(f"{base}/api/v1/projects/digits/jobs", params={"limit": 1}).json()[0]
    assert job["trigger"] == "manual" and job["dataset_version"] == 3
    httpx.post(f"{base}/api/v1/projects/digits/jobs/{job['id']}/cancel").raise_for_status()
    page.locator("#live-text", has_text="cancelled").wait_for(timeout=60_000)

    context.close()
    assert not errors, errors


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_manage_classes_and_examples(live_server, core, browser):
    """Create, rename and delete classes; relabel by select and by drag; delete; bad uploads
    are refused with the reason (no training: auto-train is off)."""
    from dyntrain.datasets.changes import Upload, add_samples
    from dyntrain.kernel.projects import create_project

    from ..conftest import png_bytes

    create_project(core, "shop", settings={"auto_train": False})
    labels = ["Headset"] * 3 + ["Earbuds"] * 2
    add_samples(core, "shop", [Upload(f"{i}.png", png_bytes(i)) for i in range(5)], labels)
    base = live_server.url
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    page.set_default_timeout(15_000)

    def section(label):
        return page.locator(f'section.class[data-label="{label}"]')

    def count(label, n):
        section(label).locator(f'.count[data-count="{n}"]').wait_for()

    page.goto(f"{base}/projects/shop")
    assert "Automatic training is off" in page.locator("#live-text").inner_text()
    # the platform's data check (GET /health) shows in words, in the classes and on the photos
    page.locator('#health-list li[data-kind="too_few_examples"]').first.wait_for()
    section("Earbuds").locator('.class-findings [data-kind="too_few_examples"]').wait_for()

    page.get_by_label("New class name").fill("Speaker")
    page.get_by_role("button", name="Add class").click()
    section("Speaker").wait_for()
    assert "Drop images here" in section("Speaker").inner_text()

    first = section("Headset").locator("select[data-relabel]").first
    first.select_option("Speaker")  # relabel by select
    count("Speaker", 1)
    count("Headset", 2)
    # a class with one example waits for more; training goes on with the others
    assert "'Speaker' needs 1 more example" in page.locator("#data .waiting").inner_text()

    section("Earbuds").locator("img[data-drag-sample]").first.drag_to(section("Speaker"))  # relabel by drag
    count("Speaker", 2)
    count("Earbuds", 1)

    section("Headset").locator("[data-delete-sample]").first.click()
    count("Headset", 1)

    section("Speaker").get_by_label("More actions for Speaker").click()
    section("Speaker").get_by_label("Rename class").fill("Speakers")
    section("Speaker").get_by_role("button", name="Rename").click()
    count("Speakers", 2)

    section("Earbuds").get_by_label("More actions for Earbuds").click()
    section("Earbuds").get_by_role("button", name=re.compile("Delete class")).click()
    section("Earbuds").wait_for(state="detached")

    page.set_input_files('input[data-upload-label="Headset"]',
                         {"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"})
    page.locator("#data-msg", has_text="Nothing was added").wait_for()
    assert "notes.png" in page.locator("#data-msg").inner_text()

    classes = {c["label"]: c["count"] for c in httpx.get(f"{base}/api/v1/projects/shop/classes").json()}
    assert classes == {"Headset": 1, "Speakers": 2}

    # the settings form saves every setting, untouched, exactly as it was
    before = httpx.get(f"{base}/api/v1/projects/shop").json()["settings"]
    page.goto(f"{base}/projects/shop/settings")
    page.get_by_role("button", name="Save settings").click()
    page.locator("#settings-msg", has_text="Saved.").wait_for()
    assert httpx.get(f"{base}/api/v1/projects/shop").json()["settings"] == before
    page.fill("#s-train_delay_s", "-1")  # refused by the API, shown next to the field
    page.get_by_role("button", name="Save settings").click()
    page.locator("#e-train_delay_s").wait_for()
    assert page.locator("#s-train_delay_s").get_attribute("aria-invalid") == "true"
    page.close()
    assert not errors, errors
