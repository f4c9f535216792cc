"""The serving-speed benchmarks' helpers compute what they report (benchmarks/scale.py, growth.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _results  # noqa: E402


def test_import_profile_sums_own_times_by_top_level_package():
    from scale import import_profile

    log = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:       300 |        300 |     sqlalchemy.util",
        "import time:      1200 |       1500 |   sqlalchemy",
        "INFO some server line in between",
        "import time:       500 |        500 | numpy",
        "import time:        10 |         10 | dyntrain.serving.live",
    ])
    total, heaviest = import_profile(log, top=2)
    assert total == pytest.approx(0.00201)
    assert heaviest == [("sqlalchemy", pytest.approx(0.0015)), ("numpy", pytest.approx(0.0005))]


def test_growth_quick_run_keeps_a_full_runs_plots(tmp_path, monkeypatch):
    import growth

    monkeypatch.setattr(_results, "RESULTS", tmp_path / "RESULTS.md")
    assert not growth.keeps_full_figures(quick=True)  # nothing yet: a quick run writes its own
    _results.write_section("growth", "Growth", "quick figures", quick=True)
    assert not growth.keeps_full_figures(quick=True)  # a quick run replaces a quick run's figures
    _results.write_section("growth", "Growth", "full figures")
    assert growth.keeps_full_figures(quick=True) and not growth.keeps_full_figures(quick=False)
