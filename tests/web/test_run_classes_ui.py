"""The run page's per-class view (issue 19) against a real server in headless Chromium: the
table of precision, recall and F1 per class, the confidence-threshold slider driven by the
keyboard (its figures are the ones web/run_classes.py computes from the run's held-out
predictions), saving it as the project's threshold (serving then answers "not sure"), and the
new model beside the one in service, class by class."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from dyntrain import tasks
from dyntrain.datasets.changes import add_rows
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.kernel.projects import create_project, get_project
from dyntrain.training import records
from dyntrain.web import run_classes
from tests.conftest import LiveServer
from tests.web.test_ui_defects import QUIET, _train
from tests.web.watch import DESKTOP, PHONE

pytestmark = pytest.mark.slow


def _blobs(n: int, seed: int) -> list[dict]:
    """Three overlapping classes: the model makes mistakes, some of them unsure."""
    rng = np.random.default_rng(seed)
    centres = {"north": (0.0, 1.0), "south": (0.0, -1.0), "east": (1.2, 0.0)}
    rows = []
    for i in range(n):
        kind = list(centres)[i % 3]
        x, y = centres[kind]
        rows.append({"x": round(float(rng.normal(x, 0.9)), 3), "y": round(float(rng.normal(y, 0.9)), 3),
                     "place": kind})
    return rows


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from dyntrain.api import create_app

    tmp = tmp_path_factory.mktemp("classes-ui")
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'db.sqlite'}", seed_demo=False,
                        scheduler_enabled=False)
    core = Core.create(settings)
    create_project(core, "places", task="tabular-classification", settings=QUIET)
    add_rows(core, "places", _blobs(60, 1), "place")
    first = _train(core, "places")
    add_rows(core, "places", _blobs(45, 2), "place")  # a second run, measured against the first
    second = _train(core, "places")
    with LiveServer(create_app(core=core)) as server:
        yield SimpleNamespace(core=core, url=server.url, first=first, second=second)
    core.db.dispose()


def _cells(page) -> list[list[str]]:
    return page.eval_on_selector_all("#per-class-table tbody tr",
                                     "rows => rows.map(r => Array.from(r.children).map(c => c.textContent.trim()))")


def _expected(step: dict, labels: list[str]) -> list[list[str]]:
    pct = lambda x: "—" if x is None else f"{x * 100:.0f}%"  # noqa: E731
    return [[label, str(c["examples"]), str(c["answered"]), pct(c["precision"]), pct(c["recall"]), pct(c["f1"])]
            for label, c in zip(labels, step["classes"])]


def test_threshold_slider_shows_what_each_threshold_does_and_saves_it(env, watched):
    run = records.run_detail(env.core, env.second["id"])
    metrics = run["result"]["metrics"]
    table = run_classes.threshold_table(metrics["predictions"], metrics["labels"])
    assert table["n"] == len(metrics["predictions"]) and table["steps"][0]["answered"] == table["n"]
    assert table["steps"][0]["right"] < table["n"], "the data is meant to give the model some mistakes"
    w = watched(DESKTOP, f"{env.url}/projects/places/runs/{env.second['id']}")
    page = w.page
    assert _cells(page) == _expected(table["steps"][0], metrics["labels"])
    # at 0% precision/recall/F1 are the run's own per-class figures (holdout) or those of one repeat
    if metrics["repeats"] == 1:
        for label, c in zip(metrics["labels"], table["steps"][0]["classes"]):
            assert c["recall"] == pytest.approx(metrics["per_class"][label]["recall"], abs=1e-3)
    slider = page.locator("#threshold")
    slider.focus()
    for _ in range(70):
        page.keyboard.press("ArrowRight")
    assert page.locator("#threshold-value").inner_text() == "70%"
    step = table["steps"][70]
    assert page.locator("#threshold-words").inner_text() == step["words"]
    assert _cells(page) == _expected(step, metrics["labels"])
    assert step["answered"] < table["n"] and "mistake" in step["words"]
    if step["answered"]:
        assert step["accuracy"] >= table["steps"][0]["accuracy"]  # fewer answers, more of them right
    page.get_by_role("button", name="Save as the project's threshold").click()
    page.locator("#threshold-msg", has_text="Saved").wait_for()
    assert get_project(env.core, "places").settings["confidence_threshold"] == 0.7
    # serving now says "not sure" below 70%: a point between the classes gets no label
    answer = httpx.post(f"{env.url}/api/v1/projects/places/predict/rows",
                        json={"rows": [{"x": 0.6, "y": 0.0}, {"x": 0.0, "y": 3.0}]}).json()
    preds = answer.get("predictions") or answer
    assert any(p["label"] is None and p["confidence"] < 0.7 for p in preds) or \
        all(p["confidence"] >= 0.7 for p in preds), preds
    assert all((p["label"] is None) == (p["confidence"] < 0.7) for p in preds), preds
    # reopened, the page starts from the saved threshold
    w.goto(f"{env.url}/projects/places/runs/{env.second['id']}")
    assert page.locator("#threshold").input_value() == "70"
    assert "70%" in page.locator("#threshold-now").inner_text()
    assert not w.problems, w.problems
    httpx.patch(f"{env.url}/api/v1/projects/places", json={"settings": {"confidence_threshold": 0}}).raise_for_status()


def test_new_model_beside_the_one_in_service_class_by_class(env, watched):
    run = records.run_detail(env.core, env.second["id"])
    gate = run["result"]["gate"]
    assert gate["against_version"] is not None
    refit = gate["refit"]
    assert refit and refit["confusion_matrix"] and refit["labels"], "the gate keeps the mix-ups of both models"
    served = gate.get("served") or {}
    old, new = (served["metrics"], served["new"]) if served.get("enough") else (refit, run["result"]["metrics"])
    if served.get("enough"):
        assert served["metrics"]["confusion_matrix"] and served["new"]["confusion_matrix"]
    expected = [s["sentence"] for s in run_classes.compare_classes(old, new, gate["against_version"])]
    w = watched(DESKTOP, f"{env.url}/projects/places/runs/{env.second['id']}")
    section = w.page.locator("section.class-changes")
    assert f"Version {gate['against_version']}" in section.inner_text() or "version" in section.inner_text()
    shown = section.locator("li").all_inner_texts()
    assert shown == expected
    # the first run had no model in service: nothing to compare with
    w.goto(f"{env.url}/projects/places/runs/{env.first['id']}")
    assert w.page.locator("section.class-changes").count() == 0
    assert w.page.locator("#per-class-table").count() == 1
    assert not w.problems, w.problems


def test_per_class_view_on_a_phone(env, watched):
    w = watched(PHONE, f"{env.url}/projects/places/runs/{env.second['id']}")
    page = w.page
    page.locator("#per-class").scroll_into_view_if_needed()
    assert w.width() <= PHONE["width"], w.width()
    page.locator("#threshold").focus()
    page.keyboard.press("End")
    assert page.locator("#threshold-value").inner_text() == "99%"
    assert w.width() <= PHONE["width"], w.width()
    assert not w.problems, w.problems


def test_only_targets_that_answer_a_class_with_a_confidence_get_the_slider():
    thresholded = {name: tasks.get(name).target.thresholded for name in tasks.names()}
    assert thresholded["tabular-classification"] and thresholded["image-classification"]
    assert not thresholded["tabular-regression"]
