"""Routes of a recommendation project's item catalogue: what each item is (category, attributes,
text, picture). Every request that changes it is ONE new dataset version (the scheduler then
retrains, and the new model knows the new items by their vectors); reads serve the pages and the
recommend filter's users.
"""

from __future__ import annotations

import io
from typing import Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from ..codecs import catalogue as codec
from ..datasets import catalogue
from ..kernel.core import Core
from ..kernel.errors import Invalid, TooLarge
from .deps import API_PREFIX, get_core

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["recommendation"])

#: Most entries one JSON request may carry (import a file for more).
MAX_BATCH = 10_000


class CatalogueBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(..., description=f"Up to {MAX_BATCH:,} entries, each "
                                        '{"item"[, "category", "attributes": {name: value}, "text", '
                                        '"image": "data:image/…;base64,…"]}; a field left out keeps the '
                                        "item's previous value, null clears it.")


class CatalogueAdded(BaseModel):
    added: int = Field(..., description="Entries that changed an item (a new row each).")
    unchanged: int = Field(..., description="Entries equal to the item's current one (skipped).")
    version: int = Field(..., description="The new dataset version (the current one when nothing changed).")
    items: int = Field(..., description="Items the catalogue describes now.")


class Entry(BaseModel):
    item: str
    category: str | None = None
    attributes: dict[str, str] = {}
    text: str | None = None
    image: bool = Field(False, description="Whether it has a picture (GET …/catalogue/{item}/image).")


class CataloguePage(BaseModel):
    items: list[Entry]
    summary: dict[str, Any] = Field({}, description="items, with_text, with_image, categories (count each, "
                                                    "the 50 largest), attributes (names).")
    next_after: str | None = Field(None, description="Pass as `after` for the next page; null on the last page.")


_ONE = {"item": "sku-7", "category": "shoes", "attributes": {"color": "red", "brand": "Acme"},
        "text": "Red trail running shoe, light and waterproof."}


@router.post("/projects/{name}/catalogue", status_code=201, response_model=CatalogueAdded)
def add_catalogue(name: str, body: dict[str, Any] = Body(..., openapi_examples={
                      "one": {"summary": "One item", "value": _ONE},
                      "batch": {"summary": "A batch (CatalogueBatch)", "value": {"items": [_ONE]}}}),
                  core: Core = Depends(get_core)):
    """Describe one item or a batch (`{"items": [...]}`, at most 10,000) as ONE new dataset
    version. Every entry is checked first; a bad one rejects the request (422, each named by its
    row) and nothing is added."""
    records = CatalogueBatch.model_validate(body).items if "items" in body else [body]
    if len(records) > MAX_BATCH:
        raise TooLarge(f"{len(records):,} entries in one request; the limit is {MAX_BATCH:,}: import a file "
                       "(POST …/catalogue/import)")
    return catalogue.add_entries(core, name, codec.parse_entries(records))


@router.post("/projects/{name}/catalogue/import", status_code=201, response_model=CatalogueAdded)
def import_catalogue(
    name: str,
    file: UploadFile = File(..., description="A CSV file (first line: column names), JSON Lines, or a .zip "
                                             "holding one such list and the pictures it names."),
    item: str = Form("item", description="The column holding the item id."),
    category: str | None = Form("category", description="The column holding the category."),
    text: str | None = Form("text", description="The column holding the item's text."),
    image: str | None = Form("image", description="The column naming the item's picture file (in a .zip)."),
    format: str | None = Form(None, description="csv, jsonl or zip (default: from the file name)."),
    core: Core = Depends(get_core),
):
    """Import a catalogue as ONE new dataset version (up to 200,000 items). In a CSV every column
    other than the mapped ones is an attribute; absent optional columns are simply not given."""
    data = file.file.read()
    entries = codec.read_file(data, file.filename or "catalogue.csv", item=item, category=category or None,
                              text=text or None, image=image or None, format=format)
    return catalogue.add_entries(core, name, entries, source="import",
                                 message=f"catalogue: imported {len(entries):,} items from {file.filename or 'a file'}")


@router.put("/projects/{name}/catalogue/{item}/image", response_model=CatalogueAdded)
def put_image(name: str, item: str, file: UploadFile = File(..., description="The picture (JPEG, PNG, WebP …)."),
              core: Core = Depends(get_core)):
    """One item's picture (its other fields kept), as a new dataset version."""
    data = file.file.read()
    if len(data) > codec.MAX_IMAGE:
        raise TooLarge(f"a picture of {len(data):,} bytes; the limit is {codec.MAX_IMAGE:,}")
    return catalogue.set_image(core, name, item, data)


@router.get("/projects/{name}/catalogue", response_model=CataloguePage)
def list_catalogue(name: str,
                   items: str | None = Query(None, description="Comma-separated item ids (in that order; unknown "
                                                               "ones are left out)."),
                   category: str | None = Query(None, description="Only this category."),
                   after: str | None = Query(None, description="The last item id of the previous page."),
                   limit: int = Query(100, ge=1, le=500), core: Core = Depends(get_core)):
    """Catalogue entries (the named items, else a page in item-id order) and a summary."""
    wanted = [i.strip() for i in items.split(",") if i.strip()] if items is not None else None
    if wanted is not None and len(wanted) > 1000:
        raise Invalid(f"{len(wanted):,} items asked for; the limit is 1,000")
    page = catalogue.entries(core, name, wanted, category=category, limit=limit + 1, after=after)
    more = wanted is None and len(page) > limit
    page = page[:limit] if wanted is None else page
    return CataloguePage(items=page, summary=catalogue.summary(core, name),
                         next_after=page[-1]["item"] if more else None)


@router.get("/projects/{name}/catalogue/{item}/image", response_class=Response)
def get_image(name: str, item: str, core: Core = Depends(get_core)):
    """The item's picture as it was uploaded."""
    from PIL import Image

    data = catalogue.image_of(core, name, item)
    try:
        kind = (Image.open(io.BytesIO(data)).format or "octet-stream").lower()
    except Exception:  # checked when it was added; a store that changed under us still answers
        kind = "octet-stream"
    media = "application/octet-stream" if kind == "octet-stream" else f"image/{kind}"
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=60"})
