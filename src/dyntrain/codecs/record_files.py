"""Records from uploaded files, shared by the interaction and catalogue codecs: JSON Lines, CSV
with a header row, and the one refusal that names every wrong record. Torch-free, numpy-free.

>>> columns, rows = csv_records("user,item\\n1,a\\n", "x.csv")
>>> columns, list(rows)
(['user', 'item'], [{'user': '1', 'item': 'a'}])
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterator, Mapping

from ..kernel.errors import Invalid

__all__ = ["json_lines", "csv_records", "read_records", "refuse_wrong"]

MAX_DETAILS = 100  # wrong records listed one by one in an error's details


def json_lines(text: str) -> Iterator[Any]:
    """One JSON value per non-empty line; a line that is not JSON is an :class:`Invalid` naming it."""
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            raise Invalid(f"line {n} is not JSON ({exc.msg}); each line must be one object") from None


def csv_records(text: str, filename: str) -> tuple[list[str], Iterator[dict[str, str]]]:
    """(column names, rows as dicts, read lazily: a million-row import is never all in memory).
    A file the csv module cannot read (a stray quote, a bare carriage return) is an
    :class:`Invalid` naming the file, at the header or at the row where it happens."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        columns = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise Invalid(f"{filename} is not a readable CSV file: {exc}") from None

    def rows() -> Iterator[dict[str, str]]:
        try:
            yield from reader
        except csv.Error as exc:
            raise Invalid(f"{filename} is not a readable CSV file (after line {reader.line_num}): {exc}") from None

    return columns, rows()


def read_records(data: bytes, filename: str, format: str | None, columns: Mapping[str, str | None],
                 noun: str) -> tuple[Iterator[Any], int, list[str] | None]:
    """(records, line of the first record, the CSV's column names or None) of an uploaded CSV (header
    row) or JSON Lines file — by ``format``, else by the file's extension. ``columns`` maps what a
    column holds to its name; a CSV lacking a named one is refused, naming what it has."""
    fmt = (format or ("jsonl" if filename.lower().endswith((".jsonl", ".ndjson", ".json")) else "csv")).lower()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid(f"{filename} is not UTF-8 text: save it as UTF-8 CSV or JSON Lines") from None
    if fmt == "jsonl":
        return json_lines(text), 1, None
    if fmt != "csv":
        raise Invalid(f"unknown {noun} file format {format!r}: use csv or jsonl")
    names, rows = csv_records(text, filename)
    missing = [f"{what} column {name!r}" for what, name in columns.items() if name and name not in names]
    if missing:
        raise Invalid(f"{filename} has no {', no '.join(missing)}; its columns are: "
                      f"{', '.join(names) or '(none: the first line must name the columns)'}")
    return rows, 2, names  # the header is line 1


def refuse_wrong(problems: list[dict[str, Any]], counted: int, noun: str) -> None:
    """Raise one :class:`Invalid` for a batch with wrong records (``problems``: ``{"row", "reason"}``),
    naming the first and listing up to MAX_DETAILS: a batch is taken whole or not at all."""
    if problems:
        first = problems[0]
        raise Invalid(f"{len(problems)} of {counted} {noun} are wrong; row {first['row']}: {first['reason']}. "
                      "Nothing was added", details=problems[:MAX_DETAILS])
