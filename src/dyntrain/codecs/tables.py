"""Torch-free table-row handling shared by data import, training and serving (like
:mod:`dyntrain.codecs.imaging` and :mod:`dyntrain.codecs.texts`).

A tabular sample's content is its feature cells as **canonical JSON**: keys sorted, every
present value written as the canonical string the learners see (3, 3.0 and "3.0" → "3",
booleans "true"/"false"), missing values (None, blank) as ``null`` (a NaN or infinite number
is refused, naming its column). So the same row
from a CSV file and from a JSON request has the same bytes, the same sha256 and the same
holdout side. The target is not part of the content: it is the sample's label (a class, or
for ``tabular-regression`` the number as canonical text, see :func:`target_text`), so a
dataset version's exact (content hash, label) pairs still say what was trained on.

>>> row_bytes({"b": 3.0, "a": " Oslo ", "c": ""})
b'{"a":"Oslo","b":"3","c":null}'
>>> target_text(" 151.0 "), target_text(0.25)
('151', '0.25')
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..kernel.errors import Invalid, TooLarge

__all__ = [
    "MAX_COLUMNS", "MAX_ROW_BYTES", "canonical_row", "row_bytes", "decode_row", "target_text", "class_text",
    "target_histogram", "read_csv_rows", "split_target", "check_row", "row_preview",
]

MAX_COLUMNS = 500
MAX_ROW_BYTES = 64_000
MAX_NAME_CHARS = 200


def _cell(value: Any, column: str = "") -> str | None:
    from .table_features import _category

    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        # JSON's NaN / Infinity (Python's json accepts them): refused rather than quietly taken
        # for a missing value, which would hide a bug upstream of the caller.
        where = f"column {column!r}" if column else "a cell"
        raise Invalid(f"{where} holds {value!r}, not a finite number; send null for a missing value")
    if isinstance(value, (dict, list, tuple, set)):
        raise Invalid(f"a cell holds a {type(value).__name__}; cells must be numbers, strings, booleans or null")
    text = _category(value)
    return text if text != "" else None


def canonical_row(row: Mapping[str, Any], *, exclude: Iterable[str] = ()) -> dict[str, str | None]:
    """The row's feature cells in canonical form (see the module docstring), keys sorted.

    >>> canonical_row({"x": 1.50, "y": None, "t": "a"}, exclude=["t"])
    {'x': '1.5', 'y': None}
    """
    if not isinstance(row, Mapping):
        raise Invalid(f"a row must be an object of column: value, got {type(row).__name__}")
    skip = set(exclude)
    out: dict[str, str | None] = {}
    for key, value in row.items():
        if key in skip:
            continue
        name = key.strip() if isinstance(key, str) else key
        if not isinstance(name, str) or not name:
            raise Invalid(f"column names must be non-empty strings, got {key!r}; name or drop that column")
        if len(name) > MAX_NAME_CHARS:
            raise Invalid(f"column name {name[:40]!r}… is longer than {MAX_NAME_CHARS} characters")
        if name in out:
            raise Invalid(f"column {name!r} appears twice")
        out[name] = _cell(value, name)
    if not out:
        raise Invalid("the row has no feature columns")
    if len(out) > MAX_COLUMNS:
        raise TooLarge(f"the row has {len(out)} columns; the limit is {MAX_COLUMNS}")
    return dict(sorted(out.items()))


def row_bytes(row: Mapping[str, Any], *, exclude: Iterable[str] = ()) -> bytes:
    """The canonical JSON bytes of a row (what is stored and hashed)."""
    data = json.dumps(canonical_row(row, exclude=exclude), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(data) > MAX_ROW_BYTES:
        raise TooLarge(f"the row is {len(data)} bytes as JSON; the limit is {MAX_ROW_BYTES}")
    return data


def decode_row(data: bytes) -> dict[str, str | None]:
    """A stored (or uploaded) row back as a dict, canonicalised; :class:`Invalid` if it is not
    a JSON object of column: value.

    >>> decode_row(b'{"a": 2.0}')
    {'a': '2'}
    """
    if len(data) > MAX_ROW_BYTES:
        raise TooLarge(f"the row is {len(data)} bytes; the limit is {MAX_ROW_BYTES}")
    try:
        row = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Invalid("a row must be a JSON object of column: value") from None
    return canonical_row(row)


def target_text(value: Any) -> str:
    """A regression target as canonical number text (float64; integers without ".0").

    >>> target_text("1e3"), target_text(" -2.50")
    ('1000', '-2.5')
    """
    if isinstance(value, bool) or value is None:
        raise Invalid(f"the target must be a number, got {value!r}")
    if isinstance(value, str):
        s = value.strip()
        if not s or "_" in s:
            raise Invalid(f"the target must be a number, got {value!r}" if s else "the target is missing")
        try:
            x = float(s)
        except ValueError:
            raise Invalid(f"the target must be a number, got {value!r}") from None
    elif isinstance(value, (int, float)):
        x = float(value)
    else:
        raise Invalid(f"the target must be a number, got {type(value).__name__}")
    if not math.isfinite(x):
        raise Invalid(f"the target must be a finite number, got {value!r}")
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)


def class_text(value: Any, column: str = "") -> str:
    """A classification target as a label (canonical like a categorical cell: 1.0 → "1").

    >>> class_text(1.0), class_text(" yes ")
    ('1', 'yes')
    """
    text = _cell(value, column)
    if text is None:
        raise Invalid("the target (class) is missing")
    return text


def target_histogram(labels: Sequence[str], bins: int = 4) -> dict[str, int]:
    """A regression dataset version's ``counts``: rows per target range (equal-frequency bins,
    up to ``bins``, at least 2 rows each, equal values never split).

    The scheduler's "can this data train?" check reads these like class counts, so a
    regression dataset trains once it has 4 rows with at least two distinct targets.

    >>> target_histogram(["1", "2", "3", "4", "5"])
    {'1 to 2': 2, '3 to 5': 3}
    >>> target_histogram(["7", "7", "7"])
    {'target always 7': 3}
    """
    values = sorted(float(x) for x in labels)
    n = len(values)
    if n == 0:
        return {}
    if values[0] == values[-1]:
        return {f"target always {_num(values[0])}": n}
    k = max(1, min(bins, n // 2))
    cuts = []
    for i in range(1, k):
        c = round(i * n / k)
        while 0 < c < n and values[c - 1] == values[c]:  # keep equal values in one bin
            c += 1
        if (not cuts or c - cuts[-1] >= 2) and c >= 2 and n - c >= 2:
            cuts.append(c)
    edges = [0, *cuts, n]
    return {f"{_num(values[a])} to {_num(values[b - 1])}": b - a for a, b in zip(edges, edges[1:])}


def _num(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else f"{x:.6g}"


def split_target(rows: Sequence[Mapping[str, Any]], target: str, task: str) -> tuple[list[bytes], list[str]]:
    """(canonical row bytes, labels) from rows that hold ``target`` as one of their columns.

    Every row is checked; :class:`Invalid` lists every bad row (nothing is partly accepted).

    >>> split_target([{"x": 1, "y": "2.0"}], "y", "tabular-regression")
    ([b'{"x":"1"}'], ['2'])
    """
    from .. import tasks

    kind = tasks.get(task).target  # its label format, and the model output no column may be named
    if not isinstance(target, str) or not target.strip():
        raise Invalid("name the target column (the column to predict)")
    if not rows:
        raise Invalid("no rows were sent")
    output = kind.output
    contents, labels, bad = [], [], []
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, Mapping):
                raise Invalid(f"a row must be an object of column: value, got {type(row).__name__}")
            if target not in row:
                raise Invalid(f"the target column {target!r} is missing (the row has: {', '.join(map(str, row))[:200]})")
            label = kind.label_from_cell(row[target], target)
            data = row_bytes(row, exclude=[target])
            if output in json.loads(data):
                raise Invalid(f"a column may not be named {output!r} (the model's output); rename it")
            contents.append(data)
            labels.append(label)
        except (Invalid, TooLarge) as exc:
            bad.append({"row": i + 1, "reason": exc.message})
    if bad:
        raise Invalid(f"{len(bad)} of {len(rows)} rows were rejected; nothing was added. First: row {bad[0]['row']}: "
                      f"{bad[0]['reason']}", details=bad[:100])
    return contents, labels


def check_row(schema: Sequence[Mapping[str, str]], row: Mapping[str, Any]) -> None:
    """:class:`Invalid` naming the column if a numeric column holds something else.

    >>> check_row([{"name": "n", "type": "numeric"}], {"n": "abc"})
    Traceback (most recent call last):
    ...
    dyntrain.kernel.errors.Invalid: column 'n' is numeric but holds 'abc'
    """
    from .table_features import NUMERIC, _number

    for col in schema:
        if col["type"] == NUMERIC:
            value = row.get(col["name"])
            try:
                _number(value)
            except (ValueError, OverflowError):
                raise Invalid(f"column {col['name']!r} is numeric but holds {value!r}") from None


def row_preview(row: Mapping[str, Any], chars: int = 120) -> str:
    """A short one-line description of a row, e.g. for a sample's meta.

    >>> row_preview({"a": "1", "b": None})
    'a=1, b=–'
    """
    text = ", ".join(f"{k}={'–' if v is None else v}" for k, v in row.items())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def read_csv_rows(source: str | bytes | io.TextIOBase, *, name: str = "the file",
                  max_rows: int | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a CSV text with a header row; a ragged row raises :class:`Invalid`,
    more than ``max_rows`` rows :class:`TooLarge`.

    >>> read_csv_rows("a,b\\n1,x\\n2,\\n")
    (['a', 'b'], [{'a': '1', 'b': 'x'}, {'a': '2', 'b': ''}])
    """
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid(f"{name} is not UTF-8 text") from None
    if isinstance(source, str):
        source = io.StringIO(source.lstrip("\ufeff"))
    reader = csv.reader(source)
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid(f"{name} is empty; it needs a header row naming the columns") from None
    except csv.Error as exc:
        raise Invalid(f"{name} is not a readable CSV file: {exc}") from None
    header = [h.strip() for h in header]
    if any(not h for h in header):
        raise Invalid(f"{name}: every column needs a name in the header row (column {header.index('') + 1} has none)")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise Invalid(f"{name}: the header names these columns more than once: {', '.join(dupes)}")
    from ..kernel.limits import limit_rows

    rows = []
    lines = ((n, cells) for n, cells in enumerate(reader, 2) if cells and any(c.strip() for c in cells))
    try:
        for n, cells in limit_rows(lines, max_rows, name):
            if len(cells) != len(header):
                raise Invalid(f"{name} line {n} has {len(cells)} cells but the header has {len(header)} columns")
            rows.append(dict(zip(header, cells)))
    except csv.Error as exc:
        raise Invalid(f"{name} is not a readable CSV file: {exc}") from None
    return header, rows
