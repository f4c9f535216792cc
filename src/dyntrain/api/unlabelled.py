"""Routes: the labelling queue (items uploaded without a label; see :mod:`dyntrain.datasets.unlabelled`).

Items go in without a label (files, texts or table rows), are listed in teaching order with
the model in service's suggestion, and are labelled in batches: each confirmed batch is ONE new
dataset version. Skipped items move to the end; deleted ones go (they were in no version).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from .. import tasks
from ..datasets import unlabelled
from ..datasets.changes import Upload, project_task
from ..kernel.core import Core
from ..kernel.errors import Invalid
from .deps import API_PREFIX, get_core
from .schemas import ChangeResult, JsonObject, SamplePublic, Text, VersionPublic, public

router = APIRouter(prefix=API_PREFIX, tags=["labelling queue"])
_P = "/projects/{name}/unlabelled"


class Suggestion(BaseModel):
    label: str
    confidence: float = Field(..., description="The model's probability of that class.")
    margin: float = Field(..., description="Its lead over the second most likely class (small: unsure).")


class QueueItem(BaseModel):
    id: int
    position: int = Field(..., description="1 = label this one first.")
    content_hash: str
    filename: str
    preview: str | None = Field(None, description="A text's or row's words (images: GET …/unlabelled/{id}/image).")
    source: str
    skipped: bool
    created_at: datetime
    suggestion: Suggestion | None = Field(None, description="None while no model is in service.")


class QueuePage(BaseModel):
    total: int
    strategy: str = Field(..., description="How the order was chosen: diversity (few labels yet), margin, "
                                           "uncertainty (no embedding for this kind of item) or arrival.")
    labels_per_class: float
    diversity_until: int = Field(..., description="Labels per class from which the least certain come first.")
    model_version: int | None
    offset: int
    limit: int
    items: list[QueueItem]


class Added(BaseModel):
    added: list[SamplePublic]
    duplicates: list[str] = Field(..., description="Items left out: their content is in the project already.")
    waiting: int = Field(..., description="Items now waiting in the queue.")


class TextsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[Text] = Field(..., description="Texts without labels (text projects).", examples=[["great film"]])
    source: Text = "upload"


class RowsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[JsonObject] = Field(..., description="Table rows without their target (tabular projects).")
    drop: Text | None = Field(None, description="A column to leave out (e.g. the empty target column).")
    source: Text = "upload"


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    label: Text = Field(..., description="The class: the suggestion accepted, or the right one.")


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Decision] = Field(..., min_length=1, max_length=10_000)


def _added(core: Core, name: str, result: dict[str, Any]) -> Added:
    waiting = unlabelled.queue_size(core, name)
    return Added(added=[public(SamplePublic, s) for s in result["added"]], duplicates=result["duplicates"],
                 waiting=waiting)


@router.post(_P, status_code=201, response_model=Added)
def add_files(name: str, files: list[UploadFile] = File(..., description="Images (or text files) without a label."),
              source: str = Form("upload"), core: Core = Depends(get_core)):
    """Put files in the labelling queue. Every file is checked first: a bad one rejects the request (422)."""
    uploads = [Upload(f.filename or "upload", f.file.read()) for f in files]
    return _added(core, name, unlabelled.add_unlabelled(core, name, uploads, source=source))


@router.post(_P + "/texts", status_code=201, response_model=Added)
def add_texts(name: str, body: TextsIn, core: Core = Depends(get_core)):
    """Put texts in the labelling queue of a text project."""
    if tasks.get(project_task(core, name)).modality.upload_format != "texts":
        raise Invalid(f"project {name!r} does not take texts; send its items to POST …/unlabelled")
    uploads = [Upload(f"text-{i + 1}", t.encode("utf-8")) for i, t in enumerate(body.texts)]
    return _added(core, name, unlabelled.add_unlabelled(core, name, uploads, source=body.source))


@router.post(_P + "/rows", status_code=201, response_model=Added)
def add_rows(name: str, body: RowsIn, core: Core = Depends(get_core)):
    """Put table rows in the labelling queue of a tabular project."""
    _rows_project(core, name)
    return _added(core, name, unlabelled.add_unlabelled_rows(core, name, body.rows, drop=body.drop, source=body.source))


@router.post(_P + "/csv", status_code=201, response_model=Added)
def add_csv(name: str, file: UploadFile = File(..., description="A CSV file with a header row."),
            drop: str | None = Form(None, description="A column to leave out (e.g. the empty target column)."),
            core: Core = Depends(get_core)):
    """Put the rows of a CSV file in the labelling queue of a tabular project."""
    from ..codecs.tables import read_csv_rows

    _rows_project(core, name)
    _, rows = read_csv_rows(file.file.read(), name=file.filename or "the file", max_rows=core.settings.max_csv_rows)
    return _added(core, name, unlabelled.add_unlabelled_rows(core, name, rows, drop=drop, source="import"))


def _rows_project(core: Core, name: str) -> None:
    if tasks.get(project_task(core, name)).modality.upload_format != "rows":
        raise Invalid(f"project {name!r} does not take table rows; send its items to POST …/unlabelled")


@router.get(_P, response_model=QueuePage)
def list_queue(name: str, offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500),
               core: Core = Depends(get_core)):
    """The waiting items in teaching order (label the first first), each with the model in service's
    suggestion and confidence. Skipped items come last."""
    return unlabelled.queue(core, name, offset=offset, limit=limit)


@router.get(_P + "/{sample_id}/image", response_class=Response)
def item_content(name: str, sample_id: int, core: Core = Depends(get_core)):
    """A waiting item's content, byte for byte (an image; a text's UTF-8; a row's JSON)."""
    item = unlabelled.get_item(core, name, sample_id)
    data = core.blobs.get(item.content_hash)
    media = tasks.get(project_task(core, name)).modality.media_type(data)
    return Response(data, media_type=media, headers={"Cache-Control": "public, max-age=31536000, immutable"})


@router.post(_P + "/confirm", response_model=ChangeResult)
def confirm(name: str, body: ConfirmIn, core: Core = Depends(get_core)):
    """Label waiting items (the suggestion accepted, or corrected): they join the data as ONE new dataset
    version. Any unknown id or bad label refuses the whole batch (422, naming each)."""
    samples, version = unlabelled.confirm(core, name, [(d.id, d.label) for d in body.items])
    return ChangeResult(samples=[public(SamplePublic, s) for s in samples],
                        version=public(VersionPublic, version) if version else None)


@router.post(_P + "/{sample_id}/skip", response_model=SamplePublic)
def skip(name: str, sample_id: int, core: Core = Depends(get_core)):
    """Move a waiting item to the end of the queue."""
    return public(SamplePublic, unlabelled.skip(core, name, sample_id))


@router.delete(_P + "/{sample_id}", status_code=204)
def delete(name: str, sample_id: int, core: Core = Depends(get_core)):
    """Delete a waiting item (it was in no dataset version, so no version changes)."""
    unlabelled.discard(core, name, [sample_id])
    return Response(status_code=204)
