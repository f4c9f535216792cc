"""Routes: samples, classes, upload batches and dataset versions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from ..kernel.core import Core
from ..datasets import changes, versions
from .. import tasks
from ..codecs.imaging import decode_image, model_input, thumbnail_bytes
from ..kernel.projects import project_row
from .deps import API_PREFIX, get_core
from .schemas import (
    BatchPublic, ChangeResult, ClassCreate, ClassPatch, ClassPublic, JsonObject, SamplePatch, SamplePublic,
    SamplesPage, Text, VersionPublic, public,
)

router = APIRouter(prefix=API_PREFIX, tags=["data"])
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def _change(samples=(), version=None) -> ChangeResult:
    return ChangeResult(samples=[public(SamplePublic, s) for s in samples],
                        version=public(VersionPublic, version) if version else None)


@router.post("/projects/{name}/samples", status_code=201, response_model=ChangeResult)
def add_samples(
    name: str,
    files: list[UploadFile] = File(..., description="One or many images."),
    label: str | None = Form(None, description="One label for every file."),
    labels: list[str] | None = Form(None, description="One label per file, in the order of `files`."),
    batch: str | None = Query(None, description="Stage into an open upload batch instead of a new version."),
    source: str = Form("upload"),
    core: Core = Depends(get_core),
):
    """Add labelled images. All files are checked first: any bad file rejects the whole request (422)."""
    uploads = [changes.Upload(f.filename or "upload", f.file.read()) for f in files]
    given = labels if labels else [label] if label is not None else [None]
    samples, version = changes.add_samples(core, name, uploads, given, batch=batch, source=source)
    return _change(samples, version)


class TextItem(BaseModel):
    text: Text
    label: Text


class TextBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[TextItem] = Field(..., description="Texts with their labels (text-classification projects).")
    source: Text = "upload"


@router.post("/projects/{name}/samples/texts", status_code=201, response_model=ChangeResult)
def add_texts(name: str, body: TextBatch,
              batch: str | None = Query(None, description="Stage into an open upload batch instead of a new version."),
              core: Core = Depends(get_core)):
    """Add labelled texts to a text project. Any bad item rejects the whole request (422)."""
    uploads = [changes.Upload(f"text-{i}", item.text.encode("utf-8")) for i, item in enumerate(body.items)]
    samples, version = changes.add_samples(core, name, uploads, [i.label for i in body.items], batch=batch,
                                           source=body.source)
    return _change(samples, version)


class RowBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[JsonObject] = Field(..., description="Table rows as objects of column: value, each holding the "
                                                    "target column too (tabular projects).",
                                   examples=[[{"rooms": 3, "city": "Oslo", "price": 310000}]])
    target: Text = Field(..., description="The column to predict: a class (tabular-classification) or a number "
                                          "(tabular-regression).", examples=["price"])
    source: Text = "upload"


@router.post("/projects/{name}/samples/rows", status_code=201, response_model=ChangeResult)
def add_rows(name: str, body: RowBatch,
             batch: str | None = Query(None, description="Stage into an open upload batch instead of a new version."),
             core: Core = Depends(get_core)):
    """Add table rows to a tabular project; ``target`` names the column to predict. Any bad row
    (target missing, not a number in a regression project, …) rejects the whole request (422)."""
    samples, version = changes.add_rows(core, name, body.rows, body.target, batch=batch, source=body.source)
    return _change(samples, version)


@router.post("/projects/{name}/samples/csv", status_code=201, response_model=ChangeResult)
def add_csv(name: str, file: UploadFile = File(..., description="A CSV file with a header row."),
            target: str = Form(..., description="The column to predict."),
            batch: str | None = Query(None, description="Stage into an open upload batch instead of a new version."),
            core: Core = Depends(get_core)):
    """Add the rows of a CSV file (header row first) to a tabular project as ONE dataset version.
    Column types are inferred at training time; the target column must be in the header."""
    from ..codecs.tables import read_csv_rows

    header, rows = read_csv_rows(file.file.read(), name=file.filename or "the file",
                                 max_rows=getattr(core.settings, "max_csv_rows", None))
    if target not in header:
        from ..kernel.errors import Invalid

        raise Invalid(f"the target column {target!r} is not in {file.filename or 'the file'} "
                      f"(its columns: {', '.join(header)})")
    samples, version = changes.add_rows(core, name, rows, target, batch=batch, source="import")
    return _change(samples, version)


@router.post("/projects/{name}/samples/archive", status_code=201, response_model=ChangeResult)
def add_archive(name: str,
                file: UploadFile = File(..., description="A .zip: files in class folders, or in an object-detection "
                                                         "project photos with COCO JSON, Pascal VOC XML or YOLO txt "
                                                         "box files."),
                format: str | None = Form(None, description="coco, voc or yolo (object detection); detected when omitted."),
                batch: str | None = Query(None, description="Stage into an open upload batch instead of a new version."),
                core: Core = Depends(get_core)):
    """Add a zip of labelled files as ONE dataset version, read the way the project's task reads
    files (as `dyntrain import` does). Any bad file, label or box rejects the whole archive (422
    naming the file and the box); nothing is stored."""
    from ..datasets.archives import import_archive

    samples, version = import_archive(core, name, file.file, file.filename or "the archive", format=format,
                                      batch=batch)
    return _change(samples, version)


@router.get("/projects/{name}/samples", response_model=SamplesPage)
def list_samples(name: str, label: str | None = None, offset: int = Query(0, ge=0),
                 limit: int = Query(100, ge=1, le=1000), core: Core = Depends(get_core)):
    items, total = changes.list_samples(core, name, label=label, offset=offset, limit=limit)
    return SamplesPage(items=[public(SamplePublic, s) for s in items], total=total, offset=offset, limit=limit)


class BulkChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sample_ids: list[int] = Field(..., min_length=1, max_length=changes.MAX_BULK,
                                  description="The samples to change (all of them or none is changed).")
    label: Text | None = Field(None, description="Move them all to this class (or a number's value).")
    delete: bool = Field(False, description="Delete them all instead.")


@router.post("/projects/{name}/samples/bulk", response_model=ChangeResult)
def bulk_change(name: str, body: BulkChange, core: Core = Depends(get_core)):
    """Relabel or delete many samples as ONE dataset version (one retrain). An id that is not an
    active sample of the project refuses the whole request (404, nothing changed)."""
    samples, version = changes.bulk_change(core, name, body.sample_ids, label=body.label, delete_them=body.delete)
    return _change(samples, version)


@router.get("/projects/{name}/samples/{sample_id}", response_model=SamplePublic)
def get_sample(name: str, sample_id: int, core: Core = Depends(get_core)):
    return public(SamplePublic, changes.get_sample(core, name, sample_id))


@router.patch("/projects/{name}/samples/{sample_id}", response_model=ChangeResult)
def relabel_sample(name: str, sample_id: int, body: SamplePatch, core: Core = Depends(get_core)):
    sample, version = changes.relabel_sample(core, name, sample_id, body.label)
    return _change([sample], version)


@router.delete("/projects/{name}/samples/{sample_id}", response_model=ChangeResult)
def delete_sample(name: str, sample_id: int, core: Core = Depends(get_core)):
    return _change((), changes.delete_sample(core, name, sample_id))


@router.get("/projects/{name}/samples/{sample_id}/versions")
def sample_versions(name: str, sample_id: int, core: Core = Depends(get_core)):
    """The dataset versions the sample was in, newest first, with its label in each."""
    return versions.sample_versions(core, name, sample_id)


@router.get("/projects/{name}/samples/{sample_id}/predictions")
def sample_predictions(name: str, sample_id: int, limit: int = Query(20, ge=1, le=100), core: Core = Depends(get_core)):
    """The recorded predictions linked to the sample, newest first: the one it was added from (if
    any) and those made on the same content (input hash = the sample's content hash)."""
    from ..serving.sample_history import sample_predictions as linked

    return linked(core, name, sample_id, limit)


@router.get("/projects/{name}/samples/{sample_id}/image", response_class=Response)
def sample_image(name: str, sample_id: int, core: Core = Depends(get_core)):
    """The original file, byte for byte (a text sample's UTF-8 text)."""
    sample = changes.get_sample(core, name, sample_id)
    data = core.blobs.get(sample.content_hash)
    media = tasks.get(changes.project_task(core, name)).modality.media_type(data)
    return Response(data, media_type=media, headers=_IMMUTABLE)


@router.get("/projects/{name}/samples/{sample_id}/blobs/{digest}", response_class=Response)
def sample_blob(name: str, sample_id: int, digest: str, core: Core = Depends(get_core)):
    """A file the sample's annotation names by its sha256 (a segmentation mask's indexed PNG)."""
    from ..kernel.errors import NotFound

    sample = changes.get_sample(core, name, sample_id)
    if digest not in tasks.get(changes.project_task(core, name)).target.blob_refs(sample.annotation):
        raise NotFound(f"sample {sample_id} names no file {digest[:12]}…")
    data = core.blobs.get(digest)
    media = "image/png" if data.startswith(b"\x89PNG") else "application/octet-stream"
    return Response(data, media_type=media, headers=_IMMUTABLE)


@router.get("/projects/{name}/samples/{sample_id}/thumbnail", response_class=Response)
def sample_thumbnail(name: str, sample_id: int, size: int = Query(160, ge=16, le=512),
                     core: Core = Depends(get_core)):
    sample = changes.get_sample(core, name, sample_id)
    return Response(thumbnail_bytes(decode_image(core.blobs.get(sample.content_hash),
                                                 max_pixels=core.settings.max_image_pixels), size),
                    media_type="image/jpeg", headers=_IMMUTABLE)


@router.get("/projects/{name}/classes", response_model=list[ClassPublic])
def list_classes(name: str, core: Core = Depends(get_core)):
    """The classes with their example counts; ``waiting`` says what a class too small to learn still needs."""
    classes = changes.list_classes(core, name)
    target = tasks.get(changes.project_task(core, name)).target  # a number target's "classes" are its values
    waiting = target.waiting({c.label: c.count for c in classes})
    return [public(ClassPublic, c, waiting=versions.waiting_sentence(c.label, c.count) if c.label in waiting else None)
            for c in classes]


@router.post("/projects/{name}/classes", status_code=201, response_model=ClassPublic)
def create_class(name: str, body: ClassCreate, core: Core = Depends(get_core)):
    return public(ClassPublic, changes.create_class(core, name, body.label, body.description))


@router.patch("/projects/{name}/classes/{label}", response_model=ClassPublic)
def patch_class(name: str, label: str, body: ClassPatch, core: Core = Depends(get_core)):
    """Rename (all its samples are relabelled in ONE dataset version) or describe a class."""
    info, _ = changes.update_class(core, name, label, new_label=body.label, description=body.description)
    return public(ClassPublic, info)


@router.delete("/projects/{name}/classes/{label}", response_model=ChangeResult)
def delete_class(name: str, label: str, core: Core = Depends(get_core)):
    """Delete a class and its samples (one new version; restore an older version to undo). In an
    object-detection project the images stay and only the class's boxes go."""
    return _change((), changes.delete_class(core, name, label))


@router.post("/projects/{name}/batches", status_code=201, response_model=BatchPublic)
def open_batch(name: str, core: Core = Depends(get_core)):
    """Open an upload batch: uploads with ``?batch=ID`` are staged until it is committed."""
    return BatchPublic(id=changes.open_batch(core, name))


@router.post("/projects/{name}/batches/{batch_id}/commit", response_model=ChangeResult)
def commit_batch(name: str, batch_id: str, core: Core = Depends(get_core)):
    """Turn everything uploaded in the batch into ONE dataset version."""
    return _change((), changes.commit_batch(core, name, batch_id))


@router.delete("/projects/{name}/batches/{batch_id}", status_code=204)
def discard_batch(name: str, batch_id: str, core: Core = Depends(get_core)):
    changes.discard_batch(core, name, batch_id)
    return Response(status_code=204)


@router.get("/projects/{name}/dataset-versions", response_model=list[VersionPublic])
def list_versions(name: str, core: Core = Depends(get_core)):
    return [public(VersionPublic, v) for v in versions.list_versions(core, name)]


@router.get("/projects/{name}/dataset-versions/{number}")
def get_version(name: str, number: int, core: Core = Depends(get_core)):
    """A version with its exact items (sample id, content hash, label, and the annotation where the
    task's labels have one)."""
    with core.db.read() as s:
        row = project_row(s, name)
        version = versions.get_version(s, row, number).to_entity()
        items = versions.version_items(s, row, number)
    return {**public(VersionPublic, version).model_dump(mode="json"),
            "items": [{"sample_id": i.sample_id, "content_hash": i.content_hash, "label": i.label,
                       **({"annotation": i.annotation} if i.annotation is not None else {})} for i in items]}


@router.get("/projects/{name}/dataset-versions/{number}/diff")
def diff_version(name: str, number: int, against: int = Query(..., description="The older version."),
                 core: Core = Depends(get_core)):
    """Samples added, removed and relabelled between two versions."""
    return versions.diff_versions(core, name, number, against)


@router.post("/projects/{name}/dataset-versions/{number}/restore", response_model=ChangeResult)
def restore_version(name: str, number: int, core: Core = Depends(get_core)):
    """A NEW version whose content equals version ``number``."""
    return _change((), changes.restore_version(core, name, number))


@router.get("/projects/{name}/health")
def data_health(name: str, core: Core = Depends(get_core)):
    """Data health: too few examples, imbalance, duplicates, conflicting labels, likely
    mislabelled, tiny or corrupt images — each finding names the samples and what to do."""
    from ..datasets.checkup import data_health as check

    return check(core, name)


@router.get("/projects/{name}/augmentation-preview", response_class=Response)
def augmentation_preview(name: str, sample: int = Query(..., description="Sample id."),
                         preset: str | None = Query(None, description="none, light, medium or strong; default: the project's setting."),
                         n: int = Query(8, ge=1, le=24), seed: int = Query(0, ge=0), core: Core = Depends(get_core)):
    """A PNG grid: the sample and ``n`` augmented variants, to see what the settings do."""
    from ..datasets.augment import preview_grid
    from ..training.augmentation import project_augment_config

    s = changes.get_sample(core, name, sample)
    config = project_augment_config(core, name, preset)
    image = model_input(decode_image(core.blobs.get(s.content_hash), max_pixels=core.settings.max_image_pixels))
    return Response(preview_grid(image, config, n=n, seed=seed), media_type="image/png")
