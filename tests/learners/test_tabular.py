"""Tabular learners on real data shipped with scikit-learn: rows as a CSV import and an API
would give them, schema inference, missing values and categories, and one ONNX file per model
that ONNX Runtime runs from JSON rows (through ``row_feed``) with scikit-learn's results."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_diabetes, load_wine

from dyntrain import learners
from dyntrain.kernel.errors import Invalid, NotReady
from dyntrain.learners import tabular as tb
from dyntrain.learners.candidates import Candidate

CLASSIFIERS = ["tabular.hgb", "tabular.linear"]
REGRESSORS = ["tabular.hgb_regressor", "tabular.ridge"]
# ONNX vs scikit-learn, measured on this data: probabilities <= 2.4e-7 (both classifiers);
# regression values <= 2.5e-5 absolute on targets 25..346, i.e. <= 2e-7 relative (float32).
PROBA_TOL = 1e-5
VALUE_RTOL = 1e-6


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def wine_rows():
    """Wine as CSV text cells, plus a derived categorical column, and blanks (~15%)."""
    data = load_wine()
    rng = np.random.default_rng(0)
    names = list(data.feature_names)  # includes "od280/od315_of_diluted_wines"
    rows = []
    for x in data.data:
        row = {name: repr(float(v)) for name, v in zip(names, x)}
        row["hue band"] = ["low", "mid", "high"][int(np.digitize(x[names.index("hue")], [0.8, 1.1]))]
        for name in ("alcohol", "flavanoids", "hue band"):
            if rng.random() < 0.15:
                row[name] = ""
        rows.append(row)
    return rows, data.target, names


@pytest.fixture(scope="module")
def wine(wine_rows):
    rows, y, names = wine_rows
    schema = tb.infer_schema(rows)
    X = tb.to_matrix(rows, schema)
    idx = np.random.default_rng(1).permutation(len(rows))
    return {"rows": rows, "schema": schema, "X": X, "y": y, "train": idx[:130], "test": idx[130:]}


def _json_rows(rows, schema):
    """The rows as an API client would send them: numbers, null, absent keys, extra keys,
    "NA", an unseen category."""
    out = []
    for i, row in enumerate(rows):
        obj = {"comment": "ignored"}
        for col in schema:
            v = row[col["name"]]
            obj[col["name"]] = (float(v) if v else None) if col["type"] == tb.NUMERIC else (v or None)
        if i % 7 == 0:
            del obj["alcohol"]
        if i % 11 == 0:
            obj["flavanoids"] = "NA"
        if i % 13 == 0:
            obj["hue band"] = "purple"
        out.append(obj)
    return out


# -- schema -------------------------------------------------------------------------------
def test_infer_schema_types_order_and_missing(wine_rows, wine):
    rows, _, names = wine_rows
    assert [c["name"] for c in wine["schema"]] == names + ["hue band"]
    assert all(c["type"] == tb.NUMERIC for c in wine["schema"][:-1])
    assert wine["schema"][-1]["type"] == tb.CATEGORICAL
    mixed = [{"n": "1", "c": "3", "b": True, "e": None, "y": 0},
             {"n": 2.5, "c": "x", "b": False, "y": 1, "later": "4"},
             {"n": " NA ", "c": "", "e": "", "y": 1}]
    assert tb.infer_schema(mixed, exclude=["y"]) == [
        {"name": "n", "type": "numeric"}, {"name": "c", "type": "categorical"},
        {"name": "b", "type": "categorical"}, {"name": "e", "type": "categorical"},
        {"name": "later", "type": "numeric"}]
    with pytest.raises(Invalid):
        tb.infer_schema([{"": "1", "a": "2"}])
    with pytest.raises(Invalid):
        tb.infer_schema(["not a row"])


def test_to_matrix_and_row_feed_agree(wine):
    X, schema = wine["X"], wine["schema"]
    assert X.shape == (178,) and X.dtype.names == tuple(c["name"] for c in schema)
    assert tb.schema_of(X) == schema and tb.schema_of(X[wine["train"]]) == schema
    alcohol = X["alcohol"]
    assert alcohol.dtype == np.float64 and 0 < np.isnan(alcohol).sum() < 60
    assert set(X["hue band"]) == {"", "low", "mid", "high"}
    feed = tb.row_feed(schema, wine["rows"])
    assert list(feed) == [c["name"] for c in schema]
    assert feed["alcohol"].dtype == np.float32 and feed["alcohol"].shape == (178, 1)
    np.testing.assert_array_equal(feed["alcohol"][:, 0].astype(np.float64), alcohol)  # NaN == NaN here
    assert feed["hue band"][:, 0].tolist() == X["hue band"].tolist()
    # CSV text and JSON values give the same cells
    assert tb.row_feed([{"name": "c", "type": "categorical"}], [{"c": 3.0}, {"c": "3"}, {"c": True}, {"c": "TRUE"}]
                       )["c"][:, 0].tolist() == ["3", "3", "true", "true"]
    with pytest.raises(Invalid, match="alcohol"):
        tb.row_feed(schema, [{"alcohol": "lots"}])
    with pytest.raises(Invalid):
        tb.to_matrix([{"alcohol": [1]}], schema)


# -- classification ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_fit_predict_and_onnx(name, wine, tmp_path):
    X, y, tr, te = wine["X"], wine["y"], wine["train"], wine["test"]
    cls = learners.get(name)
    assert cls.contract == "classifier" and cls.input_kind == tb.TABLE == "table.rows"
    learner = cls()
    assert cls(**learner.get_params()).get_params() == learner.get_params() == learner.clone().get_params()
    json.dumps(learner.get_params())  # run records store them as JSON
    with pytest.raises(NotReady):
        learner.predict_proba(X[:2])
    learner.fit(X[tr], y[tr], n_classes=4)  # class 3 never seen: still a column
    p = learner.predict_proba(X[te])
    assert p.shape == (len(te), 4) and p.dtype == np.float32
    assert np.allclose(p.sum(1), 1, atol=1e-5) and (p[:, 3] == 0).all()
    assert (p.argmax(1) == y[te]).mean() > 0.85
    assert learner.predict_proba(X[:0]).shape == (0, 4)

    path = learner.export_onnx(tmp_path / "model.onnx")
    session = _session(path)
    inputs = {i.name: i.type for i in session.get_inputs()}
    assert list(inputs) == [c["name"] for c in wine["schema"]]
    assert inputs["alcohol"] == "tensor(float)" and inputs["hue band"] == "tensor(string)"
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    json_rows = _json_rows(wine["rows"], wine["schema"])
    served = session.run(["probabilities"], tb.row_feed(wine["schema"], json_rows))[0]
    expected = learner.predict_proba(tb.to_matrix(json_rows, wine["schema"]))
    assert served.shape == (178, 4)
    assert np.abs(served - expected).max() < PROBA_TOL
    assert (served[:, 3] == 0).all()
    # the unseen category and the missing values were really there
    assert np.isnan(tb.to_matrix(json_rows, wine["schema"])["alcohol"]).sum() > 25


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_two_and_one_class(name, wine, tmp_path):
    X, y = wine["X"], wine["y"]
    keep = np.flatnonzero(y != 1)  # classes 0 and 2 of 3: binary model, middle column empty
    learner = learners.get(name)().fit(X[keep], y[keep], n_classes=3, sample_weight=np.ones(len(keep)))
    p = learner.predict_proba(X)
    assert (p[:, 1] == 0).all() and (p[keep].argmax(1) == y[keep]).mean() > 0.9
    session = _session(learner.export_onnx(tmp_path / "bin.onnx"))
    served = session.run(None, tb.row_feed(wine["schema"], wine["rows"]))[0]
    assert np.abs(served - p).max() < PROBA_TOL

    only = np.flatnonzero(y == 2)[:10]
    learner = learners.get(name)().fit(X[only], y[only], n_classes=3)
    p = learner.predict_proba(X[:5])
    assert np.allclose(p, [[0, 0, 1]] * 5, atol=1e-6)
    session = _session(learner.export_onnx(tmp_path / "one.onnx"))
    served = session.run(None, tb.row_feed(wine["schema"], wine["rows"][:5]))[0]
    assert np.allclose(served, p, atol=1e-6)


def test_selection_slices_table_features(wine):
    """Model selection passes X[train_idx] and rebuilds learners from params: the schema
    travels with the array."""
    score = learners.cross_validate(Candidate("tabular.linear", {"C": 1.0}), wine["X"], wine["y"], n_classes=3,
                                    n_splits=3)
    assert score.macro_f1_mean > 0.85


# -- regression ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diabetes():
    data = load_diabetes()
    rows = [{name: float(v) for name, v in zip(data.feature_names, x)} for x in data.data]
    for i, row in enumerate(rows):  # "sex" is a 2-valued code: make it a categorical column
        row["sex"] = "F" if row["sex"] > 0 else "M"
        if i % 9 == 0:
            row["s4"] = None
    schema = tb.infer_schema(rows)
    idx = np.random.default_rng(0).permutation(len(rows))
    return {"rows": rows, "schema": schema, "X": tb.to_matrix(rows, schema), "y": data.target,
            "train": idx[:340], "test": idx[340:]}


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_fit_predict_metrics_and_onnx(name, diabetes, tmp_path):
    X, y, tr, te = diabetes["X"], diabetes["y"], diabetes["train"], diabetes["test"]
    assert {c["name"]: c["type"] for c in diabetes["schema"]}["sex"] == tb.CATEGORICAL
    cls = learners.get(name)
    assert cls.contract == "regressor" and cls.input_kind == tb.TABLE
    learner = cls().fit(X[tr], y[tr], n_classes=None)
    pred = learner.predict(X[te])
    assert pred.shape == (len(te),) and pred.dtype == np.float64
    with pytest.raises(Invalid, match="regression learner"):
        learner.predict_proba(X[te])

    m = tb.regression_metrics(y[te], pred)
    assert m["n"] == len(te) and m["r2"] > 0.3
    assert math.isclose(m["mae"], np.abs(y[te] - pred).mean(), rel_tol=1e-5)
    assert math.isclose(m["rmse"], np.sqrt(((y[te] - pred) ** 2).mean()), rel_tol=1e-5)
    assert m["mae"] <= m["rmse"] < np.std(y[te])
    assert 0 < len(m["points"]) <= 200 and set(m["points"][0]) == {"index", "true", "predicted"}

    session = _session(learner.export_onnx(tmp_path / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["value"]
    rows = [dict(r) for r in diabetes["rows"]]
    rows[0]["sex"], rows[1]["sex"] = "X", None  # unseen and missing category
    del rows[2]["s1"]
    served = session.run(["value"], tb.row_feed(diabetes["schema"], rows))[0]
    expected = learner.predict(tb.to_matrix(rows, diabetes["schema"]))
    assert served.shape == (len(rows), 1)
    np.testing.assert_allclose(served[:, 0], expected, rtol=VALUE_RTOL, atol=1e-4)


def test_regression_metrics_edge_cases():
    m = tb.regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.0], max_points=3)
    assert (m["mae"], m["rmse"], m["r2"], m["n"]) == (0.25, 0.353553, 0.9, 4)
    assert [p["index"] for p in m["points"]] == [0, 2, 3]
    assert tb.regression_metrics([5.0], [4.0])["r2"] is None
    assert tb.regression_metrics([], [])["n"] == 0
    with pytest.raises(Invalid):
        tb.regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(Invalid):
        tb.regression_metrics([1.0, np.nan], [1.0, 2.0])


# -- contract and guards --------------------------------------------------------------------------
def test_registry_params_and_invalid_inputs(wine, diabetes):
    assert learners.names("tabular.") == ["tabular.linear", "tabular.hgb", "tabular.ridge", "tabular.hgb_regressor"]
    X, y = wine["X"][:40], wine["y"][:40]
    with pytest.raises(Invalid):
        learners.get("tabular.linear")(C=-1).fit(X, y, n_classes=3)
    with pytest.raises(Invalid):
        learners.get("tabular.hgb")(max_iter=0).fit(X, y, n_classes=3)
    with pytest.raises(Invalid):
        learners.get("tabular.hgb")().fit(np.zeros((40, 3)), y, n_classes=3)  # not a table
    with pytest.raises(Invalid):
        learners.get("tabular.ridge")().fit(diabetes["X"][:10], [1.0] * 9 + [np.nan])
    fitted = learners.get("tabular.linear")().fit(X, y, n_classes=3)
    with pytest.raises(Invalid):  # different columns than at training
        fitted.predict_proba(tb.to_matrix(wine["rows"][:2], wine["schema"][:3]))
    # a column may not share the output's name
    rows = [{"value": float(i), "x": float(i % 3)} for i in range(30)]
    with pytest.raises(Invalid, match="value"):
        learners.get("tabular.ridge")().fit(tb.to_matrix(rows, tb.infer_schema(rows)), np.arange(30.0))


def test_column_names_like_internal_placeholders(tmp_path):
    """Inputs are renamed after conversion: columns whose names look like placeholders must
    still get their own values."""
    rng = np.random.default_rng(0)
    rows = [{"col1": float(a), "col0": str(b), "a b/c": float(c)}
            for a, b, c in zip(rng.normal(size=120), rng.integers(0, 3, 120), rng.normal(size=120))]
    y = np.array([r["col1"] + (r["col0"] == "2") * 2 for r in rows])
    schema = tb.infer_schema(rows)
    assert [c["type"] for c in schema] == ["numeric", "numeric", "numeric"]
    schema[1]["type"] = tb.CATEGORICAL  # a code column the user marked categorical
    X = tb.to_matrix(rows, schema)
    learner = learners.get("tabular.ridge")().fit(X, y)
    served = _session(learner.export_onnx(tmp_path / "m.onnx")).run(None, tb.row_feed(schema, rows))[0][:, 0]
    np.testing.assert_allclose(served, learner.predict(X), rtol=1e-6, atol=1e-5)
    assert tb.regression_metrics(y, served)["r2"] > 0.99


def test_row_feed_does_not_import_sklearn_or_torch():
    code = ("import sys; from dyntrain.learners.tabular import row_feed; "
            "row_feed([{'name': 'a', 'type': 'numeric'}], [{'a': 1}]); "
            "print(sorted(m for m in ('sklearn', 'torch', 'skl2onnx', 'onnx', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
