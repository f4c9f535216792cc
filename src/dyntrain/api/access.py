"""Routes: who am I, API tokens (admin) and the audit log."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..access import audit, auth
from ..kernel import projects as svc
from ..kernel.core import Core
from .deps import API_PREFIX, get_core

router = APIRouter(prefix=API_PREFIX, tags=["access"])


class CallerPublic(BaseModel):
    name: str
    role: str
    projects: list[str] = Field(description="The projects this caller may touch; empty = every project.")
    permissions: list[str]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100, examples=["shop-app"], description="Who or what uses it.")
    role: Literal["admin", "trainer", "predictor", "viewer"] = Field(
        ..., description="admin: everything; trainer: data, training, promotion; predictor: predict only; "
                         "viewer: read only.")
    projects: list[str] = Field(default_factory=list, description="Limit the token to these projects; "
                                                                   "empty = every project.")


@dataclass(frozen=True)
class TokenCreated(auth.TokenInfo):
    token: str = field(metadata={"description": "The secret: shown once, never again. Send it as "
                                                "'Authorization: Bearer …'."})


@router.get("/me", response_model=CallerPublic)
def who_am_i(request: Request):
    """The caller behind this request's credentials, with what it may do."""
    who: auth.Caller = request.state.caller
    return CallerPublic(name=who.name, role=who.role, projects=sorted(who.projects),
                        permissions=sorted(auth.ROLES[who.role]))


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, request: Request, core: Core = Depends(get_core)):
    """Create a token. Its secret is in this response only: store it now."""
    who: auth.Caller = request.state.caller
    info, secret = auth.create_token(core, body.name, body.role, body.projects, created_by=who.name, by=who)
    return TokenCreated(**asdict(info), token=secret)


@router.get("/tokens", response_model=list[auth.TokenInfo])
def list_tokens(request: Request, include_revoked: bool = False, core: Core = Depends(get_core)):
    """Every token (never its secret), with when it was last used; a token limited to some
    projects sees the tokens limited to those projects alone."""
    return auth.list_tokens(core, include_revoked, by=request.state.caller)


@router.delete("/tokens/{token_id}", response_model=auth.TokenInfo)
def revoke_token(token_id: int, request: Request, core: Core = Depends(get_core)):
    """Revoke a token at once; requests carrying it (and its UI sessions) are refused from now on."""
    return auth.revoke_token(core, token_id, by=request.state.caller)


@router.get("/audit", response_model=list[audit.AuditEntry])
def audit_log(request: Request, project: str | None = None, limit: int = Query(200, ge=1, le=1000),
              before: int | None = Query(None, description="Entries older than this id (paging)."),
              core: Core = Depends(get_core)):
    """Who changed what and when, newest first, across projects (admin; a token limited to some
    projects sees theirs alone)."""
    return audit.entries(core, project, limit, before, projects=request.state.caller.projects)


@router.get("/projects/{name}/audit", response_model=list[audit.AuditEntry])
def project_audit_log(name: str, limit: int = Query(200, ge=1, le=1000), before: int | None = None,
                      core: Core = Depends(get_core)):
    """Who changed this project's data, trained, promoted or rolled back, and when."""
    svc.get_project(core, name)  # 404 for an unknown project
    return audit.entries(core, name, limit, before)
