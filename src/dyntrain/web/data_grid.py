"""The data grid's search, filters and paging (the class-card data view of images and texts).

The page asks for what it shows with query parameters of its fragment URL: ``q`` (a piece of
the file name, or of the text), ``source`` (how samples came: uploaded, imported, from
predictions …), ``only`` (sample ids, e.g. those the data check flagged: the check runs in the
browser's call to GET /health, so the page sends its ids) and ``show.<class>`` (how many of a
class to show: pages of :data:`PAGE`). Every matching id is listed too, so "select all
matching" selects past the shown pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

    @property
    def active(self) -> bool:
        return bool(self.q or self.source or self.only is not None)


def parse(params: Iterable[tuple[str, str]]) -> Filters:
    """Filters from a query string's pairs; nonsense is ignored rather than refused (a page).

    >>> f = parse([("q", " Cat "), ("only", "3,x,5"), ("show.big cat", "600"), ("show.b", "-1")])
    >>> f.q, sorted(f.only), dict(f.show)
    ('cat', [3, 5], {'big cat': 600})
    """
    q, source, only, show = "", "", None, {}
    for key, value in params:
        if key == "q":
            q = value.strip().lower()[:200]
        elif key == "source":
            source = value.strip()[:50]
        elif key == "only":
            only = frozenset(int(v) for v in value.split(",") if v.strip().isdigit())
        elif key.startswith("show.") and value.isdigit() and int(value) > 0:
            show[key[5:]] = int(value)
    return Filters(q, source, only, show)


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
        by_label.setdefault(s.label, []).append(s)
    shown = {label: max(PAGE, filters.show.get(label, PAGE)) for label in by_label}
    return {"by_label": by_label, "position": position, "shown": shown,
            "matching": sum(len(v) for v in by_label.values()),
            "matching_ids": [s.id for v in by_label.values() for s in v],
            "sources": [(k, _SOURCES.get(k, k), n) for k, n in sorted(sources.items())], "filters": filters}
