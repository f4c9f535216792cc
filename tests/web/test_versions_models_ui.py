"""What the API already had, in the UI (issue 19), in headless Chromium: the Versions page (changes
in words, who made them, compare two, restore one, undo the last change), cancelling a training
job from the live panel and the history page, and the Models page (which serves, two versions
side by side, uploading an ONNX model and the errors for a wrong file). Desktop 1366×900 and
phone 390×844, no console errors, no sideways scroll on the phone. Real training (Lite0), real
HTTP, real SQLite."""

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

pytestmark = pytest.mark.slow

DESKTOP, PHONE = {"width": 1366, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A digits project with three data versions (the first added on the server, two through
    HTTP so the audit log names who made them) and two trained models. The scheduler is off, so a
    job asked for stays waiting until the test cancels it."""
    from dyntrain.api import create_app

    tmp = tmp_path_factory.mktemp("versions-ui")
    core = Core.create(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                seed_demo=False, scheduler_enabled=False))
    create_project(core, "digits", settings={"auto_train": False, "time_budget_s": 5})
    first = digit_images(digits=(0, 1), per_class=5)
    add_samples(core, "digits", [Upload(f"{i}.png", d) for i, (_, d) in enumerate(first)], [x for x, _ in first])
    queue.request_training(core, "digits")
    run_job(core, queue.claim_next(core))
    with LiveServer(create_app(core=core)) as live:
        api = f"{live.url}/api/v1/projects/digits"
        sevens = digit_images(digits=(7,), per_class=3)
        r = httpx.post(f"{api}/samples", data={"label": "digit-7"},
                       files=[("files", (f"seven-{i}.png", d, "image/png")) for i, (_, d) in enumerate(sevens)])
        assert r.status_code == 201, r.text
        moved = r.json()["samples"][0]["id"]
        r = httpx.patch(f"{api}/samples/{moved}", json={"label": "digit-1"})
        assert r.status_code == 200, r.text
        queue.request_training(core, "digits")
        run_job(core, queue.claim_next(core))
        yield live, core
    core.db.dispose()


def _page(browser, viewport, allowed=()):
    """A page that collects console errors, page errors and failed responses (but ``allowed``:
    substrings of the URLs a test expects to be refused)."""
    context = browser.new_context(viewport=viewport, is_mobile=viewport["width"] < 500)
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems: list[str] = []
    # a refused request is also logged to the console, without its URL: allowed only with ``allowed``
    page.on("console", lambda m: m.type == "error" and not (allowed and "status of 422" in m.text)
            and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: r.status >= 400 and not any(a in r.url for a in allowed)
            and problems.append(f"{r.status} {r.url}"))
    return context, page, problems


def _until(fn, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "condition stayed false"
        time.sleep(0.1)


def _fits_phone(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_versions_in_words_compare_restore_and_undo(server, browser, screenshots):
    live, _ = server
    api = f"{live.url}/api/v1/projects/digits"
    # automatic training on (the default): a restore retrains by itself, and the confirm says so
    assert httpx.patch(api, json={"settings": {"auto_train": True}}).status_code == 200
    context, page, problems = _page(browser, DESKTOP)
    page.goto(f"{live.url}/projects/digits")
    page.locator("nav.tabs a", has_text="Versions").click()
    page.wait_for_selector("#version-3")
    assert page.locator("nav.tabs a[aria-current=page]").inner_text() == "Versions"
    # each version's change against its parent, in words, and who made it
    assert page.locator("#version-3 .version-words").inner_text().startswith("Relabelled 1 image from digit-7 to digit-1")
    assert page.locator("#version-2 .version-words").inner_text().startswith("Added 3 images of digit-7")
    assert page.locator("#version-1 .version-words").inner_text() == "The first version"
    assert "changed the class of an example" in page.locator("#version-3").inner_text()
    assert "added examples" in page.locator("#version-2").inner_text()
    assert "not recorded" in page.locator("#version-1").inner_text()  # made on the server, no request
    assert page.locator("#version-3 button.restore").count() == 0  # the current one has nothing to restore

    # compare: picked in either order, read from the older to the newer
    page.select_option("#compare-from", "3")
    page.select_option("#compare-to", "2")
    page.click("#compare-form button[type=submit]")
    page.wait_for_selector("#compare-summary")
    assert page.locator("#compare-summary").inner_text() == \
        "From version 2 to version 3: 0 images added, 0 removed, 1 relabelled."
    assert "from “digit-7” to “digit-1”" in page.locator("#compare-result").inner_text()
    page.select_option("#compare-from", "1")
    page.select_option("#compare-to", "3")
    page.click("#compare-form button[type=submit]")
    page.wait_for_selector("#compare-summary:has-text('version 1 to version 3')")
    assert page.locator("#compare-summary").inner_text() == \
        "From version 1 to version 3: 3 images added, 0 removed, 0 relabelled."  # the moved one is new since 1
    page.screenshot(path=str(screenshots / "versions.png"), full_page=True)

    # restore version 1: the confirm says it makes a new version and retrains; Cancel changes nothing
    dialogs: list[str] = []

    def answer(d, accept):
        dialogs.append(d.message)
        d.accept() if accept else d.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click("#version-1 button.restore")
    _until(lambda: dialogs)
    assert "new version (4)" in dialogs[0] and "retrained" in dialogs[0]
    assert [v["number"] for v in httpx.get(f"{api}/dataset-versions").json()][0] == 3
    page.once("dialog", lambda d: answer(d, True))
    page.click("#version-1 button.restore")
    page.wait_for_selector("#versions-msg.ok")
    versions = httpx.get(f"{api}/dataset-versions").json()
    assert versions[0]["number"] == 4 and versions[0]["hash"] == versions[-1]["hash"]  # equal to version 1
    assert queue.list_jobs(server[1], "digits", 1)[0].status in ("delayed", "queued")  # the restore retrains

    # undo the last change: version 5 equals version 3 again
    page.wait_for_selector("#version-4")  # the page reloaded with the new version
    assert page.locator("#version-4 .version-words").inner_text() == \
        "Removed 2 images of digit-7, 1 image of digit-1 (against version 3)"
    page.once("dialog", lambda d: answer(d, True))
    page.click("#undo-last")
    page.wait_for_selector("#versions-msg.ok")
    assert "Undo the last change" in dialogs[-1] and "equal to version 3" in dialogs[-1]
    assert "retrained" in dialogs[-1]
    versions = httpx.get(f"{api}/dataset-versions").json()
    assert versions[0]["number"] == 5 and versions[0]["hash"] == versions[2]["hash"]
    assert problems == []
    context.close()


def test_cancel_from_the_live_panel_and_the_history_page(server, browser):
    live, core = server
    api = f"{live.url}/api/v1/projects/digits"
    httpx.patch(api, json={"settings": {"auto_train": False}})
    for job in queue.list_jobs(core, "digits", 5):  # the restores above left one waiting
        if job.status in ("delayed", "queued"):
            httpx.post(f"{api}/jobs/{job.id}/cancel")
    context, page, problems = _page(browser, DESKTOP)
    page.goto(f"{live.url}/projects/digits")
    assert page.locator("#cancel-job").is_hidden()
    page.click("#train-now")  # the scheduler is off: the job waits
    page.wait_for_selector("#cancel-job:visible")
    page.click("#cancel-job")
    page.wait_for_selector("#live[data-status=cancelled]")
    assert page.locator("#live-text").inner_text() == "Training was cancelled."
    assert page.locator("#cancel-job").is_hidden()
    assert queue.list_jobs(core, "digits", 1)[0].status == "cancelled"

    job = httpx.post(f"{api}/train").json()["job_id"]
    phone, small, phone_problems = _page(browser, PHONE)  # the panel with its Cancel button fits a phone
    small.goto(f"{live.url}/projects/digits/history")
    small.wait_for_selector("#cancel-job:visible")
    small.wait_for_selector(f"#job-{job}")
    _fits_phone(small)
    assert phone_problems == []
    phone.close()
    page.goto(f"{live.url}/projects/digits/history")
    page.wait_for_selector(f"#job-{job}")
    assert "asked for by hand" in page.locator(f"#job-{job}").inner_text()
    page.click(f"#job-{job} button")
    page.wait_for_selector("#jobs", state="hidden")
    _until(lambda: page.locator("#live").get_attribute("data-status") == "cancelled")  # its event reached the panel
    assert queue.get_job(core, "digits", job).status == "cancelled"
    assert problems == []
    context.close()


def test_models_side_by_side_and_upload(server, browser, tmp_path):
    live, core = server
    api = f"{live.url}/api/v1/projects/digits"
    context, page, problems = _page(browser, DESKTOP, allowed=("/api/v1/projects/digits/models",))
    page.goto(f"{live.url}/projects/digits/models")
    assert page.locator("nav.tabs a[aria-current=page]").inner_text() == "Models"
    serving = httpx.get(f"{api}").json()["status"]["production"]["version"]
    assert "in service" in page.locator(f"#model-{serving}").inner_text()
    assert page.locator(".models-table .badge.ok").count() == 1
    assert "trained by run #" in page.locator("#model-2").inner_text()

    page.select_option("#model-a", "1")
    page.select_option("#model-b", "2")
    page.click("#model-compare button[type=submit]")
    page.wait_for_selector("#compare-table")
    table = page.locator("#compare-table").inner_text()
    cards = {v: httpx.get(f"{api}/models/{v}").json()["card"]["metrics"] for v in (1, 2)}
    assert f"{round(cards[1]['accuracy'] * 100)}%\t{round(cards[2]['accuracy'] * 100)}%" in table
    # digit-7 only in version 2: its row says so
    f1 = round(cards[2]["per_class"]["digit-7"]["f1"] * 100)
    assert f"digit-7 · F1\t—\t{f1}%" in table

    # a wrong file: refused before it is sent, in words
    page.set_input_files("#model-file", files=[{"name": "weights.pt", "mimeType": "application/octet-stream",
                                                "buffer": b"\x80\x04junk"}])
    page.fill("#model-labels", "digit-0\ndigit-1")
    page.click("#upload-model-btn")
    page.wait_for_selector("#upload-msg.error")
    assert "is not an ONNX file" in page.locator("#upload-msg").inner_text()
    # named .onnx but not one: the server's reason
    page.set_input_files("#model-file", files=[{"name": "fake.onnx", "mimeType": "application/octet-stream",
                                                "buffer": b"not a model at all"}])
    page.click("#upload-model-btn")
    page.wait_for_selector("#upload-msg.error:has-text('was not added')")
    assert len(httpx.get(f"{api}/models").json()) == 2
    # a real ONNX model (version 1's own file) with its labels: a new version, not in service
    onnx = httpx.get(f"{api}/models/1/file").content
    page.set_input_files("#model-file", files=[{"name": "mine.onnx", "mimeType": "application/octet-stream",
                                                "buffer": onnx}])
    page.fill("#model-description", "trained on my laptop")
    page.click("#upload-model-btn")
    page.wait_for_selector("#upload-msg.ok")
    assert "Added as version 3" in page.locator("#upload-msg").inner_text()
    page.wait_for_selector("#model-3")  # reloaded
    assert "uploaded (mine.onnx)" in page.locator("#model-3").inner_text()
    assert page.locator("#model-3 .badge.ok").count() == 0  # not in service
    # put the uploaded one in service (it has no run page to do it from)
    page.once("dialog", lambda d: d.accept())
    page.click("#model-3 button.promote")
    page.wait_for_selector("#models-msg.ok")
    assert httpx.get(api).json()["status"]["production"]["version"] == 3
    page.wait_for_selector("#model-3 .badge.ok")  # reloaded: the badge moved
    assert page.locator("#model-3 button.promote").count() == 0
    assert problems == []
    context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_new_pages_fit_a_phone_and_pass_axe(server, browser, screenshots, viewport):
    """No sideways scroll on a phone, and no serious or critical axe-core violation (the same
    check as test_accessibility, on these pages)."""
    from tests.web.test_accessibility import AXE, _violations

    assert AXE.exists(), "no axe-core: run `make axe`"
    live, _ = server
    context, page, problems = _page(browser, viewport)
    report = {}
    for path in ("versions", "models?a=1&b=2", "history"):
        page.goto(f"{live.url}/projects/digits/{path}")
        page.wait_for_load_state("networkidle")
        if viewport["width"] < 500:
            _fits_phone(page)
        if path == "versions":
            page.click("#compare-form button[type=submit]")
            page.wait_for_selector("#compare-summary")
            if viewport["width"] < 500:
                _fits_phone(page)
                page.screenshot(path=str(screenshots / "versions-mobile.png"), full_page=True)
        bad = _violations(page, AXE.read_text())
        if bad:
            report[path] = bad
    assert report == {}
    assert problems == []
    context.close()


def test_cancel_a_running_job_from_the_panel(tmp_path, browser):
    """With the scheduler on, a job that is running: the panel says it is stopping, then that it
    was cancelled, and the job ends cancelled without a model."""
    from dyntrain.api import create_app

    core = Core.create(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                                seed_demo=False, scheduler_enabled=True, scheduler_poll_s=0.2))
    create_project(core, "slow", settings={"auto_train": False, "time_budget_s": 60})
    data = digit_images(digits=(0, 1, 7), per_class=10)
    add_samples(core, "slow", [Upload(f"{i}.png", d) for i, (_, d) in enumerate(data)], [x for x, _ in data])
    try:
        with LiveServer(create_app(core=core)) as live:
            context, page, problems = _page(browser, DESKTOP)
            page.goto(f"{live.url}/projects/slow")
            page.click("#train-now")
            page.wait_for_selector("#live[data-status=running]", timeout=60_000)
            page.click("#cancel-job")
            page.wait_for_selector("#live-detail:has-text('Cancelling')")
            page.wait_for_selector("#live[data-status=cancelled]", timeout=120_000)
            assert page.locator("#live-text").inner_text() == "Training was cancelled."
            job = queue.list_jobs(core, "slow", 1)[0]
            assert job.status == "cancelled" and job.cancel_requested
            assert httpx.get(f"{live.url}/api/v1/projects/slow/models").json() == []
            assert problems == []
            context.close()
    finally:
        core.db.dispose()
