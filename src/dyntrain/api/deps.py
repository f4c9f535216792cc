"""Dependencies shared by every route: the platform core and the caller.

Every route (API and HTML) resolves its caller through :func:`caller`, applied once at the
app level: it identifies the caller (bearer token, UI session cookie, or a trusted local
request), refuses a browser's change that lacks the CSRF token (:func:`needs_csrf`) and checks the
route's permission from :func:`dyntrain.access.auth.required_permission`.
"""

from __future__ import annotations

import functools
import secrets

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..access.auth import (EVERY_PROJECT, LOCAL_ADMIN, Caller, authenticate, caller_by_session, is_loopback,
                    required_permission, start_session)
from ..kernel.core import Core
from ..kernel.errors import Forbidden, Unauthorized
from ..storage.files import stored_secret

__all__ = ["API_PREFIX", "Caller", "caller", "get_core", "SESSION_COOKIE", "CSRF_COOKIE", "CSRF_HEADER",
           "session_serializer", "new_session", "trusts_local", "authorize", "needs_csrf", "check_csrf",
           "page_csrf"]

# Every API router carries the prefix itself (not an enclosing router), so a matched
# route's ``path`` is the full template that permissions, audit and metrics key on.
API_PREFIX = "/api/v1"
SESSION_COOKIE = "dyntrain_session"
CSRF_HEADER = "X-CSRF-Token"
# Before a session exists (the sign-in form; a loopback server trusting this machine) the CSRF
# token is the value of this cookie, which the page also embeds: another site can neither read
# the page nor send the cookie (SameSite=Strict), so it cannot produce the pair.
CSRF_COOKIE = "dyntrain_csrf"
SESSION_MAX_AGE_S = 12 * 3600
_SAFE = ("GET", "HEAD", "OPTIONS")


def get_core(request: Request) -> Core:
    return request.app.state.core


def trusts_local(core: Core) -> bool:
    """auth=auto/off on a loopback-bound server: a request from this machine is the admin.

    Bound to any other address, a reverse proxy would make every request look local, so
    nothing is trusted without a token.
    """
    return core.settings.auth in ("auto", "off") and is_loopback(core.settings.host)


def session_serializer(core: Core) -> URLSafeTimedSerializer:
    return _serializer(core.settings.data_dir, core.settings.session_secret)


@functools.lru_cache(maxsize=16)
def _serializer(data_dir, override: str) -> URLSafeTimedSerializer:
    # Built once per data dir: every UI request checks a cookie, none should read the secret file.
    return URLSafeTimedSerializer(stored_secret(data_dir, "session-secret", override), salt="dyntrain-session")


def new_session(core: Core, token_id: int) -> tuple[str, str]:
    """A signed session cookie value for a token, and the CSRF token bound to it.

    The cookie also carries the token's session nonce: signing out (or revoking the token)
    replaces it server-side, so the cookie stops working at once (see auth.end_sessions).
    """
    csrf = secrets.token_urlsafe(24)
    return session_serializer(core).dumps({"t": token_id, "n": start_session(core, token_id), "c": csrf}), csrf


def _session(request: Request, core: Core) -> tuple[Caller, str] | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = session_serializer(core).loads(raw, max_age=SESSION_MAX_AGE_S)
    except BadSignature:  # also expired
        return None
    who = caller_by_session(core, int(data.get("t", 0)), str(data.get("n", "")))
    return (who, str(data.get("c", ""))) if who else None


# Headers a browser adds by itself to the changes a page makes (a form, fetch, XHR) and that a
# page's scripts cannot remove; the CLI, httpx and curl send none of them.
_BROWSER_HEADERS = ("origin", "sec-fetch-site", "referer")


def needs_csrf(request: Request, from_session: bool) -> bool:
    """Whether this change must prove, with the CSRF token, that it came from one of our own pages.

    Two credentials reach the server without the caller choosing to send them: the UI's session
    cookie, and — on a loopback-bound server with auth auto/off — being on this machine. With them,
    any web page the user opens could make changes here (a form posted to 127.0.0.1, a fetch of a
    multipart body: neither needs a CORS preflight). So a change carrying the session cookie, or
    coming from a browser at all (it has an Origin, Sec-Fetch-Site or Referer header: every current
    browser sends Origin with each POST/PUT/PATCH/DELETE), needs the token that only our own pages
    can read. A bearer token is never added by a browser on its own, so a request with an
    Authorization header needs none; nor does a non-browser client (the CLI uploads multipart bodies,
    just like a form, and sends no browser header), which no other site can drive.
    """
    if request.method in _SAFE or "authorization" in request.headers:
        return False
    return from_session or any(h in request.headers for h in _BROWSER_HEADERS)


def check_csrf(request: Request, sent: str) -> None:
    """Refuse (403) unless ``sent`` is this browser's CSRF token (the session's, else the CSRF cookie's)."""
    expected = getattr(request.state, "csrf", None) or ""
    if not expected or not sent or not secrets.compare_digest(sent, expected):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again (changes from a browser must "
                        "come from this server's own pages; scripts and API clients send a bearer token instead)")


def page_csrf(request: Request) -> str:
    """The CSRF token a page embeds for its scripts and forms; made (and set as a cookie by the
    security-headers middleware) when the browser has neither a session nor a CSRF cookie yet."""
    token = getattr(request.state, "csrf", None)
    if not token:
        token = request.state.csrf = secrets.token_urlsafe(24)
        request.state.new_csrf_cookie = token
    return token


def authorize(request: Request, permission: str, project: str | None = None) -> Caller:
    """The caller, if it may use ``permission`` on ``project``; else 403. Routes that learn the
    project only from their data (by-id routes, feedback adding to training) call this themselves."""
    who: Caller = request.state.caller
    if not who.may(permission, project):
        scope = f" for project {project!r}" if project else ""
        raise Forbidden(f"the {who.role} token {who.name!r} may not do this{scope}: it needs the "
                        f"{permission!r} permission (ask an admin for a token with the right role)")
    return who


def caller(request: Request) -> Caller | None:
    """Who is calling, after checking they may call this route; raises 401 / 403 otherwise."""
    core = get_core(request)
    route = request.scope.get("route")
    permission = required_permission(request.method, getattr(route, "path", request.url.path))
    who, csrf, bad_token = None, None, False
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        who = authenticate(core, secret.strip()) if scheme.lower() == "bearer" else None
        bad_token = who is None
    elif (session := _session(request, core)) is not None:
        who, csrf = session
    elif trusts_local(core) and is_loopback(request.client.host if request.client else None):
        who = LOCAL_ADMIN
    request.state.caller = who
    request.state.session = csrf is not None
    request.state.csrf = csrf if csrf is not None else request.cookies.get(CSRF_COOKIE)
    if permission is None:
        return who  # public: the sign-in and sign-out forms check their CSRF field themselves
    if bad_token:
        raise Unauthorized("the token is unknown or revoked: pass a valid one as 'Authorization: Bearer "
                           "<token>' (the CLI reads DYNTRAIN_TOKEN)")
    if who is None:
        raise Unauthorized("this needs an API token: pass 'Authorization: Bearer <token>' (the CLI reads "
                           "DYNTRAIN_TOKEN; an admin creates tokens with `dyntrain tokens create`)")
    if needs_csrf(request, from_session=csrf is not None):
        check_csrf(request, request.headers.get(CSRF_HEADER, ""))
    authorize(request, permission, request.path_params.get("name"))
    if who.projects and (request.method, getattr(route, "path", "")) in EVERY_PROJECT:
        raise Forbidden(f"the token {who.name!r} is limited to some projects; this acts on every project (or "
                        "creates one): it needs a token for every project")
    return who
