"""Catalogue entries as clients send them: an item id with its category, attributes, text and
picture, checked one by one, every bad one named.

An entry is a JSON object ``{"item", "category", "attributes": {name: value}, "text", "image"}``
or a CSV / JSON Lines row whose columns are mapped (``item``, ``category``, ``text``, ``image``;
every other CSV column is an attribute). In a ``.zip`` archive, ``image`` names a picture file
inside the archive; through the JSON API it is a ``data:`` URL. A field left out keeps the item's
previous value (a picture uploaded on its own is not lost by re-importing the texts); ``null``
clears it. Shared by the server and the CLI; no database here.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from pathlib import PurePosixPath
from typing import Any, Iterable

from ..kernel.errors import Invalid, TooLarge
from .record_files import read_records, refuse_wrong
from .interactions import check_id

__all__ = ["MAX_ITEMS", "MAX_TEXT", "MAX_ATTRIBUTES", "KEEP", "parse_entries", "read_file", "read_archive",
           "decode_data_url"]

#: Most entries one request or file may hold.
MAX_ITEMS = 200_000
#: Longest item text (characters); MiniLM reads the whole text in 256-token chunks.
MAX_TEXT = 20_000
#: Most attributes of one item, and the longest attribute name and value.
MAX_ATTRIBUTES, MAX_NAME, MAX_VALUE = 50, 100, 200
#: Largest picture (bytes).
MAX_IMAGE = 20_000_000


class _Keep:
    """A field the entry did not mention: the item keeps its previous value."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


def _text(value: Any, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid(f"{what} must be text, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > limit:
        raise Invalid(f"{what} is {len(text):,} characters long; the limit is {limit:,}")
    return text or None


def _attributes(value: Any) -> dict[str, str]:
    """Attribute values are kept as text: a filter compares them as text (``color=red``), and the
    content learner one-hot encodes each (name, value) pair."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"attributes must be an object {{name: value}}, got {type(value).__name__}")
    if len(value) > MAX_ATTRIBUTES:
        raise Invalid(f"{len(value)} attributes; the limit is {MAX_ATTRIBUTES}")
    out = {}
    for name, v in value.items():
        key = _text(name, "an attribute name", MAX_NAME)
        if key is None:
            raise Invalid("an attribute name is empty")
        text = _text(v, f"attribute {key!r}", MAX_VALUE)
        if text is not None:
            out[key] = text
    return out


def _entry(raw: Any, fields: dict[str, str | None], images: dict[str, bytes] | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Invalid(f"a catalogue entry is an object {{\"item\"[, \"category\", \"attributes\", \"text\", "
                      f"\"image\"]}}, got {type(raw).__name__}")
    if fields["item"] not in raw:
        raise Invalid(f"no {fields['item']!r}")
    out: dict[str, Any] = {"item_id": check_id(raw[fields["item"]], "item")}
    for key, limit in (("category", MAX_ID_LEN), ("text", MAX_TEXT)):
        col = fields[key]
        out[key] = _text(raw[col], key, limit) if col and col in raw else KEEP
    if "attributes" in raw:
        out["attributes"] = _attributes(raw["attributes"])
    else:
        extra = {k: v for k, v in raw.items() if k not in {c for c in fields.values() if c} and k != "attributes"}
        out["attributes"] = _attributes(extra) if extra else KEEP
    col = fields["image"]
    if col and col in raw and raw[col] not in (None, ""):
        out["image_bytes"] = _image(raw[col], images)
    elif col and col in raw:
        out["image_bytes"] = None  # cleared
    else:
        out["image_bytes"] = KEEP
    return out


MAX_ID_LEN = 200


def _image(value: Any, images: dict[str, bytes] | None) -> bytes:
    if not isinstance(value, str):
        raise Invalid(f"image must be a file name (in an archive) or a data: URL, got {type(value).__name__}")
    if value.startswith("data:"):
        return decode_data_url(value)
    if images is None:
        raise Invalid(f"image {value[:60]!r}: send pictures as data: URLs, in a .zip archive beside the list, or "
                      "one by one (PUT …/catalogue/{item}/image)")
    name = str(PurePosixPath(value.strip()))
    data = images.get(name, images.get(PurePosixPath(name).name))
    if data is None:
        raise Invalid(f"image {value[:60]!r} is not in the archive")
    return data


def decode_data_url(url: str) -> bytes:
    """The bytes of a ``data:image/...;base64,...`` URL."""
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64") or not payload:
        raise Invalid("an image data URL must look like data:image/png;base64,…")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("the image data URL is not valid base64") from None
    if len(data) > MAX_IMAGE:
        raise TooLarge(f"a picture of {len(data):,} bytes; the limit is {MAX_IMAGE:,}")
    return data


def parse_entries(records: Iterable[Any], *, item: str = "item", category: str | None = "category",
                  text: str | None = "text", image: str | None = "image", images: dict[str, bytes] | None = None,
                  first_row: int = 1) -> list[dict]:
    """Check catalogue entries; every bad one is named, then nothing is kept.

    >>> parse_entries([{"item": "sku-1", "category": "shoes", "color": "red"}])[0]["attributes"]
    {'color': 'red'}
    """
    fields = {"item": item, "category": category, "text": text, "image": image}
    out, problems, n, seen = [], [], 0, set()
    for n, raw in enumerate(records, start=first_row):
        if n - first_row >= MAX_ITEMS:
            raise TooLarge(f"more than {MAX_ITEMS:,} catalogue entries at once: split them into parts")
        try:
            entry = _entry(raw, fields, images)
            if entry["item_id"] in seen:
                raise Invalid(f"item {entry['item_id']!r} appears twice")
            seen.add(entry["item_id"])
            out.append(entry)
        except Invalid as exc:
            problems.append({"row": n, "reason": exc.message})
    refuse_wrong(problems, n - first_row + 1, "catalogue entries")
    if not out:
        raise Invalid("no catalogue entries were sent: give at least one {\"item\"}")
    return out


def read_file(data: bytes, filename: str, *, item: str = "item", category: str | None = "category",
              text: str | None = "text", image: str | None = "image", format: str | None = None,
              images: dict[str, bytes] | None = None) -> list[dict]:
    """Entries from a CSV (header row), JSON Lines or ``.zip`` file (one CSV / JSON Lines list plus
    the pictures it names). In a CSV, every column other than the mapped ones is an attribute."""
    if (format or "").lower() == "zip" or filename.lower().endswith(".zip"):
        return read_archive(data, item=item, category=category, text=text, image=image)
    records, first, columns = read_records(data, filename, format, {"item": item}, "catalogue")
    fields = {"category": category, "text": text, "image": image}
    if columns is not None:  # a CSV: an unmapped optional column that is absent is simply not given (KEEP)
        fields = {k: (v if v in columns else None) for k, v in fields.items()}
    return parse_entries(records, item=item, images=images, first_row=first, **fields)


def read_archive(data: bytes, **columns) -> list[dict]:
    """A ``.zip`` holding one ``.csv`` / ``.jsonl`` list of entries and the pictures it names."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Invalid("the file is not a valid .zip archive") from None
    with archive:
        names = [i for i in archive.infolist() if not i.is_dir() and not PurePosixPath(i.filename).name.startswith(".")
                 and "__MACOSX" not in i.filename]
        lists = [i for i in names if i.filename.lower().endswith((".csv", ".jsonl", ".ndjson"))]
        if len(lists) != 1:
            raise Invalid(f"the archive must hold exactly one .csv or .jsonl list of items; it holds {len(lists)}")
        images: dict[str, bytes] = {}
        for info in names:
            if info is lists[0]:
                continue
            if info.file_size > MAX_IMAGE:
                raise TooLarge(f"{info.filename} is {info.file_size:,} bytes; a picture may be {MAX_IMAGE:,}")
            path = PurePosixPath(info.filename)
            images[str(path)] = archive.read(info)
            images.setdefault(path.name, images[str(path)])  # a list may name a picture without its folder
        listing = archive.read(lists[0])
    return read_file(listing, lists[0].filename, images=images, **columns)

