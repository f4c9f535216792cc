"""Dependencies shared by every route: the platform core and the caller.

Every route (API and HTML) resolves its caller through :func:`caller`, applied once at
the app level, so authentication can be added in this one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..core import Core

__all__ = ["Caller", "caller", "get_core"]


@dataclass(frozen=True)
class Caller:
    name: str
    roles: frozenset[str]


_LOCAL = Caller("local", frozenset({"admin"}))


def caller(request: Request) -> Caller:
    """Who is calling. Today every caller is the local admin (the server binds 127.0.0.1)."""
    request.state.caller = _LOCAL
    return _LOCAL


def get_core(request: Request) -> Core:
    return request.app.state.core
