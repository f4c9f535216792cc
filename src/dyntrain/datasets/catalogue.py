"""The item catalogue of a recommendation project: what each item is, versioned like interactions.

An item's entry is a category, attributes (name → text), a text and a picture (a blob in the
blob store, by sha256). Entries live in one append-only table (``catalogue_items``): changing an
item adds a row, and the newest row with id ≤ a version's ``catalogue_mark`` is the item in that
version. So a catalogue change — an import of 10^5 items, one picture — is ONE dataset version
row that moves the mark (the interaction watermark stays), exactly as interactions move theirs;
its hash chains the parent's hash with a sha256 of the added entries' content in id order, and
its counts say how many items the catalogue describes. Entries equal to the item's current one
are skipped (re-importing the same file makes no version).

The scheduler hears of the version like any other and retrains: the content learner and the
cold-start answers read item vectors computed from the catalogue of the version they train on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ..codecs.catalogue import KEEP
from ..codecs.interactions import check_id
from ..kernel.core import Core
from ..kernel.errors import Invalid, NotFound
from ..storage.rows import CatalogueRow, utcnow
from .interactions import _head, _new_version, interaction_project

__all__ = ["add_entries", "set_image", "load_catalogue", "current", "entries", "image_of", "matching_items",
           "summary", "FIELDS"]

#: What an entry holds (the stored columns, ``image`` being the picture's sha256).
FIELDS = ("category", "attributes", "text", "image")
_CHUNK = 900  # ids per IN (…) list: under SQLite's 999 bound parameters


def _line(item_id: str, e: dict[str, Any]) -> str:
    return json.dumps([item_id, e["category"], e["attributes"], e["text"], e["image"]], sort_keys=True,
                      ensure_ascii=False) + "\n"


def _newest(s: Session, project_id: int, item_ids: list[str] | None = None,
            mark: int | None = None) -> dict[str, dict[str, Any]]:
    """item id → its newest entry (among ``item_ids``; up to id ``mark``)."""
    out: dict[str, dict[str, Any]] = {}
    where = [CatalogueRow.project_id == project_id]
    if mark is not None:
        where.append(CatalogueRow.id <= mark)
    cols = (CatalogueRow.item_id, CatalogueRow.category, CatalogueRow.attributes, CatalogueRow.text,
            CatalogueRow.image)
    chunks = [None] if item_ids is None else [item_ids[k:k + _CHUNK] for k in range(0, len(item_ids), _CHUNK)]
    for chunk in chunks:
        q = select(*cols).where(*where).order_by(CatalogueRow.id)
        if chunk is not None:
            q = q.where(CatalogueRow.item_id.in_(chunk))
        for item_id, category, attributes, text, image in s.execute(q.execution_options(yield_per=20_000)):
            out[item_id] = {"category": category, "attributes": dict(attributes or {}), "text": text, "image": image}
    return out


def _check_picture(data: bytes) -> None:
    from ..codecs.imaging import decode_image

    decode_image(data)  # its Invalid names what is wrong with the file


def add_entries(core: Core, project: str, entries: list[dict], *, source: str = "api",
                message: str | None = None) -> dict[str, Any]:
    """Append checked entries (:func:`dyntrain.codecs.catalogue.parse_entries`) as ONE new
    dataset version; fields an entry left out keep the item's previous value.

    >>> add_entries(core, "shop", parse_entries([{"item": "sku-1", "category": "shoes"}]))  # doctest: +SKIP
    {'added': 1, 'unchanged': 0, 'version': 4, 'items': 1}
    """
    if not entries:
        raise Invalid("no catalogue entries were sent")
    # Pictures are checked and stored before the lock (content-addressed: a refused request leaves
    # only unreferenced blobs, which the blob store's collection removes).
    digests: dict[int, str | None] = {}
    for k, e in enumerate(entries):
        data = e.get("image_bytes", KEEP)
        if data is KEEP or data is None:
            continue
        try:
            _check_picture(data)
        except Invalid as exc:
            raise Invalid(f"the picture of item {e['item_id']!r} is not usable: {exc.message}. Nothing was added") from None
        digests[k] = core.blobs.put(data)
    now = utcnow()
    with core.db.write() as s:
        row = interaction_project(s, project, lock=True)
        before = _newest(s, row.id, [e["item_id"] for e in entries])
        rows, lines = [], []
        for k, e in enumerate(entries):
            old = before.get(e["item_id"], {"category": None, "attributes": {}, "text": None, "image": None})
            new = {f: old[f] if e.get(f, KEEP) is KEEP else e[f] for f in ("category", "attributes", "text")}
            picture = e.get("image_bytes", KEEP)
            new["image"] = old["image"] if picture is KEEP else digests.get(k)
            if e["item_id"] in before and new == old:
                continue
            rows.append({"project_id": row.id, "item_id": e["item_id"], **new, "source": source, "created_at": now})
            lines.append(_line(e["item_id"], new))
        if not rows:
            return {"added": 0, "unchanged": len(entries), "version": row.head_version or 0,
                    "items": _count(s, row.id)}
        for k in range(0, len(rows), 5_000):
            s.execute(insert(CatalogueRow.__table__), rows[k:k + 5_000])
        mark = s.scalar(select(func.max(CatalogueRow.id)).where(CatalogueRow.project_id == row.id))
        head = _head(s, row)
        digest = hashlib.sha256("".join(lines).encode()).hexdigest()
        chained = hashlib.sha256(f"{head.hash if head is not None else ''}\ncatalogue\n{digest}".encode()).hexdigest()
        n_items = _count(s, row.id)
        counts = dict(head.counts) if head is not None else {"interactions": 0, "users": 0, "items": 0}
        counts["catalogue"] = n_items
        version = _new_version(s, row, chained, counts, (head.watermark or 0) if head is not None else 0,
                               message or f"catalogue: {len(rows):,} items ({source})", catalogue_mark=mark)
        return {"added": len(rows), "unchanged": len(entries) - len(rows), "version": version.number,
                "items": n_items}


def set_image(core: Core, project: str, item: Any, data: bytes) -> dict[str, Any]:
    """One item's picture (its other fields kept) as a new version."""
    return add_entries(core, project, [{"item_id": check_id(item, "item"), "image_bytes": data}],
                       message=f"catalogue: picture of item {check_id(item, 'item')}")


def _count(s: Session, project_id: int) -> int:
    return s.scalar(select(func.count(func.distinct(CatalogueRow.item_id)))
                    .where(CatalogueRow.project_id == project_id)) or 0


# -- reading -------------------------------------------------------------------------------
def load_catalogue(s: Session, project_id: int, mark: int | None) -> dict[str, dict[str, Any]]:
    """A version's catalogue (every item's newest entry up to ``mark``); empty without a mark."""
    if not mark:
        return {}
    return _newest(s, project_id, mark=mark)


class _Snapshot:
    """The catalogue now: every item's newest entry, and (built on first use) its items by category,
    so a filter by category reads one list instead of every entry (10^5 entries took ~20 ms to scan
    in Python)."""

    def __init__(self, table: dict[str, dict[str, Any]]):
        self.table = table
        self._by_category: dict[str | None, list[str]] | None = None

    def by_category(self) -> dict[str | None, list[str]]:
        if self._by_category is None:
            index: dict[str | None, list[str]] = {}
            for item, e in self.table.items():
                index.setdefault(e["category"], []).append(item)
            self._by_category = index
        return self._by_category


# (database, project id) → (the newest entry id it was read at, the snapshot)
_CACHE: dict[tuple[str, int], tuple[int, _Snapshot]] = {}
_CACHE_LOCK = threading.Lock()


def _snapshot(core: Core, project: str) -> _Snapshot:
    """Cached per project until an entry is added: the recommend filter reads it on every request,
    and one ``max(id)`` on the (project, id) index is all a request costs while nothing changed."""
    with core.db.read() as s:
        pid = interaction_project(s, project).id
        key = (f"{core.settings.database_url}|{core.settings.data_dir}", pid)
        last = s.scalar(select(func.max(CatalogueRow.id)).where(CatalogueRow.project_id == pid)) or 0
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
        if hit is not None and hit[0] == last:
            return hit[1]
        snap = _Snapshot(_newest(s, pid) if last else {})
    with _CACHE_LOCK:
        _CACHE[key] = (last, snap)
    return snap


def current(core: Core, project: str) -> dict[str, dict[str, Any]]:
    """The project's catalogue now (newest entry of every item)."""
    return _snapshot(core, project).table


def matching_items(core: Core, project: str, category: str | None = None,
                   where: dict[str, str] | None = None) -> list[str]:
    """Ids of the items whose category and attributes match (text equality, all must hold)."""
    want = {str(k): str(v) for k, v in (where or {}).items()}
    snap = _snapshot(core, project)
    ids = snap.table if category is None else snap.by_category().get(category, [])
    if not want:
        return list(ids)
    return [item for item in ids if all(snap.table[item]["attributes"].get(k) == v for k, v in want.items())]


def entries(core: Core, project: str, items: list[str] | None = None, *, category: str | None = None,
            limit: int = 100, after: str | None = None) -> list[dict[str, Any]]:
    """Entries for the pages and the API: the named ``items`` (in that order, unknown ones left
    out), else a page in item-id order (``after`` the last one of the previous page)."""
    table = current(core, project)
    if items is not None:
        ids = [i for i in items if i in table]
    else:
        ids = sorted(i for i, e in table.items() if category is None or e["category"] == category)
        if after is not None:
            ids = [i for i in ids if i > after]
        ids = ids[:limit]
    return [{"item": i, "category": table[i]["category"], "attributes": table[i]["attributes"],
             "text": table[i]["text"], "image": table[i]["image"] is not None} for i in ids]


def image_of(core: Core, project: str, item: Any) -> bytes:
    """The picture of an item now."""
    item_id = check_id(item, "item")
    e = current(core, project).get(item_id)
    if e is None or e["image"] is None:
        raise NotFound(f"item {item_id!r} has no picture in the catalogue of {project!r}")
    return core.blobs.get(e["image"])


def summary(core: Core, project: str) -> dict[str, Any]:
    """How many items the catalogue describes, by category, and how many have a text or a picture."""
    table = current(core, project)
    categories: dict[str, int] = {}
    for e in table.values():
        if e["category"] is not None:
            categories[e["category"]] = categories.get(e["category"], 0) + 1
    return {"items": len(table), "with_text": sum(e["text"] is not None for e in table.values()),
            "with_image": sum(e["image"] is not None for e in table.values()),
            "categories": dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))[:50]),
            "attributes": sorted({k for e in table.values() for k in e["attributes"]})[:50]}
