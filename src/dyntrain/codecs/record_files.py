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
from typing import Any, Iterator

from ..kernel.errors import Invalid

__all__ = ["json_lines", "csv_records", "refuse_wrong"]

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


def refuse_wrong(problems: list[dict[str, Any]], counted: int, noun: str) -> None:
    """Raise one :class:`Invalid` for a batch with wrong records (``problems``: ``{"row", "reason"}``),
    naming the first and listing up to MAX_DETAILS: a batch is taken whole or not at all."""
    if problems:
        first = problems[0]
        raise Invalid(f"{len(problems)} of {counted} {noun} are wrong; row {first['row']}: {first['reason']}. "
                      "Nothing was added", details=problems[:MAX_DETAILS])
