"""Dependencies shared by every route: the platform core and the caller.

Every route (API and HTML) resolves its caller through :func:`caller`, applied once at the
app level: it identifies the caller (bearer token, UI session cookie, or a trusted local
request) and checks the route's permission from :func:`dyntrain.auth.required_permission`.
"""

from __future__ import annotations

import functools
import secrets

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..auth import LOCAL_ADMIN, Caller, authenticate, caller_by_token_id, is_loopback, required_permission
from ..core import Core
from ..errors import Forbidden, Unauthorized
from ..storage.files import stored_secret

__all__ = ["API_PREFIX", "Caller", "caller", "get_core", "SESSION_COOKIE", "CSRF_HEADER", "session_serializer",
           "new_session", "trusts_local"]

# Every API router carries the prefix itself (not an enclosing router), so a matched
# route's ``path`` is the full template that permissions, audit and metrics key on.
API_PREFIX = "/api/v1"
SESSION_COOKIE = "dyntrain_session"
CSRF_HEADER = "X-CSRF-Token"
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
    """A signed session cookie value for a token, and the CSRF token bound to it."""
    csrf = secrets.token_urlsafe(24)
    return session_serializer(core).dumps({"t": token_id, "c": csrf}), csrf


def _session(request: Request, core: Core) -> tuple[Caller, str] | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = session_serializer(core).loads(raw, max_age=SESSION_MAX_AGE_S)
    except BadSignature:  # also expired
        return None
    who = caller_by_token_id(core, int(data.get("t", 0)))
    return (who, str(data.get("c", ""))) if who else None


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
    request.state.csrf = csrf
    if permission is None:
        return who
    if bad_token:
        raise Unauthorized("the token is unknown or revoked: pass a valid one as 'Authorization: Bearer "
                           "<token>' (the CLI reads DYNTRAIN_TOKEN)")
    if who is None:
        raise Unauthorized("this needs an API token: pass 'Authorization: Bearer <token>' (the CLI reads "
                           "DYNTRAIN_TOKEN; an admin creates tokens with `dyntrain tokens create`)")
    project = request.path_params.get("name")
    if not who.may(permission, project):
        scope = f" for project {project!r}" if project else ""
        raise Forbidden(f"the {who.role} token {who.name!r} may not do this{scope}: it needs the "
                        f"{permission!r} permission (ask an admin for a token with the right role)")
    # A cookie is sent by the browser on its own; a change must also prove it came from our page.
    if csrf is not None and request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not secrets.compare_digest(sent, csrf):
            raise Forbidden("missing or wrong CSRF token: reload the page and try again")
    return who
