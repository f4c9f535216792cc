"""One error type for the whole package.

Every failure a caller can act on is a :class:`DyntrainError` with a stable ``code``;
the API maps codes to HTTP statuses in one table, the CLI prints the message.

>>> raise NotFound("project 'x' does not exist")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DyntrainError",
    "NotFound",
    "Conflict",
    "Gone",
    "Invalid",
    "TooLarge",
    "NotReady",
    "MissingExtra",
    "Cancelled",
    "Unauthorized",
    "Forbidden",
]


class DyntrainError(Exception):
    """Base error: ``code`` is machine-readable, ``message`` tells the user what to do."""

    code = "error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFound(DyntrainError):
    code = "not_found"


class Conflict(DyntrainError):
    code = "conflict"


class Gone(DyntrainError):
    """The thing asked about existed and was deleted for good (e.g. a model version housekeeping removed)."""

    code = "gone"


class Invalid(DyntrainError):
    code = "invalid"


class TooLarge(DyntrainError):
    code = "too_large"


class NotReady(DyntrainError):
    """The resource exists but cannot do this yet (e.g. a project with no model)."""

    code = "not_ready"


class MissingExtra(DyntrainError):
    code = "missing_extra"

    def __init__(self, feature: str, extra: str):
        super().__init__(f"{feature} needs an optional part: pip install 'dyntrain[{extra}]'")


class Cancelled(DyntrainError):
    """Raised inside a training run when its job was cancelled cooperatively."""

    code = "cancelled"


class Unauthorized(DyntrainError):
    """No valid credentials: a missing, unknown or revoked token."""

    code = "unauthorized"


class Forbidden(DyntrainError):
    """Valid credentials whose role or projects do not cover this action."""

    code = "forbidden"
