"""Benchmark reports state what their run measured: verdicts computed, load in the header.

The scripts themselves take minutes (CI runs them with --quick); these tests feed their report
helpers made-up measurements and check the sentences follow the numbers, not the other way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _results  # noqa: E402


@pytest.fixture
def results_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "RESULTS.md"
    monkeypatch.setattr(_results, "RESULTS", path)
    return path


def test_header_names_machine_date_and_load(results_file):
    _results.write_section("demo", "Demo", "figures")
    header = results_file.read_text().split("_Machine: ", 1)[1].split("\n", 1)[0]
    assert "cores" in header and " UTC" in header
    assert "load average" in header


def test_quick_run_keeps_full_figures(results_file):
    _results.write_section("demo", "Demo", "full figures")
    _results.write_section("demo", "Demo", "quick figures", quick=True)
    text = results_file.read_text()
    assert "full figures" in text and "quick figures" not in text


def _run(recipe: str, cv: dict, copies: int = 0) -> dict:
    return {"recipe": recipe, "cv": cv, "copies": copies}


def test_off_arm_verdict_follows_what_off_did():
    from augmentation_accuracy import describe_arms

    clean = {("d", "k=5", "off"): [_run("none", {})],
             ("d", "imbalanced 15/5", "off"): [_run("none", {"none": 0.8, "balance:class_weights": 0.7})],
             ("d", "k=5", "auto"): [_run("none", {"none": 0.8, "augment:light": 0.7})],
             ("d", "imbalanced 15/5", "auto"): [_run("none", {"none": 0.8})]}
    assert "**holds**" in describe_arms(clean)

    augmenting = dict(clean)
    augmenting[("d", "imbalanced 15/5", "off")] = [
        _run("balance:copies(light)", {"none": 0.8, "balance:copies(light)": 0.9}, copies=4)]
    text = describe_arms(augmenting)
    assert "**VIOLATED**" in text and "balance:copies(light)" in text and "fitted 4 copies" in text


def test_fewshot_verdict_is_computed_from_the_means():
    from fewshot import MODELS, verdict

    def row(selected: float, best: float) -> list[dict]:
        acc = {m: 0.5 for m in MODELS}
        acc.update({"image.small_cnn": best, "selected": selected})
        return [{"acc": acc}]

    lines = "\n".join(verdict({("digits", 5): row(0.90, 0.90), ("mnist", 5): row(0.80, 0.90)}))
    assert "| digits | 5 | small_cnn (90.0) | +0.00 | yes | +40.0 |" in lines
    assert "| mnist | 5 | small_cnn (90.0) | -10.00 | **NO** | +30.0 |" in lines
    assert "within 1 point of the best single learner in **1 of 2** rows" in lines
