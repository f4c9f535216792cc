"""Routes: model registry, inference, prediction records, live events."""

from __future__ import annotations

import asyncio
import json
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ..kernel.core import Core
from ..kernel.errors import Invalid, NotFound, TooLarge
from ..kernel.limits import exceeded
from ..codecs.imaging import decode_image, thumbnail_bytes
from ..kernel.events import events_after
from ..kernel.projects import project_row
from ..registry import models as registry
from ..serving import predict as serving
from .deps import API_PREFIX, authorize, get_core
from .errors import error_response
from .schemas import ChangeResult, JsonObject, SamplePublic, Text, VersionPublic, public

router = APIRouter(prefix=API_PREFIX, tags=["models"])


def _model_public(m) -> dict:
    return {"version": m.version, "source": m.source, "run_id": m.run_id, "aliases": list(m.aliases),
            "sha256": m.sha256, "created_at": m.created_at.isoformat(), "card": m.card}


@router.get("/projects/{name}/models")
def list_models(name: str, core: Core = Depends(get_core)):
    """Model versions, newest first, with their aliases (``production`` is the one serving)."""
    return [_model_public(m) for m in registry.list_models(core, name)]


_FORM_ROOM = 1024 * 1024  # the multipart framing and the small fields (labels, description) beside the file


class _ModelUploadRoute(APIRoute):
    """Counts a model upload's bytes as they stream in and refuses it (413) as soon as they pass
    ``max_model_bytes`` plus room for the form's other fields, instead of after the multipart
    parser has spooled the whole body; the file itself is measured exactly by the registry."""

    def get_route_handler(self):
        handle = super().get_route_handler()

        async def limited(request: Request):
            limit = request.app.state.core.settings.max_model_bytes
            received = 0

            async def receive():
                nonlocal received
                message = await request.receive()
                received += len(message.get("body", b""))
                if received > limit + _FORM_ROOM:
                    raise exceeded(f"the model is more than {limit} bytes", limit, "max_model_bytes")
                return message

            try:
                return await handle(Request(request.scope, receive))
            except HTTPException as exc:  # FastAPI reports any failed body read as a 400
                if isinstance(exc.__cause__, TooLarge):
                    return error_response(exc.__cause__, close=True)  # the rest of the body is not read
                raise

        return limited


def upload_model(name: str, file: UploadFile = File(..., description="An ONNX model file."),
                 labels: list[str] = Form(..., description="Class labels in the order of the model's outputs."),
                 description: str = Form(""), core: Core = Depends(get_core)):
    """Add a model trained elsewhere: validated, evaluated on the project's holdout, registered
    (not promoted — promote it when its scores convince you). Pickles and checkpoints are refused."""
    from ..registry.external import upload_model as upload

    if len(labels) == 1 and labels[0].lstrip().startswith("["):
        try:
            labels = json.loads(labels[0])  # also accept one JSON list
        except ValueError:
            raise Invalid("labels is not a valid JSON list; send repeated 'labels' fields instead") from None
    # The file object, not its bytes: the upload is copied to disk in chunks against max_model_bytes.
    return _model_public(upload(core, name, file.file, labels, filename=file.filename or "",
                                description=description))


router.add_api_route("/projects/{name}/models", upload_model, methods=["POST"], status_code=201,
                     route_class_override=_ModelUploadRoute)


@router.get("/projects/{name}/models/{version}")
def get_model(name: str, version: int, core: Core = Depends(get_core)):
    """The model card: labels, learner, parameters, metrics, dataset version, input contract."""
    return _model_public(registry.get_model(core, name, version))


@router.get("/projects/{name}/models/{version}/file", response_class=FileResponse)
def model_file(name: str, version: int, core: Core = Depends(get_core)):
    """Download the model file: ONNX (its card says what it takes and answers), or a
    recommender's ``.npz`` arrays (format dyntrain.recommender/1, read with NumPy)."""
    m = registry.get_model(core, name, version)
    # Through the artifact store: the stored path is checked to stay inside it (and fetched from S3).
    suffix = PurePosixPath(m.path).suffix or ".onnx"
    return FileResponse(registry.model_file(core, m.path), media_type="application/octet-stream",
                        filename=f"{name}-v{version}{suffix}")


@router.post("/projects/{name}/models/{version}/promote")
def promote(name: str, version: int, core: Core = Depends(get_core)):
    """Serve this version now (moves the ``production`` alias)."""
    previous = registry.promote(core, name, version, reason="promoted by hand")
    _refresh(core, name)
    return {"production": version, "previous": previous}


@router.post("/projects/{name}/rollback")
def rollback(name: str, core: Core = Depends(get_core)):
    """Serve the version that served before the current one was promoted; repeat to walk further
    back (v3 → v2 → v1). 422 when there is nothing older to go back to."""
    version = registry.rollback(core, name)
    _refresh(core, name)
    return {"production": version}


def _refresh(core: Core, name: str) -> None:
    with core.db.read() as s:
        pid = project_row(s, name).id
    core.live.refresh(pid)


@router.get("/projects/{name}/aliases/history")
def alias_history(name: str, core: Core = Depends(get_core)):
    """Which version served when, and why (newest first)."""
    return registry.alias_history(core, name)


_EXPLAIN_IMAGES = ("Add an ``explanation`` heatmap to each prediction: ``cam`` (exact class activation map, linear "
                   "probe models, a few ms), ``occlusion`` (any image model; queued, rate-limited per caller, "
                   "cached per model version and image) or ``auto`` (cam where the model has one, else "
                   "occlusion). A refused explanation never fails the prediction.")


@router.post("/projects/{name}/predict")
def predict(name: str, request: Request, files: list[UploadFile] = File(..., description="One or many images."),
            version: int | None = Query(None, description="A specific model version instead of production."),
            explain: str | None = Query(None, pattern="^(auto|cam|occlusion)$", description=_EXPLAIN_IMAGES),
            probabilities: bool = Query(False, description=(
                "Semantic segmentation: also each class's probability per pixel, as a greyscale PNG per class "
                "(base64, 255 = certain) under `probabilities`. Other tasks answer their scores anyway.")),
            core: Core = Depends(get_core)):
    """Classify images with the model in service. Each bad image gets its own ``error`` entry."""
    client = request.client.host if request.client else ""
    sent = [(f.filename or "upload", f.file.read()) for f in files]
    results = serving.predict_items(core, name, sent, version=version, client=client, detail=probabilities,
                                    file_url=lambda pid, file: _file_url(name, pid, file))
    if explain:
        _explain(core, name, results, sent, explain, request)
    return {"predictions": results}


def _explain(core: Core, name: str, results: list, sent: list, method: str, request: Request) -> None:
    from ..serving import explain as explaining  # here: only requests that ask for one load it

    explaining.attach(core, name, results, sent, method, _caller(request))


def _caller(request: Request) -> str:
    """Who the explanation rate limit counts against: the token, else the client's address."""
    who = getattr(request.state, "caller", None)
    return (f"token:{who.token_id}" if who is not None and who.token_id is not None
            else f"client:{request.client.host if request.client else ''}")


class TextsIn(BaseModel):
    texts: list[Text]


@router.post("/projects/{name}/predict/texts")
def predict_texts(name: str, body: TextsIn, request: Request,
                  version: int | None = Query(None, description="A specific model version instead of production."),
                  explain: str | None = Query(None, pattern="^words$", description=(
                      "``words``: weigh each word (sentence, in long texts) by how much leaving it out lowers "
                      "the answer's score; queued, rate-limited and cached like image occlusion.")),
                  core: Core = Depends(get_core)):
    """Classify texts (text-classification projects); same answer shape as ``/predict``."""
    client = request.client.host if request.client else ""
    sent = [(f"text-{i}", t.encode("utf-8")) for i, t in enumerate(body.texts)]
    results = serving.predict_items(core, name, sent, version=version, client=client)
    if explain:
        _explain(core, name, results, sent, explain, request)
    return {"predictions": results}


class RowsIn(BaseModel):
    rows: list[JsonObject] = Field(..., description="Objects with exactly the model's columns (null = missing).",
                                   examples=[[{"rooms": 3, "city": "Oslo"}]])


@router.post("/projects/{name}/predict/rows")
def predict_rows(name: str, body: RowsIn, request: Request,
                 version: int | None = Query(None, description="A specific model version instead of production."),
                 core: Core = Depends(get_core)):
    """Predict table rows (tabular projects): per row ``label``/``confidence``/``scores``
    (classification) or ``value`` (regression). The model's columns are in its card
    (``input.columns``); an unknown or missing column is a 422 naming it."""
    client = request.client.host if request.client else ""
    return {"predictions": serving.predict_rows(core, name, body.rows, version=version, client=client)}


@router.get("/projects/{name}/predictions")
def list_predictions(name: str, label: str | None = None, min_confidence: float | None = Query(None, ge=0, le=1),
                     max_confidence: float | None = Query(None, ge=0, le=1), version: int | None = None,
                     order: str = Query("newest", pattern="^(newest|least_confident)$"),
                     offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000),
                     cursor: str | None = Query(None, description="The previous page's next_cursor: the page after "
                                                "it (keyset pagination, fast at any depth; offset is then ignored)."),
                     core: Core = Depends(get_core)):
    """Every prediction recorded, filterable; ``order=least_confident`` shows doubtful ones first.

    ``total`` counts the matching records up to 10,000 (``total_exact`` false beyond: counting
    a million records would slow every page); page through any number with ``next_cursor``."""
    items, total = serving.list_predictions(core, name, label=label, min_confidence=min_confidence,
                                            max_confidence=max_confidence, version=version, order=order,
                                            offset=offset, limit=limit, cursor=cursor, count_limit=_COUNT_LIMIT)
    # scores and value: the fields of earlier releases, beside the whole output
    return {"items": [{**p.__dict__, "scores": p.scores, "value": p.value, "created_at": p.created_at.isoformat()}
                      for p in items], "total": min(total, _COUNT_LIMIT), "total_exact": total <= _COUNT_LIMIT,
            "offset": offset, "limit": limit, "next_cursor": serving.next_cursor(items, order, limit)}


_COUNT_LIMIT = 10_000


@router.get("/projects/{name}/predictions/{prediction_id}/image", response_class=Response)
def prediction_image(name: str, prediction_id: int, size: int = Query(160, ge=16, le=512),
                     core: Core = Depends(get_core)):
    """A thumbnail of a prediction's input image, while it is kept (see store_prediction_inputs)."""
    with core.db.read() as s:
        row = serving.prediction_row(s, project_row(s, name).id, prediction_id)
        stored, digest = row.input_stored, row.input_hash
    if not stored or not digest or not core.blobs.exists(digest):
        raise NotFound(f"the image of prediction {prediction_id} was not kept")
    data = thumbnail_bytes(decode_image(core.blobs.get(digest), max_pixels=core.settings.max_image_pixels), size)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/projects/{name}/predictions/{prediction_id}/input", response_class=Response)
def prediction_input(name: str, prediction_id: int, core: Core = Depends(get_core)):
    """A prediction's input as it was sent, byte for byte, while it is kept (the mask editor paints
    a correction over the photo at its own size)."""
    from .. import tasks

    with core.db.read() as s:
        project = project_row(s, name)
        row = serving.prediction_row(s, project.id, prediction_id)
        stored, digest, task = row.input_stored, row.input_hash, project.task
    if not stored or not digest or not core.blobs.exists(digest):
        raise NotFound(f"the input of prediction {prediction_id} was not kept")
    data = core.blobs.get(digest)
    return Response(data, media_type=tasks.get(task).modality.media_type(data),
                    headers={"Cache-Control": "private, max-age=3600"})


def _file_url(name: str, prediction_id: int, file: str) -> str:
    from urllib.parse import quote

    return f"{API_PREFIX}/projects/{quote(name, safe='')}/predictions/{prediction_id}/files/{file}"


@router.get("/projects/{name}/predictions/{prediction_id}/files/{file}", response_class=Response)
def prediction_file(name: str, prediction_id: int, file: str, core: Core = Depends(get_core)):
    """A file the model answered with, kept with the record while its input is kept: a
    segmentation's mask (``mask``: an indexed PNG, the class colours as its palette) or a learned
    filter's output image (``image``); the answer's ``urls`` name them."""
    with core.db.read() as s:
        row = serving.prediction_row(s, project_row(s, name).id, prediction_id)
        stored, digest = row.input_stored, ((row.output or {}).get("files") or {}).get(file)
    if not stored or not isinstance(digest, str) or not core.blobs.exists(digest):
        raise NotFound(f"prediction {prediction_id} kept no {file!r} file (its input was not kept, or its "
                       "retention expired)")
    return Response(core.blobs.get(digest), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.get("/projects/{name}/predictions/{prediction_id}/explanation")
def prediction_explanation(name: str, prediction_id: int, request: Request, response: Response,
                           method: str = Query("auto", pattern="^(auto|cam|occlusion|words)$", description=(
                               "``auto``: ``words`` for texts; for images the exact class activation map "
                               "where the model has one, else occlusion.")),
                           core: Core = Depends(get_core)):
    """Why a recorded prediction said what it said: its kept input explained with the model
    version that answered it, through the same queue, rate limit and cache as ``?explain=`` on
    ``/predict``. 200 ``ready`` (or ``unavailable`` with the reason), 202 ``pending`` (ask again:
    the answer is cached), 429 ``rate_limited`` with Retry-After; 409 when the input was not kept,
    410 when that model version has been deleted since."""
    from ..serving import explain as explaining

    e = explaining.explain_prediction(core, name, prediction_id, method, _caller(request))
    if e.get("status") == "refused":  # an error like any other, with when to come back
        wait = max(1, round(e.get("retry_after_s") or 1))
        return JSONResponse({"error": {"code": "rate_limited", "message": e["reason"]}}, status_code=429,
                            headers={"Retry-After": str(wait)})
    if e.get("status") == "pending":
        response.status_code = 202
    return e


class Feedback(BaseModel):
    label: Text | list[dict[str, Any]] | dict[str, Any] = Field(
        ..., description="The right answer in the task's label format: a class, a number, or for "
        "structured targets their annotation (e.g. a list of boxes).")
    add_to_training: bool = False


@router.post("/projects/{name}/predictions/{prediction_id}/feedback", response_model=ChangeResult)
def feedback(name: str, prediction_id: int, body: Feedback, request: Request, core: Core = Depends(get_core)):
    """Record the correct label; with ``add_to_training`` the image becomes a sample (and retrains)."""
    if body.add_to_training:  # changes the training data: a predictor token may only send feedback
        authorize(request, "edit", name)
    serving.set_feedback(core, name, prediction_id, body.label)
    if not body.add_to_training:
        return ChangeResult()
    return _add_to_training(core, name, prediction_id, body.label)


@router.post("/projects/{name}/predictions/{prediction_id}/add-to-training", response_model=ChangeResult)
def add_to_training(name: str, prediction_id: int, label: str | None = Form(None), core: Core = Depends(get_core)):
    """Turn a prediction's image into a training sample (its feedback label, or the given one)."""
    return _add_to_training(core, name, prediction_id, label)


def _add_to_training(core: Core, name: str, prediction_id: int, label: str | None) -> ChangeResult:
    with core.db.read() as s:
        row = serving.prediction_row(s, project_row(s, name).id, prediction_id)
        # the given label, else the recorded correction (its whole annotation where it has one),
        # else the prediction's own class
        if label is None:
            label = row.feedback if row.feedback is not None else (row.feedback_label or row.label)
        stored, digest = row.input_stored, row.input_hash
    if not stored or not core.blobs.exists(digest):
        from ..kernel.errors import Conflict

        raise Conflict("this prediction's image was not kept (store_prediction_inputs is off or retention "
                       "expired); upload the image as a sample instead")
    from ..datasets import changes  # here: an inference replica never loads the datasets package

    samples, version = changes.add_samples(core, name, [changes.Upload(f"prediction-{prediction_id}", core.blobs.get(digest))],
                                           [label], source=f"prediction:{prediction_id}")
    return ChangeResult(samples=[public(SamplePublic, x) for x in samples],
                        version=public(VersionPublic, version) if version else None)


@router.get("/projects/{name}/events")
async def events(name: str, request: Request, after: int = Query(0, ge=0),
                 last_event_id: str | None = Header(None), core: Core = Depends(get_core)):
    """Server-sent events (``Accept: text/event-stream``), resuming after ``Last-Event-ID``;
    otherwise a JSON page of the history after ``after``."""

    def _pid() -> int:
        with core.db.read() as s:
            return project_row(s, name).id

    pid = await run_in_threadpool(_pid)

    def _page(start: int, limit: int = 100):
        with core.db.read() as s:
            return events_after(s, pid, start, limit)

    if "text/event-stream" not in request.headers.get("accept", ""):
        page = await run_in_threadpool(_page, after)
        return {"events": [_event_json(e) for e in page], "next": page[-1].id if page else after}

    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after

    async def stream():
        cursor = start
        yield "retry: 1000\n\n"
        idle = 0.0
        while not await request.is_disconnected():
            page = await run_in_threadpool(_page, cursor)
            for e in page:
                cursor = e.id
                yield f"id: {e.id}\nevent: {e.type}\ndata: {json.dumps(_event_json(e))}\n\n"
            if page:
                idle = 0.0
                continue
            idle += 0.25
            if idle >= 15:  # keep proxies from closing an idle stream
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(0.25)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _event_json(e) -> dict:
    return {"id": e.id, "type": e.type, "data": e.data, "at": e.created_at.isoformat()}


