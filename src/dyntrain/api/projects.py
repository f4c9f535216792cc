"""Routes: /projects and /settings-schema."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ..kernel import projects as svc
from ..kernel.core import Core
from ..kernel.project_settings import settings_schema
from .deps import API_PREFIX, get_core
from .schemas import ProjectCreate, ProjectPatch, ProjectPublic, public

router = APIRouter(prefix=API_PREFIX, tags=["projects"])


@router.post("/projects", status_code=201, response_model=ProjectPublic)
def create_project(body: ProjectCreate, core: Core = Depends(get_core)):
    """Create a project (its name is its address)."""
    return public(ProjectPublic, svc.create_project(core, body.name, body.task, body.description, body.settings))


@router.get("/projects", response_model=list[ProjectPublic])
def list_projects(request: Request, core: Core = Depends(get_core)):
    """All projects with their status at a glance (samples, model in service, training).

    A token limited to some projects sees those alone."""
    who = request.state.caller
    return [public(ProjectPublic, p, status=status) for p, status in svc.list_projects(core)
            if who is None or who.sees(p.name)]


@router.get("/projects/{name}", response_model=ProjectPublic)
def get_project(name: str, core: Core = Depends(get_core)):
    with core.db.read() as s:
        row = svc.project_row(s, name)
        return public(ProjectPublic, row.to_entity(), status=svc.project_status(s, row))


@router.patch("/projects/{name}", response_model=ProjectPublic)
def patch_project(name: str, body: ProjectPatch, core: Core = Depends(get_core)):
    """Change the description or settings; settings are merged, unknown keys are refused."""
    return public(ProjectPublic, svc.update_project(core, name, description=body.description, settings=body.settings))


@router.delete("/projects/{name}", status_code=204)
def delete_project(name: str, core: Core = Depends(get_core)):
    svc.delete_project(core, name)
    return Response(status_code=204)


@router.get("/settings-schema")
def get_settings_schema():
    """Every project setting with its default and meaning."""
    return settings_schema()
