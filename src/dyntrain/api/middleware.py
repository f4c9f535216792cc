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

from fastapi import FastAPI, Response
from starlette.datastructures import MutableHeaders
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core import Core
from ..limits import exceeded
from ..observability import request_id_var

__all__ = ["install_observability", "ObservabilityMiddleware", "BodyLimitMiddleware", "REQUEST_ID_HEADER"]

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
        body = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
        start = {"type": "http.response.start", "status": 413,
                 "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                             (b"connection", b"close")]}
        return start, {"type": "http.response.body", "body": body}

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
    """The request-size limit, request ids + latency metrics + access log, and ``GET /metrics``."""
    app.add_middleware(BodyLimitMiddleware, core=core)
    app.add_middleware(ObservabilityMiddleware, core=core)  # added last = outermost: sees the 413s too

    @app.get("/metrics", tags=["health"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    def metrics() -> Response:
        """Prometheus metrics: request latency per route, predictions per project and version,
        training stage durations, queue depth (from the database), model swaps."""
        body, content_type = core.metrics.render()
        return Response(body, media_type=content_type)
