"""Typed columns of table rows — NumPy only, shared by training and serving (no learners).

Rows → features: :func:`infer_schema` decides each column's type from JSON-like rows (strings
from a CSV, numbers, ``None``); :func:`to_matrix` turns rows into the feature kind ``table.rows``:
a NumPy *structured* array of shape (n,), one field per column — ``float64`` for numeric columns
(NaN = missing, values rounded to float32 because that is what the ONNX graph sees) and
``object`` (str, ``""`` = missing) for categorical ones; :func:`schema_of` reads the schema back.
Serving feeds a table model's ONNX file from JSON rows with :func:`row_feed`, parsing exactly as
:func:`to_matrix` does. The learners are in :mod:`dyntrain.learners.tabular`.

>>> rows = [{"age": "31", "city": "Oslo", "y": "yes"}, {"age": "", "city": "Rome", "y": "no"}]
>>> schema = infer_schema(rows, exclude=["y"])
>>> schema
[{'name': 'age', 'type': 'numeric'}, {'name': 'city', 'type': 'categorical'}]
>>> X = to_matrix(rows, schema)
>>> X["age"], X["city"]
(array([31., nan]), array(['Oslo', 'Rome'], dtype=object))
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..kernel.errors import Invalid

__all__ = ["TABLE", "NUMERIC", "CATEGORICAL", "MISSING_CATEGORY", "infer_schema", "to_matrix", "schema_of",
           "row_feed", "parse_number"]

TABLE = "table.rows"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
MISSING_CATEGORY = ""

# In a numeric column these strings (any case) mean "missing", as pandas reads CSVs.
_MISSING_WORDS = frozenset({"", "na", "n/a", "nan", "null", "none"})


# -- values -------------------------------------------------------------------------------
def _number(value: Any) -> float:
    """float (NaN if missing); ValueError if ``value`` is not a number."""
    if value is None:
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
    elif isinstance(value, str):
        s = value.strip()
        if s.lower() in _MISSING_WORDS:
            return math.nan
        if "_" in s:  # float() accepts "1_000"; a CSV number never looks like that
            raise ValueError(f"{value!r} is not a number")
        x = float(s)
    else:
        raise ValueError(f"{type(value).__name__} is not a number")
    # float32 is what the ONNX graph computes with; overflow there counts as missing.
    x = float(np.float32(x)) if math.isfinite(x) and abs(x) < 3.4e38 else math.nan
    return x


def parse_number(value: Any) -> float:
    """A cell as a number (float32 precision): NaN if missing, :class:`Invalid` if not a
    number. Useful for a regression target read from a CSV.

    >>> parse_number(" 2.5 "), parse_number(None), parse_number("NA")
    (2.5, nan, nan)
    """
    try:
        return _number(value)
    except (ValueError, OverflowError):
        raise Invalid(f"{value!r} is not a number") from None


def _category(value: Any) -> str:
    """A cell of a categorical column as a canonical string ("" if missing).

    Numbers and number-like strings are written one way (3, 3.0 and "3.0" → "3"), booleans
    as "true"/"false", so a CSV import and a JSON row give the same category.
    """
    if value is None:
        return MISSING_CATEGORY
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
        if math.isnan(x):
            return MISSING_CATEGORY
        return _number_text(x) if math.isfinite(x) else str(value)
    s = str(value).strip()
    if s.lower() in ("true", "false"):
        return s.lower()
    try:
        x = float(s)
    except ValueError:
        return s
    return _number_text(x) if math.isfinite(x) and "_" not in s else s


def _number_text(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in _MISSING_WORDS
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    return False


# -- schema and matrix ------------------------------------------------------------------------
def _check_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise Invalid(f"row {i} is a {type(row).__name__}, expected an object of column: value")


def infer_schema(rows: Sequence[Mapping[str, Any]], *, exclude: Iterable[str] = ()) -> list[dict[str, str]]:
    """Each column's name and type, in order of first appearance (a CSV's header order).

    A column is ``numeric`` if every non-missing value is a number or a string that parses
    as one, and at least one value is present; otherwise ``categorical``. Missing: absent
    key, ``None``, NaN, blank, and in would-be numeric columns "NA", "N/A", "NaN", "null",
    "None". ``exclude`` names columns to leave out (the target, an id).

    >>> infer_schema([{"a": "1", "b": "x"}, {"a": 2.5, "b": 3, "c": None}])
    [{'name': 'a', 'type': 'numeric'}, {'name': 'b', 'type': 'categorical'}, {'name': 'c', 'type': 'categorical'}]
    """
    _check_rows(rows)
    skip = set(exclude)
    names: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in skip:
                names.setdefault(key, None)
    schema = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise Invalid(f"column names must be non-empty strings, got {name!r}; name or drop that column")
        numeric, present = True, False
        for row in rows:
            value = row.get(name)
            if _is_missing(value):
                continue
            present = True
            try:
                _number(value)
            except (ValueError, OverflowError):
                numeric = False
                break
        schema.append({"name": name, "type": NUMERIC if numeric and present else CATEGORICAL})
    return schema


def _check_schema(schema: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    out, seen = [], set()
    for col in schema:
        name, kind = col.get("name"), col.get("type")
        if not isinstance(name, str) or not name.strip():
            raise Invalid(f"column names must be non-empty strings, got {name!r}")
        if name in seen:
            raise Invalid(f"column {name!r} appears twice in the schema")
        if kind not in (NUMERIC, CATEGORICAL):
            raise Invalid(f"column {name!r} has type {kind!r}; expected 'numeric' or 'categorical'")
        seen.add(name)
        out.append({"name": name, "type": kind})
    if not out:
        raise Invalid("the table has no feature columns")
    return out


def _column(rows: Sequence[Mapping[str, Any]], name: str, kind: str) -> list:
    if kind == CATEGORICAL:
        return [_category(row.get(name)) for row in rows]
    values = []
    for i, row in enumerate(rows):
        try:
            values.append(_number(row.get(name)))
        except (ValueError, OverflowError):
            raise Invalid(f"row {i}: column {name!r} is numeric but holds {row.get(name)!r}") from None
    return values


def to_matrix(rows: Sequence[Mapping[str, Any]], schema: Sequence[Mapping[str, str]]) -> np.ndarray:
    """Rows as the ``table.rows`` feature array: structured, shape (n,), one field per column.

    Numeric fields are float64 (NaN = missing; float32 precision), categorical fields are
    ``object`` holding str (``""`` = missing). Keys not in ``schema`` are ignored; a value
    that is not a number in a numeric column raises :class:`Invalid`.

    >>> schema = [{"name": "n", "type": "numeric"}, {"name": "c", "type": "categorical"}]
    >>> X = to_matrix([{"n": "1.5", "c": None}], schema)
    >>> X.dtype.names, X[0]["n"], X[0]["c"]
    (('n', 'c'), np.float64(1.5), '')
    """
    _check_rows(rows)
    schema = _check_schema(schema)
    dtype = np.dtype([(c["name"], np.float64 if c["type"] == NUMERIC else object) for c in schema])
    X = np.empty(len(rows), dtype=dtype)
    for col in schema:
        X[col["name"]] = _column(rows, col["name"], col["type"])
    return X


def schema_of(X: np.ndarray) -> list[dict[str, str]]:
    """The schema a ``table.rows`` array carries (float64 fields numeric, object categorical).

    >>> schema_of(to_matrix([{"a": 1, "b": "x"}], infer_schema([{"a": 1, "b": "x"}])))
    [{'name': 'a', 'type': 'numeric'}, {'name': 'b', 'type': 'categorical'}]
    """
    X = np.asarray(X)
    if X.dtype.names is None or X.ndim != 1:
        raise Invalid("table features must be the structured array made by tabular.to_matrix")
    schema = []
    for name in X.dtype.names:
        kind = X.dtype.fields[name][0]
        if kind == np.float64:
            schema.append({"name": name, "type": NUMERIC})
        elif kind == object:
            schema.append({"name": name, "type": CATEGORICAL})
        else:
            raise Invalid(f"column {name!r} has dtype {kind}; expected float64 or object (see tabular.to_matrix)")
    return _check_schema(schema)


def row_feed(schema: Sequence[Mapping[str, str]], rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The ONNX Runtime feed for JSON rows: ``{column: float32 [n,1] | object str [n,1]}``.

    The same parsing as :func:`to_matrix` (NumPy only, safe for serving). Keys not in
    ``schema`` are ignored; absent keys are missing values; a non-number in a numeric
    column raises :class:`Invalid` naming the row and column.

    >>> feed = row_feed([{"name": "n", "type": "numeric"}, {"name": "c", "type": "categorical"}],
    ...                 [{"n": 2, "c": "a", "extra": 1}, {}])
    >>> feed["n"].tolist(), feed["c"].tolist()
    ([[2.0], [nan]], [['a'], ['']])
    """
    _check_rows(rows)
    feed = {}
    for col in _check_schema(schema):
        values = _column(rows, col["name"], col["type"])
        if col["type"] == NUMERIC:
            feed[col["name"]] = np.array(values, dtype=np.float32).reshape(-1, 1)
        else:
            feed[col["name"]] = np.array(values, dtype=object).reshape(-1, 1)
    return feed
