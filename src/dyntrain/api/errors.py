"""Map DyntrainError codes (and FastAPI's own errors) to JSON ``{"error": {...}}`` responses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from ..errors import DyntrainError

__all__ = ["install_error_handlers", "STATUS"]

STATUS = {"not_found": 404, "conflict": 409, "invalid": 422, "too_large": 413, "not_ready": 409,
          "missing_extra": 501, "cancelled": 409}


def _body(code: str, message: str, details: list | None = None) -> dict:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DyntrainError)
    async def _dyntrain(_: Request, exc: DyntrainError):
        return JSONResponse(_body(exc.code, exc.message, exc.details), status_code=STATUS.get(exc.code, 400))

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

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)
