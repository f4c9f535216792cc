"""Routes of recommendation projects: interactions in, recommendations and similar items out.

Interactions go in as JSON (one or a batch of up to 10,000) or as an imported CSV / JSON Lines
file with its columns named; each request is one new dataset version, which the scheduler
trains on. Every answer is recorded as a prediction and carries its ``prediction_id``; what a
person then chose from it comes back through ``…/recommend/{prediction_id}/chosen``.
"""

from __future__ import annotations

from typing import Any, Union

from fastapi import APIRouter, Body, Depends, File, Form, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from ..datasets import interactions
from ..kernel.core import Core
from ..kernel.errors import Invalid
from ..serving import recommend as answers
from .deps import API_PREFIX, get_core

#: Answers (and the choices made from them): served by inference replicas too.
router = APIRouter(prefix=API_PREFIX, tags=["recommendation"])
#: Interactions in: the API process only (like every data change).
data_router = APIRouter(prefix=API_PREFIX, tags=["recommendation"])

Id = Union[str, int]


class InteractionBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interactions: list[dict[str, Any]] = Field(
        ..., description=f"Up to {interactions.MAX_BATCH:,} interactions, each "
                                                   '{"user", "item"[, "rating", "weight", "time"]}.')
    source: str = Field("api", description="Where they came from: api, import, feedback or ingest.")


class Added(BaseModel):
    added: int = Field(..., description="Interactions appended.")
    version: int = Field(..., description="The new dataset version (training follows after the project's delay).")
    first_id: int
    last_id: int


class Deleted(BaseModel):
    deleted: int
    version: int


class RecommendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: Id = Field(..., description="The person (an unknown one gets the cold-start answer).")
    n: int = Field(10, ge=1, le=answers.MAX_N)
    exclude_seen: bool = Field(True, description="Leave out what they already interacted with.")
    items: list[Id] | None = Field(None, description="Only recommend among these item ids (e.g. in stock).")
    history: list[Id] | None = Field(None, description="Items they chose since the model was trained: counted "
                                                        "now, before the next retrain.")
    category: str | None = Field(None, description="Only items of this catalogue category.")
    where: dict[str, Union[str, int, float]] | None = Field(
        None, description="Only items whose catalogue attributes have these values (all must hold), e.g. "
                          '{"color": "red"}.')


class Recommendation(BaseModel):
    user: str
    items: list[str]
    scores: list[float]
    source: str = Field(..., description="model, or popular for a person the model does not know (with no "
                                         "history): the cold-start answer.")
    model_version: int
    prediction_id: int


class Similar(BaseModel):
    item: str
    items: list[str]
    scores: list[float]
    source: str = Field(..., description="model; content for an item nobody has touched yet (its catalogue "
                                         "vector); category for an item added to the catalogue after the model "
                                         "trained (its category's popular items); popular otherwise.")
    model_version: int
    prediction_id: int


class Chosen(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: Id = Field(..., description="The item the person chose, one of the recommendation's items.")


class ChosenResult(BaseModel):
    prediction_id: int
    user: str
    item: str
    interaction_id: int
    version: int


class History(BaseModel):
    user: str | None
    items: list[dict[str, Any]]
    counts: dict[str, int] = {}
    version: int = 0


_ONE = {"user": "42", "item": "sku-7", "rating": 4.5, "time": "2026-12-05T09:30:00Z"}


@data_router.post("/projects/{name}/interactions", status_code=201, response_model=Added)
def add_interactions(name: str, body: dict[str, Any] = Body(..., openapi_examples={
                         "one": {"summary": "One interaction", "value": _ONE},
                         "batch": {"summary": "A batch (InteractionBatch)",
                                   "value": {"interactions": [_ONE, {"user": "43", "item": "sku-9", "weight": 3}]}}}),
                     core: Core = Depends(get_core)):
    """Append one interaction (`{"user", "item"[, "rating", "weight", "time"]}`) or a batch
    (`{"interactions": [...]}`, at most 10,000) as ONE new dataset version. Every interaction is
    checked first; any bad one rejects the request (422, each named by its row) and nothing is added."""
    if "interactions" in body:
        batch = InteractionBatch.model_validate(body)
        records, source = batch.interactions, batch.source
    else:
        records, source = [body], "api"
    interactions.check_batch(len(records))  # refused before checking 10^5 rows one by one
    return interactions.add_interactions(core, name, interactions.parse_records(records), source=source)


@data_router.post("/projects/{name}/interactions/import", status_code=201, response_model=Added)
def import_interactions(
    name: str,
    file: UploadFile = File(..., description="A CSV file (first line: column names) or JSON Lines."),
    user: str = Form("user", description="The column holding the user id."),
    item: str = Form("item", description="The column holding the item id."),
    rating: str | None = Form(None, description="The column holding a rating, if any."),
    weight: str | None = Form(None, description="The column holding a weight, if any."),
    time: str | None = Form(None, description="The column holding the event time (ISO 8601 or Unix seconds)."),
    format: str | None = Form(None, description="csv or jsonl (default: from the file name)."),
    core: Core = Depends(get_core),
):
    """Import a whole file of interactions as ONE new dataset version (up to 2,000,000 rows).
    Columns are mapped by name; a missing column, an empty id or a non-numeric rating is refused
    (422) naming the row, and nothing is added."""
    data = file.file.read()
    records = interactions.read_file(data, file.filename or "upload.csv", user=user, item=item, rating=rating,
                                     weight=weight, time=time, format=format)
    return interactions.add_interactions(core, name, records, source="import", limit=None,
                                         message=f"imported {len(records):,} interactions from "
                                                 f"{file.filename or 'a file'}")


@data_router.get("/projects/{name}/interactions", response_model=History)
def list_interactions(name: str, user: str | None = Query(None, description="One person's history, newest first."),
                      limit: int = Query(50, ge=1, le=1000), core: Core = Depends(get_core)):
    """A person's latest interactions (with ``user``), else the project's newest ones and counts."""
    if user is not None:
        return History(user=user, items=interactions.history(core, name, user, limit=limit))
    st = interactions.stats(core, name)
    return History(user=None, items=st["latest"][:limit], counts=st["counts"], version=st["version"])


@data_router.delete("/projects/{name}/interactions", response_model=Deleted)
def delete_interactions(name: str, user: str = Query(..., description="The person whose interactions go."),
                        core: Core = Depends(get_core)):
    """Delete every interaction of one person (privacy) as a new dataset version; versions that
    included them count them as purged. No undo."""
    return interactions.delete_user(core, name, user)


@router.get("/projects/{name}/recommend", response_model=Recommendation)
def recommend_get(name: str, user: str = Query(..., description="The person."),
                  n: int = Query(10, ge=1, le=answers.MAX_N), exclude_seen: bool = True,
                  items: str | None = Query(None, description="Comma-separated item ids to choose among."),
                  category: str | None = Query(None, description="Only items of this catalogue category, e.g. "
                                                                 "`category=shoes`."),
                  where: list[str] = Query([], description="Only items with this catalogue attribute value, as "
                                                          "`name:value` (repeatable; all must hold), e.g. "
                                                          "`where=color:red`."),
                  core: Core = Depends(get_core)):
    """A person's top ``n`` items from the model in service (recorded; see the POST form for history)."""
    allowed = [i for i in items.split(",") if i.strip()] if items is not None else None
    attrs = {}
    for pair in where:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise Invalid(f"where={pair!r}: give an attribute and a value as name:value (e.g. color:red)")
        attrs[key.strip()] = value.strip()
    return answers.recommend(core, name, user, n=n, exclude_seen=exclude_seen, items=allowed, category=category,
                             where=attrs, client="api")


@router.post("/projects/{name}/recommend", response_model=Recommendation)
def recommend_post(name: str, body: RecommendBody, core: Core = Depends(get_core)):
    """A person's top ``n`` items; an unknown person gets the 'most popular' list (or, with a
    ``history``, a list folded in from it). ``category`` and ``where`` keep only the catalogue's
    items that match. Recorded as a prediction."""
    return answers.recommend(core, name, body.user, n=body.n, exclude_seen=body.exclude_seen, items=body.items,
                             history=body.history, category=body.category, where=body.where, client="api")


@router.get("/projects/{name}/similar", response_model=Similar)
def similar(name: str, item: str = Query(..., description="The item."), n: int = Query(10, ge=1, le=answers.MAX_N),
            core: Core = Depends(get_core)):
    """The ``n`` items most like ``item`` (recorded as a prediction)."""
    return answers.similar(core, name, item, n=n, client="api")


@router.post("/projects/{name}/recommend/{prediction_id}/chosen", status_code=201, response_model=ChosenResult)
def chosen(name: str, prediction_id: int, body: Chosen, core: Core = Depends(get_core)):
    """What the person chose from a recommendation: recorded on it and appended as a ``feedback``
    interaction (a new dataset version, so it trains the next model). Once per recommendation,
    and only an item it held."""
    return answers.chosen(core, name, prediction_id, body.item)
