"""Interactions as clients send them: checked one by one, every bad one named.

An interaction is a user id, an item id and optionally a rating, a weight and when it happened,
as a JSON object or a CSV / JSON Lines row whose column names are mapped. Shared by the server
(:mod:`dyntrain.datasets.interactions` stores them) and the CLI (which checks a whole file before
sending anything); no database here.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Iterable

from ..kernel.errors import Invalid, TooLarge
from .record_files import read_records, refuse_wrong

__all__ = ["MAX_IMPORT_ROWS", "MAX_ID", "check_id", "parse_records", "read_file", "wire"]

#: Most interactions one imported file may hold.
MAX_IMPORT_ROWS = 2_000_000
#: Longest user or item id.
MAX_ID = 200
#: Problems named in an error's details (the message counts them all).


def check_id(value: Any, what: str) -> str:
    if isinstance(value, bool) or value is None:
        raise Invalid(f"{what} id is missing")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise Invalid(f"{what} id {value!r} is not an id (use text or whole numbers)")
        value = int(value)
    if not isinstance(value, (str, int)):
        raise Invalid(f"{what} id must be text or a whole number, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise Invalid(f"{what} id is empty")
    if len(text) > MAX_ID:
        raise Invalid(f"{what} id is {len(text)} characters long; the limit is {MAX_ID}")
    return text


def _number(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise Invalid(f"{what} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise Invalid(f"{what} must be a finite number, got {value!r}")
    return x


def _time(value: Any) -> datetime | None:
    """An event time: ISO 8601 text (UTC unless it says otherwise) or Unix seconds."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, bool):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = None
        if seconds is not None:
            if not math.isfinite(seconds) or not 0 <= seconds < 4e9:
                raise Invalid(f"time {value!r} is not a Unix time in seconds")
            return datetime.fromtimestamp(seconds, timezone.utc)
        try:
            t = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            # in UTC: the database keeps the wall time, and reads it back as UTC
            return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    raise Invalid(f"time {value!r} is neither ISO 8601 (2026-12-05T09:30:00Z) nor Unix seconds")


def _record(raw: Any, fields: dict[str, str | None]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Invalid(f"an interaction is an object {{\"user\", \"item\"[, \"rating\", \"weight\", \"time\"]}}, "
                      f"got {type(raw).__name__}")
    missing = [fields[k] for k in ("user", "item") if fields[k] not in raw]
    if missing:
        raise Invalid(f"no {' and no '.join(repr(m) for m in missing)}")
    weight = _number(raw.get(fields["weight"]) if fields["weight"] else None, "weight")
    if weight is not None and weight <= 0:
        raise Invalid(f"weight must be positive, got {weight:g}")
    return {"user_id": check_id(raw[fields["user"]], "user"), "item_id": check_id(raw[fields["item"]], "item"),
            "rating": _number(raw.get(fields["rating"]) if fields["rating"] else None, "rating"),
            "weight": 1.0 if weight is None else weight,
            "at": _time(raw.get(fields["time"]) if fields["time"] else None)}


def parse_records(records: Iterable[Any], *, user: str = "user", item: str = "item", rating: str | None = "rating",
                  weight: str | None = "weight", time: str | None = "time", first_row: int = 1) -> list[dict]:
    """Check interactions (objects naming the user, the item and optionally a rating, a weight
    and a time under the given field names); every bad one is named, then nothing is kept.

    >>> parse_records([{"user": 7, "item": "a", "rating": "4.5"}])[0]["rating"]
    4.5
    """
    fields = {"user": user, "item": item, "rating": rating, "weight": weight, "time": time}
    out, problems, n = [], [], 0
    for n, raw in enumerate(records, start=first_row):
        try:
            out.append(_record(raw, fields))
        except Invalid as exc:
            problems.append({"row": n, "reason": exc.message})
    refuse_wrong(problems, n - first_row + 1, "interactions")
    if not out:
        raise Invalid("no interactions were sent: give at least one {\"user\", \"item\"}")
    return out


def read_file(data: bytes, filename: str, *, user: str, item: str, rating: str | None = None,
              weight: str | None = None, time: str | None = None, format: str | None = None) -> list[dict]:
    """Interactions from a CSV (header row) or JSON Lines file, with its column names mapped:
    ``user`` and ``item`` name the columns holding the ids, the others are optional."""
    wanted = {"user": user, "item": item, "rating": rating, "weight": weight, "time": time}
    records, first, _ = read_records(data, filename, format, wanted, "interaction")
    rows: Iterable[Any] = _limited(records)
    return parse_records(rows, user=user, item=item, rating=rating, weight=weight, time=time, first_row=first)



def _limited(rows: Iterable[Any]):
    for n, row in enumerate(rows, start=1):
        if n > MAX_IMPORT_ROWS:
            raise TooLarge(f"the file holds more than {MAX_IMPORT_ROWS:,} interactions: split it into parts")
        yield row


def wire(record: dict[str, Any]) -> dict[str, Any]:
    """A checked interaction as the API takes it (the time as ISO 8601)."""
    out = {"user": record["user_id"], "item": record["item_id"], "weight": record["weight"]}
    if record["rating"] is not None:
        out["rating"] = record["rating"]
    if record["at"] is not None:
        out["time"] = record["at"].isoformat()
    return out
