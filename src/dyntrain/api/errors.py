"""Map DyntrainError codes (and FastAPI's own errors) to JSON ``{"error": {...}}`` responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from ..kernel.errors import DyntrainError

log = logging.getLogger(__name__)
# Seconds a client should wait before retrying after a 503 (the database was busy or unreachable).
RETRY_AFTER_S = 2

__all__ = ["install_error_handlers", "error_response", "STATUS"]

STATUS = {"not_found": 404, "conflict": 409, "gone": 410, "invalid": 422, "too_large": 413, "not_ready": 409,
          "missing_extra": 501, "cancelled": 409, "unauthorized": 401, "forbidden": 403}


def _body(code: str, message: str, details: list | None = None) -> dict:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(exc: DyntrainError, *, close: bool = False) -> JSONResponse:
    """The JSON answer to ``exc``; ``close`` also ends the connection, so a body refused part way
    (too large) is not read to its end."""
    return JSONResponse(_body(exc.code, exc.message, exc.details), status_code=STATUS.get(exc.code, 400),
                        headers={"Connection": "close"} if close else None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DyntrainError)
    async def _dyntrain(request: Request, exc: DyntrainError):
        status = STATUS.get(exc.code, 400)
        if exc.code in ("unauthorized", "forbidden") and _is_page(request):
            return _page_refusal(request, exc, status)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(_body(exc.code, exc.message, exc.details), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        details = [{"field": ".".join(str(p) for p in err.get("loc", ())), "reason": err.get("msg", "")}
                   for err in exc.errors()]
        message = "invalid request: " + "; ".join(f"{d['field']}: {d['reason']}" for d in details)
        return JSONResponse(_body("invalid", message, details), status_code=422)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_: Request, exc: Exception):
        # A number too large for the database (e.g. an id of 10**30): the caller's mistake, not ours.
        return JSONResponse(_body("invalid", "a number in the request is out of range"), status_code=422)

    @app.exception_handler(UnicodeEncodeError)
    async def _not_unicode(_: Request, exc: UnicodeEncodeError):
        # A lone surrogate ("\ud800", valid JSON, not valid Unicode) in a field the request schemas
        # do not check (they name the field, see schemas.unicode_text): the caller's mistake, not ours.
        return JSONResponse(_body("invalid", "a text in the request holds a lone surrogate (e.g. \\ud800), which is "
                                             "not valid Unicode; send valid UTF-8 text"), status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _database_unavailable(request: Request, exc: Exception):
        # SQLite busy beyond its timeout, a PostgreSQL connection lost mid-request, the pool
        # exhausted: the request did not commit (or its transaction was lost), so try again later.
        orig = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        log.warning("%s %s: database unavailable: %s", request.method, request.url.path, orig)
        busy = "locked" in orig.lower() or "busy" in orig.lower() or isinstance(exc, PoolTimeout)
        code, message = (("database_busy", "the database is busy with other writes; retry shortly") if busy else
                         ("database_unavailable", "the database connection was lost; retry shortly"))
        return JSONResponse(_body(code, message), status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception):
        # A bug: the client gets a JSON error without a traceback; Starlette re-raises the
        # exception after this response, so the server log has the traceback.
        return JSONResponse(_body("internal", "internal server error; the server log has the details"),
                            status_code=500)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def _is_page(request: Request) -> bool:
    """An HTML page of the UI (not the API, not /metrics)."""
    return not request.url.path.startswith(("/api/", "/metrics"))


def _page_refusal(request: Request, exc: DyntrainError, status: int):
    """Pages answer a missing login with the sign-in form, a wrong role with a plain page."""
    from fastapi.responses import HTMLResponse, RedirectResponse

    from ..web.access import login_url

    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(login_url(target), status_code=303)
    from html import escape

    return HTMLResponse(f"<!doctype html><title>Not allowed · dyntrain</title><h1>Not allowed</h1>"
                        f"<p>{escape(exc.message)}</p><p><a href='/login'>Sign in with another token</a></p>",
                        status_code=status)
