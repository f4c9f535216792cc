"""Issue 19's last data-page gaps, against a real server in headless Chromium (desktop and phone):
the augmentation preview on the Settings page (photos and their varied copies at the chosen
strength, only for a task whose examples are augmented), the data grid's filter by the day a
sample was added (server-side, kept in the address), a sample's prediction history in its
enlarged dialog (the prediction it was added from; predictions made on the same content), and
defect 11's last part: a table's columns in the file's order, not alphabetical.
Real Lite0 training, real predictions over HTTP, real SQLite; axe-core on the touched pages."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from types import SimpleNamespace

import httpx
import pytest
from sqlalchemy import update

from dyntrain.datasets.changes import Upload, add_samples, list_samples
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.kernel.projects import create_project
from dyntrain.ops.demo import digit_images
from dyntrain.storage.rows import SampleRow
from tests.conftest import LiveServer
from tests.web.test_accessibility import _violations, axe_source  # noqa: F401  (the axe fixture)
from tests.web.test_ui_defects import QUIET, _train, _wait_js
from tests.web.watch import DESKTOP, PHONE

pytestmark = pytest.mark.slow

VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
OLD = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)  # three samples were "added" then


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from dyntrain.api import create_app

    tmp = tmp_path_factory.mktemp("grid-gaps")
    core = Core.create(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                seed_demo=False, scheduler_enabled=False))
    create_project(core, "digits", settings=QUIET)
    data = digit_images(digits=(1, 7), per_class=5)
    add_samples(core, "digits", [Upload(f"d{i}.png", d) for i, (_, d) in enumerate(data)], [x for x, _ in data])
    _train(core, "digits")
    samples, _ = list_samples(core, "digits")
    with core.db.write() as s:  # three of them added long ago (the filter reads created_at)
        s.execute(update(SampleRow).where(SampleRow.id.in_([x.id for x in samples[:3]])).values(created_at=OLD))
    create_project(core, "notes", task="text-classification", settings=QUIET)
    add_samples(core, "notes", [Upload("a", b"a fine day"), Upload("b", b"a dull day")], ["good", "bad"])
    create_project(core, "few", settings=QUIET)  # the data check finds a class of one photo
    few = digit_images(digits=(1,), per_class=5) + digit_images(digits=(7,), per_class=1)
    add_samples(core, "few", [Upload(f"f{i}.png", d) for i, (_, d) in enumerate(few)], [x for x, _ in few])
    create_project(core, "fruit", task="tabular-classification", settings=QUIET)
    with LiveServer(create_app(core=core)) as server:
        csv = "weight,colour,length,kind\n150,red,8.1,apple\n120,yellow,19,banana\n"
        r = httpx.post(f"{server.url}/api/v1/projects/fruit/samples/csv", data={"target": "kind"},
                       files={"file": ("fruit.csv", csv.encode())})
        assert r.status_code == 201, r.text
        api = f"{server.url}/api/v1/projects/digits"
        asked = samples[5]  # predicted twice on its own bytes: the same content hash
        said = []
        for _ in range(2):
            r = httpx.post(f"{api}/predict", files=[("files", ("again.png", data[5][1]))], timeout=60)
            assert r.status_code == 200, r.text
            said.append(r.json()["predictions"][0])
        fresh = digit_images(digits=(7,), per_class=7)[6][1]  # a new photo, predicted, then added
        answer = httpx.post(f"{api}/predict", files=[("files", ("new.png", fresh))], timeout=60).json()
        origin = answer["predictions"][0]["prediction_id"]
        added = httpx.post(f"{api}/predictions/{origin}/add-to-training", data={"label": "digit-7"}, timeout=60)
        assert added.status_code == 200, added.text
        added_id = added.json()["samples"][0]["id"]
        yield SimpleNamespace(core=core, url=server.url, old=[x.id for x in samples[:3]], asked=asked.id,
                              added=added_id, origin=origin, n=len(samples) + 1, said=said)
    core.db.dispose()


def _phone_fits(w, viewport) -> None:
    if viewport is PHONE:
        assert w.width() <= PHONE["width"], f"the page is {w.width()} px wide on a 390 px phone"


# -- 1. augmentation preview -------------------------------------------------------------------


@VIEWPORTS
def test_augmentation_preview_on_the_settings_page(env, watched, axe_source, viewport):  # noqa: F811
    w = watched(viewport, f"{env.url}/projects/digits/settings")
    page = w.page
    page.locator("#s-augmentation").select_option("strong")
    page.get_by_role("button", name="Preview augmentation").click()
    _wait_js(page, "[...document.querySelectorAll('#aug-preview-grid img')].length === 4 && "
                   "[...document.querySelectorAll('#aug-preview-grid img')].every(i => i.complete && i.naturalWidth > 0)")
    asked = [u for u in w.requests if "/augmentation-preview?" in u]
    assert len(asked) == 4 and all("preset=strong" in u and "n=3" in u for u in asked), asked
    # both classes are shown (a photo of each label first)
    captions = page.locator("#aug-preview-grid figcaption").all_inner_texts()
    assert set(captions) == {"digit-1", "digit-7"}, captions
    assert "varied copies" in page.locator("#aug-preview-note").inner_text()
    # a preview is 2 x 2 tiles: the photo and three copies
    size = page.locator("#aug-preview-grid img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size[0] > 100 and abs(size[0] - size[1]) < 40, size
    # another strength asks again with it
    page.locator("#s-augmentation").select_option("off")
    page.get_by_role("button", name="Preview augmentation").click()
    _wait_js(page, "document.querySelector('#aug-preview-note').textContent.includes('varied copies')")
    assert sum("preset=off" in u for u in w.requests) == 4
    _phone_fits(w, viewport)
    assert _violations(page, axe_source) == []
    assert not w.problems, w.problems


def test_no_augmentation_preview_where_examples_are_not_augmented(env, watched):
    w = watched(DESKTOP, f"{env.url}/projects/notes/settings")
    assert w.page.locator("#s-augmentation").count() == 1  # the setting is there, but no preview
    assert w.page.locator("#aug-preview-btn").count() == 0
    assert not w.problems, w.problems


# -- 2. filter by date -------------------------------------------------------------------------


def _ids(page) -> set[int]:
    return {int(x) for x in page.locator("li[data-sample]").evaluate_all("els => els.map(e => e.dataset.sample)")}


@VIEWPORTS
def test_filter_by_the_day_added(env, watched, axe_source, viewport):  # noqa: F811
    w = watched(viewport, f"{env.url}/projects/digits")
    page = w.page
    assert len(_ids(page)) == env.n
    page.locator("#grid-before").fill("2026-06-01")
    _wait_js(page, f"document.querySelectorAll('li[data-sample]').length === {len(env.old)}")
    assert _ids(page) == set(env.old)
    assert "before=2026-06-01" in page.url
    assert f"{len(env.old)} of {env.n} match" in page.locator("#grid-count").inner_text()
    page.locator("#grid-before").fill("")
    page.locator("#grid-since").fill("2026-06-01")
    _wait_js(page, f"document.querySelectorAll('li[data-sample]').length === {env.n - len(env.old)}")
    assert not _ids(page) & set(env.old) and "since=2026-06-01" in page.url and "before=" not in page.url
    # a reload keeps it (the address holds the filters), the input shows it
    w.goto(page.url)
    assert len(_ids(page)) == env.n - len(env.old) and page.locator("#grid-since").input_value() == "2026-06-01"
    _phone_fits(w, viewport)
    bad = _violations(page, axe_source)
    assert bad == [], bad
    assert not w.problems, w.problems


def test_the_day_filter_is_the_servers(env):
    """The fragment filters (not the browser): the old day alone, an empty range, and a bad date ignored."""
    def shown(query: str) -> set[int]:
        html = httpx.get(f"{env.url}/projects/digits/fragments/data?{query}").text
        return {int(x) for x in re.findall(r'<li class="thumb" data-sample="(\d+)"', html)}

    assert shown("since=2026-01-10&before=2026-01-11") == set(env.old)
    assert shown("since=2026-01-11&before=2026-06-01") == set()
    assert len(shown("since=not-a-day")) == env.n


# -- 3. a sample's prediction history -------------------------------------------------------------


def test_a_samples_predictions_through_the_api(env):
    api = f"{env.url}/api/v1/projects/digits/samples"
    asked = httpx.get(f"{api}/{env.asked}/predictions").json()
    assert asked["total"] == 2 and asked["origin"] is None
    assert all(p["same_content"] and not p["origin"] and p["model_version"] == 1 for p in asked["items"])
    assert asked["items"][0]["id"] > asked["items"][1]["id"]  # newest first
    added = httpx.get(f"{api}/{env.added}/predictions").json()
    assert added["origin"] == env.origin and [p["id"] for p in added["items"]] == [env.origin]
    assert added["items"][0]["origin"] and added["items"][0]["same_content"]
    untouched = httpx.get(f"{api}/{env.old[0]}/predictions").json()
    assert untouched == {"total": 0, "items": [], "origin": None}
    assert httpx.get(f"{api}/999999/predictions").status_code == 404


@VIEWPORTS
def test_prediction_history_in_the_enlarged_sample(env, watched, axe_source, viewport):  # noqa: F811
    w = watched(viewport, f"{env.url}/projects/digits")
    page = w.page
    page.locator(f'li[data-sample="{env.asked}"] [data-open-sample]').click()
    section = page.locator("#sample-predictions")
    section.wait_for(state="visible")
    items = section.locator("li").all_inner_texts()
    assert len(items) == 2 and all("model version 1" in t and "% sure" in t for t in items), items
    assert "2 predictions made on it" in section.inner_text()
    assert _violations(page, axe_source) == [], _violations(page, axe_source)
    _phone_fits(w, viewport)
    page.locator("[data-close-dialog]").click()
    # the example added from a prediction: that prediction, said so, linked to its page
    page.locator(f'li[data-sample="{env.added}"] [data-open-sample]').click()
    _wait_js(page, "!document.querySelector('#sample-predictions').hidden && "
                   "document.querySelectorAll('#sample-predictions li').length === 1")
    link = section.locator("li a")
    assert "added to training from this" in link.inner_text()
    assert link.get_attribute("href") == f"/projects/digits/predictions/{env.origin}"
    page.locator("[data-close-dialog]").click()
    # one never predicted says so
    page.locator(f'li[data-sample="{env.old[0]}"] [data-open-sample]').click()
    _wait_js(page, "!document.querySelector('#sample-predictions').hidden && "
                   "document.querySelector('#sample-predictions-note').textContent !== ''")
    assert "No recorded prediction" in section.inner_text() and section.locator("li").count() == 0
    assert not w.problems, w.problems


# -- defect 11 (its last part): a table's columns in the file's order ------------------------------


@VIEWPORTS
def test_table_columns_in_the_files_order(env, watched, viewport):
    """The stored rows have sorted keys (a row's hash is its content's): the page showed colour,
    length, weight; the CSV said weight, colour, length."""
    w = watched(viewport, f"{env.url}/projects/fruit")
    heads = w.page.locator(".rows-table thead th").all_inner_texts()
    assert heads[:4] == ["weight", "colour", "length", "Class"], heads
    first = w.page.locator(".rows-table tbody tr").last.locator("td").all_inner_texts()
    assert first[:3] == ["150", "red", "8.1"], first  # the cells follow their columns
    _phone_fits(w, viewport)
    assert not w.problems, w.problems


# -- the data check's "Show them" buttons (found by the axe check on a class of one photo) ---------


@VIEWPORTS
def test_data_check_buttons_say_their_visible_words(env, watched, axe_source, viewport):  # noqa: F811
    """axe's label-content-name-mismatch (serious): the button read "Show it" but was named
    "Show the photos of: …", so a speech user saying "show it" could not press it."""
    w = watched(viewport, f"{env.url}/projects/few")
    page = w.page
    button = page.locator(".finding button", has_text="Show")
    button.first.wait_for()
    name = button.first.get_attribute("aria-label")
    assert name.startswith(button.first.inner_text()), name
    bad = _violations(page, axe_source)
    assert bad == [], bad
    _phone_fits(w, viewport)
    assert not w.problems, w.problems


# -- defect 8 on a prediction's own page, and in the sample's history -------------------------------


def test_a_confirmed_prediction_says_confirmed_on_its_page_and_in_the_history(env, watched):
    said = env.said[0]
    r = httpx.post(f"{env.url}/api/v1/projects/digits/predictions/{said['prediction_id']}/feedback",
                   json={"label": said["label"], "add_to_training": False})
    assert r.status_code == 200, r.text
    page = httpx.get(f"{env.url}/projects/digits/predictions/{said['prediction_id']}").text
    assert "Confirmed:" in page and "Corrected" not in page
    w = watched(DESKTOP, f"{env.url}/projects/digits")
    w.page.locator(f'li[data-sample="{env.asked}"] [data-open-sample]').click()
    w.page.locator("#sample-predictions li", has_text="confirmed as right").wait_for()
    assert "corrected" not in w.page.locator("#sample-predictions").inner_text()
    assert not w.problems, w.problems
