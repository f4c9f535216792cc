"""The UI defects of issue 19, each reproduced against a real server on 127.0.0.1 in headless
Chromium (desktop 1366×900 and phone 390×844) or through its pages, with real data and real
training (two small table projects trained once per module through the job queue)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html import unescape
from types import SimpleNamespace

import httpx
import pytest

from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.datasets.changes import Upload, add_rows, add_samples
from dyntrain.ops.demo import digit_images
from dyntrain.kernel.projects import create_project, get_project
from dyntrain.scheduler import queue
from dyntrain.scheduler.jobs import run_job
from dyntrain.training import records
from dyntrain.web import svg, views
from tests.conftest import LiveServer
from tests.test_tabular_loop import fruit, houses
from tests.web.watch import DESKTOP, PHONE

pytestmark = pytest.mark.slow

QUIET = {"auto_train": False, "time_budget_s": 5}


def _train(core: Core, project: str) -> dict:
    """One real training run of ``project`` through the job queue ("train now")."""
    queue.request_training(core, project)
    job = queue.claim_next(core)
    run_job(core, job)
    return records.list_runs(core, project, 1)[0]


def add_shapes_and_reviews(core) -> None:
    """Two untrained projects the UI tests share: "shapes" (12 photos, two classes) and "reviews"
    (4 texts, two classes)."""
    create_project(core, "shapes", settings=QUIET)
    images = [("triangle", d) for _, d in digit_images(digits=(1,), per_class=6)] + \
             [("circle", d) for _, d in digit_images(digits=(7,), per_class=6)]
    add_samples(core, "shapes", [Upload(f"{label}-{i}.png", d) for i, (label, d) in enumerate(images)],
                [label for label, _ in images])
    create_project(core, "reviews", task="text-classification", settings=QUIET)
    texts = [("great film, loved it", "good"), ("wonderful acting", "good"), ("dull and far too long", "bad"),
             ("a waste of time", "bad")]
    add_samples(core, "reviews", [Upload(f"t{i}", t.encode()) for i, (t, _) in enumerate(texts)],
                [label for _, label in texts])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One server for the module: trained table projects (a price in the millions, fruit classes),
    untrained photo and text projects, and two empty ones."""
    from dyntrain.api import create_app

    tmp = tmp_path_factory.mktemp("ui")
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'db.sqlite'}", seed_demo=False,
                        scheduler_enabled=False)
    core = Core.create(settings)
    create_project(core, "prices", task="tabular-regression", settings=QUIET)
    rows = [{**r, "price": round(r["price"] * 10_000, 2)} for r in houses(40)]  # millions: no "3.49e+06"
    add_rows(core, "prices", rows, "price")
    prices_run = _train(core, "prices")
    create_project(core, "fruit", task="tabular-classification", settings=QUIET)
    add_rows(core, "fruit", fruit(60), "fruit")
    fruit_run = _train(core, "fruit")
    add_shapes_and_reviews(core)
    create_project(core, "empty-table", task="tabular-classification", settings=QUIET)
    create_project(core, "empty-photos", settings=QUIET)
    with LiveServer(create_app(core=core)) as server:
        yield SimpleNamespace(core=core, url=server.url, prices_run=prices_run, fruit_run=fruit_run)
    core.db.dispose()


def _text(html: str) -> str:
    """What a reader sees of a page: no scripts, styles or tags, entities decoded, spaces collapsed."""
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _wait_js(page, expression: str, timeout: float = 20) -> None:
    """Poll ``expression`` in the page (page.wait_for_function would need eval, which the UI's
    Content-Security-Policy refuses)."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"{expression} stayed false for {timeout} s"
        time.sleep(0.1)


# -- 1 and 3: the live panel and the run page follow a job ---------------------------------------


def test_live_panel_during_augmentation_and_a_run_page_that_updates(env, watched):
    """The job queue's own heartbeat reports the sequence of the issue (augmentation recipes
    restart their stage: 65% → 55% → 65%, the estimate 5 s → 17 s): the panel names the stage
    and recipe in words, never moves back, never grows the time left; the run page opened while
    the run trains shows its end without a reload by hand."""
    core = env.core
    job = queue.request_training(core, "shapes")
    assert queue.claim_next(core).id == job.id
    run_id = records.start_run(core, get_project(core, "shapes").id, job.id, job.dataset_version,
                               {"mode": "full", "why": "full selection: training was requested by hand"})
    w = watched(DESKTOP, f"{env.url}/projects/shapes/runs/{run_id}")
    page = w.page
    in_progress = page.locator(".alert", has_text="still in progress")
    assert in_progress.count() == 1
    page.locator("#live-conn", has_text="live").wait_for()
    for percent, eta, recipe in [(65.0, 5.0, "augment:light"), (55.0, 17.0, "augment:medium"),
                                 (65.0, 10.0, "balance:copies(light)")]:
        queue.renew_lease(core, job.id, {"stage": "augmentation", "percent": percent, "eta_s": eta,
                                         "candidate": recipe, "run_id": run_id})
    _wait_js(page, "window.dyntrain.progress.length >= 3")
    text, detail = page.locator("#live-text").inner_text(), page.locator("#live-detail").inner_text()
    assert text == "Training: Trying varied copies of the examples…", text
    assert "augment:" not in detail and "balance:" not in detail and "extra varied copies" in detail, detail
    shown = page.evaluate("window.dyntrain.progress")
    assert shown == sorted(shown) and shown[-1] == 65, shown
    etas = page.evaluate("window.dyntrain.etas")
    assert all(b <= a for a, b in zip(etas, etas[1:])), etas
    assert page.locator("#live-percent").inner_text() == "65%"

    records.finish_run(core, run_id, "failed", error="the test stopped it")
    queue.finish_job(core, job.id, "failed", error="the test stopped it", run_id=run_id)
    page.locator(".alert.error", has_text="Training failed: the test stopped it").wait_for()
    assert in_progress.count() == 0
    assert page.locator(".run-head .badge", has_text="failed").count() == 1
    assert not w.problems, w.problems


# -- 2: a full selection that tried one kind of model is no "quick retrain" ---------------------


def test_a_full_selection_never_says_quick_retrain(env):
    core, name = env.core, "fruit"
    real = records.run_detail(core, env.fruit_run["id"])
    assert real["spec"]["mode"] == "full"
    # the same run as a full selection records it when only one candidate was allowed: no scores
    pid = get_project(core, name).id
    one = records.start_run(core, pid, None, real["dataset_version"], real["spec"])
    records.finish_run(core, one, "succeeded", result={**real["result"], "selection": None})
    page = unescape(httpx.get(f"{env.url}/projects/{name}/runs/{one}").text)
    assert "Full selection: training was requested by hand." in page
    assert "quick retrain" not in page and "Only one kind of model could be tried" in page
    reuse = records.start_run(core, pid, None, real["dataset_version"], {**real["spec"], "mode": "reuse"})
    records.finish_run(core, reuse, "succeeded", result={**real["result"], "selection": None})
    assert "This was a quick retrain" in httpx.get(f"{env.url}/projects/{name}/runs/{reuse}").text


# -- 4: regression pages ------------------------------------------------------------------------

_SCIENTIFIC = re.compile(r"\d\.?\d*e[+-]?\d", re.I)


def test_regression_pages_show_numbers_for_people(env, watched):
    run_id = env.prices_run["id"]
    for path in (f"/projects/prices/runs/{run_id}", "/projects/prices/history", "/projects/prices/predictions"):
        visible = _text(httpx.get(env.url + path).text)
        assert not _SCIENTIFIC.search(visible), (path, _SCIENTIFIC.search(visible))
    w = watched(DESKTOP, f"{env.url}/projects/prices/runs/{run_id}")
    page = w.page
    # the scatter plot: round tick labels, none below zero (prices are not), all inside the picture
    ticks = page.evaluate("""() => [...document.querySelectorAll('svg.scatter text')]
        .filter((t) => /^-?[0-9.,]+[kMBT]?$/.test(t.textContent))
        .map((t) => ({text: t.textContent, x: t.getBBox().x}))""")
    assert ticks and all(not t["text"].startswith("-") for t in ticks), ticks
    assert all(t["x"] >= 0 for t in ticks), ticks  # the y labels are not cut off at the left
    # candidate bars: R² as a number, not a percentage
    bar_values = page.evaluate("[...document.querySelectorAll('svg.bars text')].map((t) => t.textContent)")
    assert bar_values and not any(v.endswith("%") for v in bar_values), bar_values
    assert any(re.fullmatch(r"-?\d\.\d\d", v) for v in bar_values), bar_values
    assert not w.problems, w.problems


def test_a_negative_r2_bar_is_shown_as_it_is():
    bars = svg.score_bars([{"name": "worse than the average", "value": -0.25, "sd": 0.1},
                           {"name": "good", "value": 0.8, "highlight": True}], title="R²", percent=False)
    assert ">-0.25<" in bars and ">0.80<" in bars and "%" not in bars and "#dc2626" in bars
    assert views.number(3493300.0) == "3,493,300" and "e+" not in views.number(1.5e12)


# -- 5: nothing scrolls sideways on a phone, and no blank space below the table ------------------


def test_phone_pages_do_not_scroll_sideways(env, watched):
    httpx.post(f"{env.url}/api/v1/tokens", json={"name": "a-rather-long-token-name-for-the-shop-app",
                                                  "role": "predictor", "projects": ["fruit"]}).raise_for_status()
    w = watched(PHONE)
    for path in ("/projects/fruit", "/projects/prices", "/tokens", "/projects/fruit/activity",
                 "/projects/prices/activity", "/", f"/projects/prices/runs/{env.prices_run['id']}",
                 "/projects/shapes", "/projects/reviews", "/projects/fruit/try", "/projects/fruit/settings"):
        page = w.goto(env.url + path)
        assert w.width() <= PHONE["width"], (path, w.width())
        below = page.evaluate("""() => document.documentElement.scrollHeight
            - (document.querySelector('main').getBoundingClientRect().bottom + window.scrollY)""")
        assert below <= 40, (path, below)  # no empty space under the page's content
    assert not w.problems, w.problems


# -- 6: a new token joins the list at once -------------------------------------------------------


def test_a_new_token_is_listed_without_a_reload(env, watched):
    w = watched(DESKTOP, f"{env.url}/tokens")
    page = w.page
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Name").fill("kiosk-7")
    page.get_by_role("button", name="Create token").click()
    row = page.locator("#tokens tbody tr", has_text="kiosk-7")
    row.wait_for()
    assert "predictor" in row.inner_text() and page.evaluate("window.__sameDocument") is True
    row.get_by_role("button", name="Revoke").click()  # and it can be revoked from there
    row.locator("td", has_text="revoked").wait_for()
    listed = {t["name"]: t for t in httpx.get(f"{env.url}/api/v1/tokens", params={"include_revoked": True}).json()}
    assert listed["kiosk-7"]["revoked_at"] is not None
    assert not w.problems, w.problems


# -- 7: settings offer the model types of the project's task only -------------------------------


@pytest.mark.parametrize("project, prefix", [("shapes", "image."), ("reviews", "text."), ("fruit", "tabular.")])
def test_settings_offer_only_the_tasks_model_types(env, project, prefix):
    page = httpx.get(f"{env.url}/projects/{project}/settings").text
    offered = re.findall(r'data-array="learners" value="([^"]+)"', page)
    assert offered and all(v.startswith(prefix) for v in offered), offered
    if prefix == "tabular.":  # a classification project: no regressors either
        assert set(offered) == {"tabular.linear", "tabular.hgb"}
    visible = _text(page)
    assert not re.search(r"\b(image|text|tabular)\.[a-z_]+\b", visible)  # words, not code names
    assert "Default: True" not in page and "Default: on." in page


# -- 8: a prediction confirmed as right is not "Corrected" ---------------------------------------


def test_a_confirmed_prediction_says_confirmed(env):
    api = f"{env.url}/api/v1/projects/fruit"
    said = httpx.post(f"{api}/predict/rows", json={"rows": [{"weight": 150.0, "colour": "red", "length": 8.1}]}
                      ).json()["predictions"][0]
    httpx.post(f"{api}/predictions/{said['prediction_id']}/feedback",
               json={"label": said["label"], "add_to_training": False}).raise_for_status()
    page = _text(httpx.get(f"{env.url}/projects/fruit/predictions").text)
    assert re.search(f"Confirmed: it is {said['label']} ?, as the model said", page), page
    assert "Corrected:" not in page


# -- 9 and 10: text and table pages call no image data check; empty projects show no error --------


@pytest.mark.parametrize("project", ["reviews", "fruit", "empty-table", "empty-photos"])
def test_data_pages_without_a_data_check_or_an_error(env, watched, project):
    w = watched(DESKTOP, f"{env.url}/projects/{project}")
    assert not any("/health" in u for u in w.requests) or project == "empty-photos", w.requests
    assert not w.problems, w.problems
    page = w.page
    if project.startswith("empty"):
        assert page.locator(".alert.error").count() == 0
        assert "another class" not in page.locator("#data").inner_text()
        assert page.locator("#data .empty").is_visible()


def test_photos_still_get_their_data_check(env, watched):
    w = watched(DESKTOP, f"{env.url}/projects/shapes")
    assert any(u.endswith("/api/v1/projects/shapes/health") for u in w.requests)
    w.page.locator("#health-summary").wait_for()
    assert not w.problems, w.problems


# -- 11: the small ones ----------------------------------------------------------------------------

_CLASS_TEXT_FITS = """() => [...document.querySelectorAll('select[data-relabel]')].map((s) => {
  const cs = getComputedStyle(s);
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
  const text = s.options[s.selectedIndex].text;
  const room = s.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 20;  // 20: the arrow
  return {text, need: Math.ceil(ctx.measureText(text).width), room};
})"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_class_dropdowns_show_the_whole_class_name(env, watched, viewport):
    w = watched(viewport, f"{env.url}/projects/shapes")
    fits = w.page.evaluate(_CLASS_TEXT_FITS)
    assert len(fits) == 12 and all(f["need"] <= f["room"] for f in fits), fits
    assert w.width() <= viewport["width"]


def test_success_messages_clear_and_stay_in_the_notification_centre(env, watched):
    w = watched(DESKTOP, f"{env.url}/projects/shapes")
    page = w.page
    page.evaluate("window.dyntrain.okMessageMs = 600")
    page.get_by_label("New class name").fill("square")
    page.get_by_role("button", name="Add class").click()
    msg = page.locator("#data-msg", has_text="Class square created")
    msg.wait_for()
    msg.wait_for(state="hidden", timeout=5_000)
    # the notice is kept: the bell counts it, the panel lists it, after a reload too
    page.reload()
    assert page.locator("#notices-count").inner_text() == "1"
    page.locator("#notices-btn").click()
    panel = page.locator("#notices-panel")
    assert "Class square created" in panel.inner_text()
    assert page.evaluate("document.activeElement.id") == "notices-h"
    page.keyboard.press("Escape")
    assert panel.is_hidden() and page.evaluate("document.activeElement.id") == "notices-btn"
    assert page.locator("#notices-count").is_hidden()  # seen
    httpx.delete(f"{env.url}/api/v1/projects/shapes/classes/square").raise_for_status()
    assert not w.problems, w.problems


def test_pages_never_show_internal_ids_or_api_calls(env):
    missing = httpx.get(f"{env.url}/projects/nope")
    assert missing.status_code == 404
    assert "GET /api" not in missing.text and "Project 'nope' does not exist." in unescape(missing.text)
    for name in ("shapes", "fruit", "reviews"):
        page = httpx.get(f"{env.url}/projects/{name}").text
        assert not re.search(r"(?i)\b(example|sample) \d", page), name
        assert '<th scope="col">#</th>' not in page
    shapes = unescape(httpx.get(f"{env.url}/projects/shapes").text)
    assert 'alt="Image 1 of circle (circle-6.png)"' in shapes or 'alt="Image 1 of circle' in shapes
    table = httpx.get(f"{env.url}/projects/fruit").text
    assert 'aria-label="Delete row 1"' in table


def test_rollback_says_which_version_it_serves_again(env):
    from dyntrain.registry.models import get_model, promote, register_model

    core = env.core
    v1 = get_model(core, "prices", 1)
    register_model(core, get_project(core, "prices").id, core.settings.model_dir / v1.path,
                   {**v1.card, "source": "external"}, run_id=None, source="external")
    promote(core, "prices", 2)
    promote(core, "prices", 1)  # version 1 serves again; "roll back" would go to 2
    page = httpx.get(f"{env.url}/projects/prices/runs/{env.prices_run['id']}").text
    assert 'data-rollback="2"' in page and "Roll back to version 2" in page


def test_projects_page_in_words(env):
    page = unescape(httpx.get(f"{env.url}/").text)
    options = re.findall(r'<option value="([^"]+)">([^<]+)</option>', page)
    assert options and all(value != text for value, text in options), options
    assert "Table rows (a CSV file): predict a number" in page
    card = page[page.index('href="/projects/prices"'):]
    card = _text(card[:card.index("</li>")])
    assert "40 rows" in card and "class" not in card, card


def test_file_inputs_are_styled(env, watched):
    w = watched(DESKTOP, f"{env.url}/projects/fruit")
    radius = w.page.evaluate("getComputedStyle(document.querySelector('#csv-file'), '::file-selector-button')"
                             ".borderTopLeftRadius")
    assert radius == "8px", radius


# -- features: use this model, plain words ------------------------------------------------------


@pytest.mark.parametrize("project", ["prices", "fruit"])
def test_use_this_model_snippets_work_as_pasted(env, project):
    """The curl and Python snippets on the Try page, run as they are, get an answer."""
    from dyntrain.access.auth import create_token

    _, secret = create_token(env.core, f"snippets-{project}", "predictor", [project])
    page = unescape(httpx.get(f"{env.url}/projects/{project}/try").text)
    assert f"{env.url}/api/v1/projects/{project}/predict/rows" in page
    curl = re.search(r'<pre id="use-curl"[^>]*>(.*?)</pre>', page, re.S).group(1)
    python = re.search(r'<pre id="use-python"[^>]*>(.*?)</pre>', page, re.S).group(1)
    run = dict(env=os.environ | {"DYNTRAIN_TOKEN": secret}, capture_output=True, text=True, timeout=60)
    out = subprocess.run(["bash", "-c", curl], **run)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)["predictions"][0]
    assert ("value" in answer) if project == "prices" else (answer["label"] in {"apple", "banana", "cherry"})
    out = subprocess.run([sys.executable, "-c", python], **run)
    assert out.returncode == 0 and "model_version" in out.stdout, out.stderr


def test_a_run_page_says_the_gate_decision_in_words(env):
    page = unescape(httpx.get(f"{env.url}/projects/fruit/runs/{env.fruit_run['id']}").text)
    words = re.search(r'<p class="gate-words">(.*?)</p>', page, re.S).group(1)
    assert words.startswith("The project's first model") and "went into service" in words, words
    activity = unescape(httpx.get(f"{env.url}/projects/fruit/activity").text)
    assert "dyntrain put model version 1 into service on its own after run" in activity
