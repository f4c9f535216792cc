"""Table rows as content (canonical JSON), targets, the regression gate and per-task settings."""

from __future__ import annotations

import pytest

from dyntrain.kernel.errors import Invalid
from dyntrain.kernel.project_settings import ProjectSettings, merge_settings
from dyntrain.registry.gate import decide
from dyntrain.codecs.tables import (canonical_row, class_text, decode_row, read_csv_rows, row_bytes, split_target,
                             target_histogram, target_text)


def test_the_same_row_from_csv_and_json_is_the_same_content():
    _, rows = read_csv_rows("rooms,area,city,garden\n3,120.0,Oslo,true\n")
    from_csv = row_bytes(rows[0])
    from_json = row_bytes({"garden": True, "city": " Oslo", "area": 120, "rooms": 3.0})
    assert from_csv == from_json == b'{"area":"120","city":"Oslo","garden":"true","rooms":"3"}'
    assert decode_row(from_csv) == canonical_row(rows[0])
    # missing is missing however it is written (a NaN number is refused: tests/test_security_inputs.py)
    assert row_bytes({"a": None}) == row_bytes({"a": ""}) == b'{"a":null}'


@pytest.mark.parametrize("bad, reason", [
    ({"": 1}, "non-empty"), ({"a": [1, 2]}, "a list"), ({}, "no feature columns"), ({" a": 1, "a": 2}, "twice"),
])
def test_bad_rows_are_refused(bad, reason):
    with pytest.raises(Invalid, match=reason):
        canonical_row(bad)


def test_targets():
    assert [target_text(v) for v in ("151", 151.0, " 2.50", "1e3", -0.1)] == ["151", "151", "2.5", "1000", "-0.1"]
    for bad in ("cheap", "", None, True, float("inf"), "1_000"):
        with pytest.raises(Invalid):
            target_text(bad)
    assert class_text(1.0) == "1" and class_text(" yes ") == "yes"
    with pytest.raises(Invalid, match="missing"):
        class_text("")


def test_split_target_names_every_bad_row():
    rows = [{"x": 1, "y": 2}, {"x": 2}, {"x": 3, "y": "lots"}]
    with pytest.raises(Invalid) as err:
        split_target(rows, "y", "tabular-regression")
    assert [d["row"] for d in err.value.details] == [2, 3]
    contents, labels = split_target(rows[:1], "y", "tabular-classification")
    assert contents == [b'{"x":"1"}'] and labels == ["2"]


def test_target_histogram_counts_rows_per_range():
    counts = target_histogram([str(v) for v in range(1, 21)])
    assert sum(counts.values()) == 20 and len(counts) == 4 and min(counts.values()) >= 2
    # equal values stay together, and no range has fewer than 2 rows (the scheduler reads these as classes)
    assert target_histogram(["1", "1", "1", "2"]) == {"1 to 2": 4}
    assert target_histogram(["1", "1", "2", "2", "3"]) == {"1 to 1": 2, "2 to 3": 3}
    assert target_histogram([]) == {}


def test_regression_gate():
    REG = "tabular-regression"  # the gate reads the task from the project, not from the metric keys
    r2 = ProjectSettings(gate_metric="r2")
    assert decide({"r2": 0.5, "mae": 3}, None, {"r2": -0.01, "mae": 6}, r2, task=REG)[0]
    promote, why = decide({"r2": -0.2, "mae": 7}, None, {"r2": -0.01, "mae": 6}, r2, task=REG)
    assert not promote and "average" in why
    assert decide({"r2": 0.695, "mae": 3}, {"r2": 0.70, "mae": 3}, {}, r2, task=REG)[0]  # within tolerance
    assert not decide({"r2": 0.6, "mae": 3}, {"r2": 0.70, "mae": 3}, {}, r2, task=REG)[0]
    mae = ProjectSettings(gate_metric="mae", gate_tolerance=0.05)
    assert decide({"r2": 0.1, "mae": 10.4}, {"r2": 0.2, "mae": 10.0}, {}, mae, task=REG)[0]  # 4% worse: allowed
    promote, why = decide({"r2": 0.1, "mae": 10.6}, {"r2": 0.2, "mae": 10.0}, {}, mae, task=REG)
    assert not promote and "mae would rise" in why


def test_gate_metric_suits_the_task():
    assert merge_settings({}, {}, task="tabular-regression")["gate_metric"] == "r2"
    assert merge_settings({}, {}, task="tabular-classification")["gate_metric"] == "macro_f1"
    assert merge_settings({"gate_metric": "r2"}, {"gate_metric": "mae"}, task="tabular-regression")["gate_metric"] == "mae"
    with pytest.raises(Invalid) as err:
        merge_settings({}, {"gate_metric": "r2"}, task="image-classification")
    assert err.value.details == [{"field": "gate_metric", "reason": "'r2' does not apply to a image-classification "
                                                                  "project; choose 'macro_f1' or 'accuracy'"}]
    with pytest.raises(Invalid):
        merge_settings({"gate_metric": "r2"}, {"gate_metric": "accuracy"}, task="tabular-regression")
