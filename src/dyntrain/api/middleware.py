"""Pure ASGI middleware: request ids, latency metrics and an access log line; the request-size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses (server-sent events, files)
pass through untouched and the size limit counts body bytes as they arrive.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from http.cookies import SimpleCookie

from fastapi import FastAPI, Request, Response
from starlette.datastructures import MutableHeaders
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..kernel.core import Core
from ..kernel.limits import exceeded
from ..ops.observability import request_id_var
from .deps import CSRF_COOKIE

__all__ = ["install_observability", "ObservabilityMiddleware", "BodyLimitMiddleware", "HostGuardMiddleware",
           "SecurityHeadersMiddleware", "allowed_host_names", "REQUEST_ID_HEADER"]

REQUEST_ID_HEADER = "X-Request-ID"
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
access_log = logging.getLogger("dyntrain.http")


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/v1/projects/{name}/predict``), never the raw path,
    so the metric's label set stays bounded; ``unmatched`` for a 404 on no route."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    if isinstance(route, Mount):
        return path.rstrip("/") + "/{path}"
    return path


class ObservabilityMiddleware:
    """Gives each request an id (the caller's ``X-Request-ID`` if sane, else a new one), echoes it
    in the response, puts it in the logging context, and records latency by route template."""

    def __init__(self, app: ASGIApp, core: Core):
        self.app, self.core = app, core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1").strip()
        request_id = sent if _VALID_ID.fullmatch(sent) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500  # unless the app answers: an exception escaping the app is a 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = route_template(scope)
            self.core.metrics.request(method, route, status, seconds)
            access_log.info("%s %s %s %.1fms", scope["method"], scope["path"], status, seconds * 1000,
                            extra={"method": scope["method"], "path": scope["path"], "route": route,
                                   "status": status, "duration_ms": round(seconds * 1000, 2),
                                   "client": (scope.get("client") or ("",))[0]})
            request_id_var.reset(token)


def _json_error(status: int, code: str, message: str, close: bool = False) -> tuple[Message, Message]:
    """The app's error document (``{"error": {"code", "message"}}``) as raw ASGI messages, for
    middleware that answers before any route runs."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    return {"type": "http.response.start", "status": status, "headers": headers}, {"type": "http.response.body",
                                                                                  "body": body}


def allowed_host_names(core: Core) -> tuple[str, ...]:
    """Host names this server answers to: loopback names, the bound address and ``allowed_hosts``."""
    names = ["localhost", "127.0.0.1", "::1"]
    if core.settings.host not in ("0.0.0.0", "::", ""):  # all addresses is no name anyone types
        names.append(core.settings.host.strip("[]").lower())
    names += [h.strip().lower() for h in core.settings.allowed_hosts.split(",") if h.strip()]
    return tuple(dict.fromkeys(names))


def _host_name(header: str) -> str:
    """``example.com:8000`` → ``example.com``; ``[::1]:8000`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostGuardMiddleware:
    """Refuses (400) a request whose ``Host`` is not a name this server answers to.

    A page on another site can make the browser resolve its own name to 127.0.0.1 (DNS
    rebinding) and then talk to a loopback server as "same origin": only the Host header still
    shows the foreign name. Starlette's TrustedHostMiddleware does the same check but answers in
    plain text; this keeps the app's JSON error shape and says how to allow a name. The public
    health check is exempt: load balancers and probes address a machine by its IP, and it shows
    nothing that anyone without a token cannot already see.
    """

    def __init__(self, app: ASGIApp, core: Core):
        self.app = app
        self.names = allowed_host_names(core)
        self.any = "*" in self.names

    def allows(self, host: str) -> bool:
        return self.any or any(host == n or (n.startswith("*.") and host.endswith(n[1:])) for n in self.names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/api/v1/health":
            await self.app(scope, receive, send)
            return
        host = _host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
        if self.allows(host):
            await self.app(scope, receive, send)
            return
        message = (f"this server does not answer to the host name {host!r}: if that is its name (e.g. behind a "
                   f"proxy), add it to DYNTRAIN_ALLOWED_HOSTS (comma-separated; now {', '.join(self.names)})"
                   if host else "the request has no Host header: send one naming this server")
        for msg in _json_error(400, "invalid_host", message):
            await send(msg)


# The UI's pages load their scripts, styles and images from this server alone (no inline script);
# one template sets a bar's width in a style attribute, hence style-src-attr. The API's own docs
# (/docs, /redoc) are FastAPI's pages: an inline script and Swagger UI / ReDoc from a CDN, with no
# user data in them.
_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; style-src-attr 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
             "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
             "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https:; worker-src 'self' blob:; "
             "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    """Adds Content-Security-Policy, X-Frame-Options, X-Content-Type-Options and Referrer-Policy
    to every response, and the CSRF cookie when a page made a new CSRF token (deps.page_csrf)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _DOCS_CSP if scope["path"].startswith(_DOCS_PATHS) else _CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in (("Content-Security-Policy", csp), ("X-Frame-Options", "DENY"),
                                    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin")):
                    headers.setdefault(name, value)
                if token := (scope.get("state") or {}).get("new_csrf_cookie"):
                    headers.append("Set-Cookie", _csrf_cookie(token, secure=scope.get("scheme") == "https"))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _csrf_cookie(token: str, secure: bool) -> str:
    cookie = SimpleCookie()
    cookie[CSRF_COOKIE] = token
    morsel = cookie[CSRF_COOKIE]
    morsel.update({"path": "/", "httponly": True, "samesite": "Strict", "secure": secure})
    return morsel.OutputString()


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses a request body over ``settings.max_request_bytes`` with a 413 before it is parsed:
    by its Content-Length when it has one, else by counting the bytes as they stream in."""

    def __init__(self, app: ASGIApp, core: Core):
        self.app, self.core = app, core

    def _refusal(self, what: str) -> tuple[Message, Message]:
        limit = self.core.settings.max_request_bytes
        error = exceeded(what, limit, "max_request_bytes", "send fewer or smaller files per request")
        return _json_error(413, error.code, error.message, close=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.core.settings.max_request_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            for message in self._refusal(f"the request body is {int(declared)} bytes"):
                await send(message)
            return
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # the app answered the interrupted read (e.g. a 400): answer 413 instead
                if not started and message["type"] == "http.response.start":
                    started = True
                    for ours in self._refusal(f"the request body is more than {limit} bytes"):
                        await send(ours)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
            if not started:
                started = True
                for message in self._refusal(f"the request body is more than {limit} bytes"):
                    await send(message)


def install_observability(app: FastAPI, core: Core) -> None:
    """The request-size limit, the Host check, security headers, request ids + latency metrics +
    access log, and ``GET /metrics``."""
    app.add_middleware(BodyLimitMiddleware, core=core)
    app.add_middleware(HostGuardMiddleware, core=core)  # before anything reads the body
    app.add_middleware(SecurityHeadersMiddleware)  # on every answer, refusals included
    app.add_middleware(ObservabilityMiddleware, core=core)  # added last = outermost: sees the 413s too

    @app.get("/metrics", tags=["health"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    def metrics(request: Request) -> Response:
        """Prometheus metrics: request latency per route, predictions per project and version,
        training stage durations, queue depth (from the database), model swaps. A token limited
        to some projects sees only their series."""
        who = getattr(request.state, "caller", None)
        body, content_type = core.metrics.render(projects=who.projects if who else frozenset())
        return Response(body, media_type=content_type)
