"""Routes: housekeeping (garbage collection) and purging a content for privacy."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..ops import housekeeping
from ..kernel.core import Core
from ..datasets import purge as purging
from .deps import API_PREFIX, get_core

router = APIRouter(prefix=API_PREFIX, tags=["admin"])


def _actor(request: Request) -> str:
    return getattr(getattr(request.state, "caller", None), "name", "") or "unknown"


@router.post("/admin/gc")
def run_gc(request: Request, dry_run: bool = Query(False, description="Report what would go, delete nothing."),
           core: Core = Depends(get_core)):
    """Housekeeping now: prediction retention, model versions beyond each project's
    ``keep_model_versions``, feature caches of content no data uses, orphan blobs and model files.
    Nothing a dataset version, a sample, a stored prediction input, an alias or a running training
    references is deleted, nor any file younger than ``DYNTRAIN_GC_GRACE_S``."""
    return housekeeping.gc(core, dry_run=dry_run, actor=_actor(request)).to_dict()


class PurgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content_hash: str = Field(..., description="sha256 of the content (a sample's or a prediction's input_hash).")


@router.post("/projects/{name}/samples/{sample_id}/purge")
def purge_sample(name: str, sample_id: int, request: Request, core: Core = Depends(get_core)):
    """Remove this sample's content from the project everywhere — old dataset versions included —
    for privacy. Runs and models trained on it are marked; the blob goes unless another project
    uses it. Unlike DELETE, this cannot be undone by restoring an older version."""
    return purging.purge_sample(core, name, sample_id, actor=_actor(request))


@router.post("/projects/{name}/purge")
def purge_content(name: str, body: PurgeBody, request: Request, core: Core = Depends(get_core)):
    """Purge by content hash: also reaches content only old versions or prediction inputs hold."""
    return purging.purge(core, name, body.content_hash, actor=_actor(request))
