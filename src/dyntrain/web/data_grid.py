"""The data grid's search, filters and paging (the class-card data view of images and texts).

The page asks for what it shows with query parameters of its fragment URL: ``q`` (a piece of
the file name, or of the text), ``source`` (how samples came: uploaded, imported, from
predictions …), ``since`` and ``before`` (the day a sample was added, ``YYYY-MM-DD``: on or after
``since``, strictly before ``before``; days are UTC days, as the dates are stored), ``only``
(sample ids, e.g. those the data check flagged: the check runs in the browser's call to
GET /health, so the page sends its ids) and ``show.<class>`` (how many of a
class to show: pages of :data:`PAGE`). Every matching id is listed too, so "select all
matching" selects past the shown pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timezone
from typing import Any, Iterable, Mapping

__all__ = ["PAGE", "Filters", "parse", "source_kind", "source_words", "grid"]

#: Samples of a class shown at first and added by each "show more".
PAGE = 300

#: How a sample came into the project, by the first part of its ``source`` ("prediction:12").
_SOURCES = {
    "upload": "uploaded", "import": "imported from a file", "prediction": "added from a prediction",
    "unlabelled": "labelled in the queue", "demo": "demo data", "broker": "sent through a message broker",
    "restore": "brought back from an older version",
}


def source_kind(source: str | None) -> str:
    """``prediction:12`` → ``prediction``: sources are filtered by kind."""
    return (source or "upload").split(":", 1)[0]


def source_words(source: str | None) -> str:
    kind = source_kind(source)
    return _SOURCES.get(kind, kind)


@dataclass(frozen=True)
class Filters:
    q: str = ""
    source: str = ""
    only: frozenset[int] | None = None
    show: Mapping[str, int] = field(default_factory=dict)
    since: date | None = None
    before: date | None = None

    @property
    def active(self) -> bool:
        return bool(self.q or self.source or self.only is not None or self.since or self.before)

    def added_in_range(self, added) -> bool:
        """Whether a sample added at ``added`` (a datetime) is in the chosen days."""
        # a UTC day whatever the database hands back: SQLite naive UTC, PostgreSQL aware in its zone
        day = (added.astimezone(timezone.utc) if added.tzinfo else added).date()
        return (self.since is None or day >= self.since) and (self.before is None or day < self.before)


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None  # a half-typed date is no filter rather than an error page


def parse(params: Iterable[tuple[str, str]]) -> Filters:
    """Filters from a query string's pairs; nonsense is ignored rather than refused (a page).

    >>> f = parse([("q", " Cat "), ("only", "3,x,5"), ("show.big cat", "600"), ("show.b", "-1"),
    ...            ("since", "2026-12-01"), ("before", "soon")])
    >>> f.q, sorted(f.only), dict(f.show), f.since.isoformat(), f.before
    ('cat', [3, 5], {'big cat': 600}, '2026-12-01', None)
    """
    q, source, only, show, since, before = "", "", None, {}, None, None
    for key, value in params:
        if key == "q":
            q = value.strip().lower()[:200]
        elif key == "source":
            source = value.strip()[:50]
        elif key == "only":
            only = frozenset(int(v) for v in value.split(",") if v.strip().isdigit())
        elif key == "since":
            since = _day(value)
        elif key == "before":
            before = _day(value)
        elif key.startswith("show.") and value.isdigit() and int(value) > 0:
            show[key[5:]] = int(value)
    return Filters(q, source, only, show, since, before)


def _text_of(sample, previews: Mapping[str, str]) -> str:
    meta = sample.meta or {}
    return " ".join(str(x) for x in (meta.get("filename"), meta.get("preview"), previews.get(sample.content_hash))
                    if x).lower()


def grid(samples: list, labels: list[str], filters: Filters, previews: Mapping[str, str] | None = None
         ) -> dict[str, Any]:
    """Per class: the matching samples (in the order added), how many match, how many to show,
    and each sample's place in its class (the name people see: "photo 3 of cup")."""
    previews = previews or {}
    position: dict[int, int] = {}
    by_label: dict[str, list] = {label: [] for label in labels}
    counts: dict[str, int] = {}
    sources: dict[str, int] = {}
    for s in samples:
        counts[s.label] = counts.get(s.label, 0) + 1
        position[s.id] = counts[s.label]
        kind = source_kind(s.source)
        sources[kind] = sources.get(kind, 0) + 1
        if filters.only is not None and s.id not in filters.only:
            continue
        if filters.source and kind != filters.source:
            continue
        if filters.q and filters.q not in _text_of(s, previews):
            continue
        if (filters.since or filters.before) and not filters.added_in_range(s.created_at):
            continue
        by_label.setdefault(s.label, []).append(s)
    shown = {label: max(PAGE, filters.show.get(label, PAGE)) for label in by_label}
    return {"by_label": by_label, "position": position, "shown": shown,
            "matching": sum(len(v) for v in by_label.values()),
            "matching_ids": [s.id for v in by_label.values() for s in v],
            "sources": [(k, _SOURCES.get(k, k), n) for k, n in sorted(sources.items())], "filters": filters}
