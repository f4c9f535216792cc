"""Sign in to the UI with an API token: the token becomes a signed session cookie.

The cookie is HttpOnly (scripts cannot read it) and SameSite=Strict; every change the
pages make also carries the session's CSRF token in a header (see static/app.js), which
:func:`dyntrain.api.deps.caller` checks; the sign-in and sign-out forms post it as a field.
Signing out ends the session server-side (every cookie of that token stops working).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from ..access.auth import authenticate, end_sessions
from ..kernel.core import Core
from ..kernel.errors import Forbidden
from ..api.deps import SESSION_COOKIE, SESSION_MAX_AGE_S, check_csrf, get_core, new_session
from .pages import templates

router = APIRouter(include_in_schema=False)


def _local_path(next_: str) -> str:
    """Only a path on this site: never an open redirect to another host."""
    return next_ if next_.startswith("/") and not next_.startswith("//") and "\\" not in next_ else "/"


@router.get("/login")
def login_page(request: Request, next: str = "/"):
    return templates.TemplateResponse(request, "login.html", {"next": _local_path(next), "error": None})


@router.post("/login")
def login(request: Request, token: str = Form(""), next: str = Form("/"), csrf_token: str = Form(""),
          core: Core = Depends(get_core)):
    # Login CSRF: another site's form must not sign this browser in with the attacker's token.
    try:
        check_csrf(request, csrf_token)
    except Forbidden:
        return templates.TemplateResponse(
            request, "login.html", {"next": _local_path(next), "error": "This sign-in form has expired or was "
                                    "not sent from this site: sign in again here."}, status_code=403)
    who = authenticate(core, token.strip())
    if who is None:
        return templates.TemplateResponse(
            request, "login.html", {"next": _local_path(next), "error": "That token is unknown or revoked. "
                                    "Ask an admin for one (`dyntrain tokens create`)."}, status_code=401)
    cookie, _ = new_session(core, who.token_id)
    response = RedirectResponse(_local_path(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_MAX_AGE_S, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form(""), core: Core = Depends(get_core)) -> Response:
    if request.state.session:  # end it server-side: a copy of the cookie must not keep working
        check_csrf(request, csrf_token)
        end_sessions(core, request.state.caller.token_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def login_url(path: str) -> str:
    return "/login?next=" + quote(path, safe="/")


# -- admin pages: tokens and the audit log -------------------------------------------------------


@router.get("/tokens")
def tokens_page(request: Request, core: Core = Depends(get_core)):
    from ..access.auth import ROLES, list_tokens
    from ..kernel.projects import list_projects

    who = request.state.caller
    return templates.TemplateResponse(request, "tokens.html", {
        "tokens": list_tokens(core, include_revoked=True, by=who), "roles": list(ROLES),
        "projects": [p.name for p, _ in list_projects(core) if who.sees(p.name)]})


@router.get("/audit")
def audit_page(request: Request, project: str | None = None, before: int | None = None,
               core: Core = Depends(get_core)):
    from ..access.audit import entries

    items = entries(core, project or None, 100, before, projects=request.state.caller.projects)
    return templates.TemplateResponse(request, "audit.html", {
        "items": items, "project": project, "older": items[-1].id if len(items) == 100 else None})
