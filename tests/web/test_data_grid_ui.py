"""The data grid as a daily tool (issue 19), against a real server in headless Chromium: paging
past the first 300 of a class, search by file name, filters by source and by the data check,
selecting many (click, shift-click, "select all matching"), moving and deleting them as ONE
dataset version, and a sample enlarged with its details — at desktop and phone sizes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest

from dyntrain.datasets import versions
from dyntrain.datasets.changes import Upload, add_samples, label_counts, list_samples
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.kernel.projects import create_project
from dyntrain.web import data_grid
from tests.conftest import LiveServer, png_bytes
from tests.web.test_ui_defects import QUIET, _wait_js
from tests.web.watch import DESKTOP, PHONE, Watched

pytestmark = pytest.mark.slow

BOLTS = 320  # more than one page (300) of a class


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from dyntrain.api import create_app

    tmp = tmp_path_factory.mktemp("grid-ui")
    core = Core.create(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                seed_demo=False, scheduler_enabled=False))
    with LiveServer(create_app(core=core)) as server:
        yield SimpleNamespace(core=core, url=server.url)
    core.db.dispose()


def _parts(core: Core, name: str) -> None:
    """bolts (320 uploaded, small random photos), nuts (4 uploaded, 2 imported, one photo twice)."""
    create_project(core, name, settings=QUIET)
    add_samples(core, name, [Upload(f"bolt-{i:03d}.png", png_bytes(i, size=(32, 32))) for i in range(BOLTS)],
                ["bolt"] * BOLTS)
    nuts = [Upload(f"nut-{i}.png", png_bytes(1000 + i, size=(40, 40))) for i in range(4)]
    nuts.append(Upload("nut-again.png", nuts[0].data))  # the data check flags the pair
    add_samples(core, name, nuts, ["nut"] * 5)
    add_samples(core, name, [Upload(f"nut-import-{i}.png", png_bytes(2000 + i, size=(40, 40))) for i in range(2)],
                ["nut"] * 2, source="import")


@pytest.fixture
def watched(browser):
    opened: list[Watched] = []

    def open_(viewport=DESKTOP, url=None) -> Watched:
        w = Watched(browser, viewport)
        opened.append(w)
        if url:
            _open(w, url)
        return w

    yield open_
    for w in opened:
        w.close()


def _open(w: Watched, url: str):
    """Open a data page and wait for its grid (not for the network to idle: the data check of
    300 photos and their thumbnails keep it busy a while)."""
    w.page.goto(url)
    w.page.locator("#data").wait_for()
    return w.page


def _shown(page, label: str) -> int:
    return page.locator(f'section.class[data-label="{label}"] li[data-sample]').count()


def _versions(core, name) -> int:
    return len(versions.list_versions(core, name))


def test_paging_search_and_source_filter(env, watched):
    _parts(env.core, "parts")
    w = watched(DESKTOP, f"{env.url}/projects/parts")
    page = w.page
    assert _shown(page, "bolt") == 300 and _shown(page, "nut") == 7
    more = page.locator('section.class[data-label="bolt"] [data-more]')
    assert more.inner_text() == "Show 20 more"
    more.click()
    _wait_js(page, f"document.querySelectorAll('section.class[data-label=\"bolt\"] li[data-sample]').length === {BOLTS}")
    assert "show.bolt=600" in page.url
    # search by file name, typed: the box keeps the focus and what is typed next
    search = page.get_by_role("searchbox")
    search.click()
    page.keyboard.type("nut-", delay=20)
    _wait_js(page, "document.querySelectorAll('section.class[data-label=\"bolt\"] li[data-sample]').length === 0")
    assert _shown(page, "nut") == 7 and "7 of 327 match" in page.locator("#grid-count").inner_text()
    page.keyboard.type("imp", delay=20)
    _wait_js(page, "document.querySelectorAll('li[data-sample]').length === 2")
    assert page.evaluate("document.activeElement.id") == "grid-q" and search.input_value() == "nut-imp"
    assert "q=nut-imp" in page.url
    search.fill("")
    search.press("Enter")
    _wait_js(page, "document.querySelectorAll('li[data-sample]').length === 300 + 7 + 20")
    # by source
    page.get_by_label("Where the examples came from").select_option("import")
    _wait_js(page, "document.querySelectorAll('li[data-sample]').length === 2")
    names = page.locator("li[data-sample]").evaluate_all("els => els.map(e => e.dataset.name)")
    assert all("nut-import" in n for n in names), names
    # a reload keeps the filters (they are in the page's address)
    _open(w, page.url)
    assert page.locator("li[data-sample]").count() == 2
    assert page.get_by_label("Where the examples came from").input_value() == "import"
    assert not w.problems, w.problems


def test_select_many_move_and_delete_as_one_version(env, watched):
    _parts(env.core, "bins")
    w = watched(DESKTOP, f"{env.url}/projects/bins")
    page = w.page
    nuts = page.locator('section.class[data-label="nut"] input[data-pick]')
    nuts.nth(0).click()
    nuts.nth(3).click(modifiers=["Shift"])  # a range: the first four nuts
    assert page.locator("#bulk-count").inner_text() == "4 selected"
    picked = nuts.evaluate_all("els => els.filter(e => e.checked).map(e => Number(e.dataset.pick))")
    assert len(picked) == 4
    before = _versions(env.core, "bins")
    page.locator("#bulk-label").select_option("bolt")
    page.get_by_role("button", name="Move to this class").click()
    page.locator("#data-msg", has_text="Moved 4 examples to bolt").wait_for()
    _wait_js(page, "document.querySelectorAll('section.class[data-label=\"nut\"] li[data-sample]').length === 3")
    assert _versions(env.core, "bins") == before + 1  # one request, one version
    assert label_counts(env.core, "bins") == {"bolt": BOLTS + 4, "nut": 3}
    moved = {s.id for s in list_samples(env.core, "bins", label="bolt", limit=1000)[0]}
    assert set(picked) <= moved
    assert page.locator("#bulk-bar").is_hidden()
    # select all matching a search (past the shown page) and delete them
    page.get_by_role("searchbox").fill("bolt-1")
    page.get_by_role("searchbox").press("Enter")
    _wait_js(page, "document.querySelectorAll('li[data-sample]').length === 100")
    page.locator("#select-matching").click()
    assert page.locator("#bulk-count").inner_text() == "100 selected"
    deleting = json.loads(page.locator("#grid-ids").text_content())
    page.get_by_role("button", name="Delete", exact=True).click()  # the confirmation is accepted
    page.locator("#data-msg", has_text="Deleted 100 examples").wait_for()
    assert _versions(env.core, "bins") == before + 2
    assert label_counts(env.core, "bins") == {"bolt": BOLTS + 4 - 100, "nut": 3}
    assert not any(s.meta["filename"].startswith("bolt-1")
                   for s in list_samples(env.core, "bins", label="bolt", limit=1000)[0])
    assert not _besides_gone_thumbnails(w.problems, deleting), w.problems


def test_an_older_refresh_arriving_late_never_replaces_a_newer_one(env, watched):
    """A refresh of the grid still on its way when a search is made (the refresh after a move,
    say) must not land over the search's answer: once it did, and "select all matching" then
    picked the whole project instead of the 100 examples on screen."""
    _parts(env.core, "bays")
    w = watched(DESKTOP, f"{env.url}/projects/bays")
    page = w.page
    page.locator("#grid-ids").wait_for(state="attached")
    # answers without a search are held back 1.5 s, as a busy server would; a search's are not
    page.evaluate("""() => {
        const real = window.fetch;
        window.fetch = (url, opts) => real(url, opts).then((r) => String(url).includes("q=") ? r
            : new Promise((done) => setTimeout(() => done(r), 1500)));
    }""")
    page.evaluate("window.dyntrain.refreshFragment(document.querySelector('#data'), 0)")  # the older one
    page.wait_for_timeout(100)
    page.get_by_role("searchbox").fill("bolt-1")
    page.get_by_role("searchbox").press("Enter")
    _wait_js(page, "document.querySelectorAll('li[data-sample]').length === 100")
    page.wait_for_timeout(2500)  # the older answer would have landed by now
    assert page.locator("li[data-sample]").count() == 100
    assert len(json.loads(page.locator("#grid-ids").text_content())) == 100
    page.locator("#select-matching").click()
    assert page.locator("#bulk-count").inner_text() == "100 selected"
    assert not w.problems, w.problems


def _besides_gone_thumbnails(problems: list[str], deleted: list[int]) -> list[str]:
    """The page's problems but a thumbnail of a deleted example that was still on its way when
    the delete went through (the browser queues images behind its 6 connections per host; the
    page stops asking for unloaded ones, a queued one can still arrive after): a 404 for what is
    gone, and the console line the browser writes for it."""
    gone = [p for p in problems if p.startswith("404 ") and any(f"/samples/{i}/thumbnail" in p for i in deleted)]
    rest = [p for p in problems if p not in gone]
    said = [p for p in rest if p.startswith("console: Failed to load resource") and "404" in p][: len(gone)]
    return [p for p in rest if p not in said]


def test_flagged_filter_and_a_sample_enlarged(env, watched):
    _parts(env.core, "crates")
    w = watched(DESKTOP, f"{env.url}/projects/crates")
    page = w.page
    flagged = page.get_by_label("Only those the data check flagged")
    flagged.wait_for(state="visible", timeout=60_000)  # once the data check has answered
    report = httpx.get(f"{env.url}/api/v1/projects/crates/health").json()
    named = {i for f in report["findings"] for i in f.get("sample_ids") or []}
    twins = [f for f in report["findings"] if f["kind"] == "exact_duplicate"]
    assert twins and len(named) < BOLTS + 7
    flagged.check()
    _wait_js(page, f"document.querySelectorAll('li[data-sample]').length === {min(len(named), 300 + 7)}")
    shown = set(page.locator("li[data-sample]").evaluate_all("els => els.map(e => Number(e.dataset.sample))"))
    assert shown <= named and set(twins[0]["sample_ids"]) <= shown
    assert "only=" in page.url
    # enlarge one: the original photo, its file, where it came from, and what the check said
    opener = page.locator("li[data-sample] [data-open-sample]").first
    opener.click()
    dialog = page.locator("#sample-dialog")
    dialog.wait_for(state="visible")
    _wait_js(page, "(() => { const i = document.querySelector('#sample-big img'); "
                   "return i && i.complete && i.naturalWidth === 40; })()")
    text = dialog.inner_text()
    assert "nut-" in text and "uploaded" in text and "Data check:" in text and "40 × 40 pixels" in text
    page.locator("#sample-facts", has_text="In data versions").wait_for()
    assert "In data versions\n3, 2\n" in dialog.inner_text()  # nuts came in version 2; version 3 kept them
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.dataset.openSample") is not None  # focus back on the photo
    assert not w.problems, w.problems


def test_the_grid_on_a_phone(env, watched):
    _parts(env.core, "drawers")
    w = watched(PHONE, f"{env.url}/projects/drawers")
    page = w.page
    picks = page.locator('section.class[data-label="nut"] input[data-pick]')
    picks.nth(0).focus()
    page.keyboard.press("Space")  # by keyboard too: Shift+Space selects the range from the last one
    picks.nth(2).focus()
    page.keyboard.press("Shift+Space")
    page.locator("#bulk-bar").wait_for(state="visible")
    assert page.locator("#bulk-count").inner_text() == "3 selected"
    assert w.width() <= PHONE["width"], w.width()
    page.locator("li[data-sample] [data-open-sample]").first.click()
    page.locator("#sample-dialog").wait_for(state="visible")
    assert w.width() <= PHONE["width"], w.width()
    box = page.locator("#sample-dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert not w.problems, w.problems


def test_texts_open_whole(env, watched):
    create_project(env.core, "notes", task="text-classification", settings=QUIET)
    long = "a long note " * 40
    add_samples(env.core, "notes", [Upload("t0", long.encode()), Upload("t1", b"short one")], ["x", "y"])
    w = watched(DESKTOP, f"{env.url}/projects/notes")
    page = w.page
    page.get_by_role("searchbox").fill("short")
    page.get_by_role("searchbox").press("Enter")
    _wait_js(page, "document.querySelectorAll('li[data-sample]').length === 1")
    page.get_by_role("searchbox").fill("")
    page.get_by_role("searchbox").press("Enter")
    _wait_js(page, "document.querySelectorAll('li[data-sample]').length === 2")
    page.locator('section.class[data-label="x"] [data-open-sample]').click()
    _wait_js(page, "document.querySelector('#sample-big .sample-text') && "
                   "document.querySelector('#sample-big .sample-text').textContent.length > 400")
    assert page.locator("#sample-big .sample-text").inner_text().strip() == long.strip()
    assert not w.problems, w.problems


def test_filters_parse_and_page():
    f = data_grid.parse([("q", "Nut"), ("source", "import"), ("show.nut", "600")])
    assert f.active and f.q == "nut" and f.show == {"nut": 600}
    assert not data_grid.parse([]).active
    assert data_grid.source_kind("prediction:12") == "prediction"
