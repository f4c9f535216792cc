"""Accessibility: axe-core (from the npm registry; `make axe` puts it in .cache/axe, which git
ignores) injected into Chromium on every page of the UI for image, text and table projects,
trained and not, and of a new project of every task; no serious or critical violation may remain.

axe is run through Playwright's evaluate (the DevTools protocol), so the pages keep their
Content-Security-Policy, which refuses inline scripts, as users get it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from dyntrain import tasks
from dyntrain.datasets.changes import add_rows
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.kernel.projects import create_project
from tests.conftest import LiveServer
from tests.test_tabular_loop import houses
from tests.web.test_run_classes_ui import _blobs
from tests.web.test_ui_defects import QUIET, _train, add_shapes_and_reviews
from tests.web.watch import DESKTOP, PHONE, Watched

pytestmark = pytest.mark.slow

AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
#: What fails the test: axe's two highest impacts.
BLOCKING = ("serious", "critical")


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"no axe-core at {AXE}: run `make axe` (npm install of axe-core into .cache/axe; `make test` does it)")
    return AXE.read_text()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from dyntrain.api import create_app

    tmp = tmp_path_factory.mktemp("a11y")
    core = Core.create(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'db.sqlite'}",
                                seed_demo=False, scheduler_enabled=False))
    create_project(core, "places", task="tabular-classification", settings=QUIET)
    add_rows(core, "places", _blobs(60, 1), "place")
    _train(core, "places")
    add_rows(core, "places", _blobs(45, 2), "place")
    places_run = _train(core, "places")
    create_project(core, "prices", task="tabular-regression", settings=QUIET)
    add_rows(core, "prices", houses(40), "price")
    prices_run = _train(core, "prices")
    add_shapes_and_reviews(core)
    create_project(core, "empty-photos", settings=QUIET)
    for k, task in enumerate(tasks.names()):  # every task's own partials, in their first (empty) state
        create_project(core, f"new-{k}", task=task, settings=QUIET)
    with LiveServer(create_app(core=core)) as server:
        answer = httpx.post(f"{server.url}/api/v1/projects/places/predict/rows",
                            json={"rows": [{"x": 0.1, "y": 1.2}]}).json()
        prediction = (answer.get("predictions") or [answer])[0]["prediction_id"]
        yield SimpleNamespace(core=core, url=server.url, places_run=places_run["id"], prices_run=prices_run["id"],
                              prediction=prediction)
    core.db.dispose()


def _pages(env) -> list[str]:
    pages = ["/", "/tokens", "/audit", "/projects/nowhere"]
    for name in ("places", "prices", "shapes", "reviews", "empty-photos", *(f"new-{k}" for k in range(len(tasks.names())))):
        pages += [f"/projects/{name}{tail}" for tail in ("", "/try", "/history", "/predictions", "/activity",
                                                         "/settings", "/unlabelled")]
    return pages + [f"/projects/places/runs/{env.places_run}", f"/projects/prices/runs/{env.prices_run}",
                    f"/projects/places/predictions/{env.prediction}"]


def _violations(page, axe_source: str) -> list[dict]:
    page.evaluate(axe_source)
    found = page.evaluate("""async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
        .map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " :: " + n.failureSummary)}))""")
    return [v for v in found if v["impact"] in BLOCKING]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_serious_or_critical_violation_on_any_page(env, browser, axe_source, viewport):
    w = Watched(browser, viewport)
    try:
        report = {}
        for path in _pages(env):
            w.page.goto(env.url + path)
            w.page.wait_for_load_state("load")
            w.page.wait_for_timeout(300)  # fragments and the data check settle
            bad = _violations(w.page, axe_source)
            if bad:
                report[path] = bad
        assert not report, json.dumps(report, indent=1)
    finally:
        w.close()


def test_no_serious_or_critical_violation_in_the_grids_open_states(env, browser, axe_source):
    """The bulk bar with a selection, and a sample enlarged in its dialog."""
    w = Watched(browser, DESKTOP)
    try:
        page = w.page
        page.goto(f"{env.url}/projects/shapes")
        page.locator("input[data-pick]").first.check()
        page.locator("#bulk-bar").wait_for(state="visible")
        assert _violations(page, axe_source) == []
        page.locator("[data-open-sample]").first.click()
        page.locator("#sample-big img").wait_for()
        assert _violations(page, axe_source) == []
        assert not w.problems, w.problems
    finally:
        w.close()
