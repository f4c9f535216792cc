"""API tokens, roles and the one rule that says which role may call which route.

A token is ``dt_`` + 43 random URL-safe characters; only its sha256 is stored, so a leaked
database does not leak working tokens. Roles:

* ``admin``     – everything, including projects, tokens, housekeeping and the audit log;
* ``trainer``   – read, predict, change data, train, promote and roll back (its projects);
* ``predictor`` – predict only (its projects);
* ``viewer``    – read only.

A token may be limited to a list of projects; an empty list means every project.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from .core import Core
from .errors import Invalid, NotFound
from .storage.files import atomic_write
from .storage.rows import TokenRow, utcnow

__all__ = ["ROLES", "Caller", "LOCAL_ADMIN", "TokenInfo", "required_permission", "create_token",
           "list_tokens", "revoke_token", "authenticate", "ensure_admin_token", "is_loopback",
           "write_owner_only"]

# Permissions a role grants. "predict" is separate from "read": a predictor sees nothing else.
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "predict", "edit", "admin"}),
    "trainer": frozenset({"read", "predict", "edit"}),
    "predictor": frozenset({"predict"}),
    "viewer": frozenset({"read"}),
}
TOKEN_PREFIX = "dt_"
ADMIN_TOKEN_FILE = "admin-token"
# last_used_at is a hint for people revoking tokens, not a log: write it at most this often.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    """Who is calling: a token's name, its role and the projects it may touch (empty = all)."""

    name: str
    role: str
    projects: frozenset[str] = field(default_factory=frozenset)
    token_id: int | None = None

    def may(self, permission: str, project: str | None = None) -> bool:
        if permission == "authenticated":
            return True
        if permission not in ROLES.get(self.role, frozenset()):
            return False
        return project is None or not self.projects or project in self.projects

    def sees(self, project: str) -> bool:
        return not self.projects or project in self.projects


LOCAL_ADMIN = Caller("local", "admin")


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    role: str
    projects: list[str]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def required_permission(method: str, path: str) -> str | None:
    """The permission a route needs, from its method and path template. ``None`` = public.

    One ordered rule list for every route (API and HTML), so a new route is covered the
    moment it exists; tests/test_auth.py walks every route the app has against it.

    >>> required_permission("POST", "/api/v1/projects/{name}/predict")
    'predict'
    >>> required_permission("GET", "/projects/{name}")
    'read'
    >>> required_permission("DELETE", "/api/v1/projects/{name}")
    'admin'
    """
    if path in PUBLIC_PATHS:
        return None
    if path == "/api/v1/me":
        return "authenticated"
    admin_prefixes = ("/api/v1/tokens", "/api/v1/admin", "/api/v1/audit", "/tokens", "/audit")
    if path.startswith(admin_prefixes) or path.endswith("/purge"):
        return "admin"  # tokens, housekeeping, the global log; purges cannot be undone
    if method in ("GET", "HEAD"):
        return "read"
    if path == "/api/v1/projects" or (method == "DELETE" and path == "/api/v1/projects/{name}"):
        return "admin"  # creating and deleting projects
    if "/predict" in path or path.endswith("/feedback"):
        return "predict"  # an application sending predictions and their corrections
    return "edit"


# Reachable without a token: load balancers' health check, the login form, the UI's static
# files and the API's own documentation (a schema, nothing private).
PUBLIC_PATHS = frozenset({"/api/v1/health", "/login", "/logout", "/static", "/docs", "/redoc",
                          "/openapi.json", "/docs/oauth2-redirect"})


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: TokenRow) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.role, list((row.projects or {}).get("names", [])), row.created_by,
                     row.created_at, row.last_used_at, row.revoked_at)


def create_token(core: Core, name: str, role: str, projects: list[str] | None = None,
                 created_by: str = "") -> tuple[TokenInfo, str]:
    """A new token; returns its record and the secret, which is never shown again."""
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("a token needs a name of 1 to 100 characters (who or what uses it)")
    names = sorted(set(projects or []))
    if names:
        from .storage.rows import ProjectRow

        with core.db.read() as s:
            known = set(s.scalars(select(ProjectRow.name).where(ProjectRow.name.in_(names))))
        if missing := [n for n in names if n not in known]:
            raise NotFound(f"no project named {', '.join(missing)}: create it first or correct the name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with core.db.write() as s:
        row = TokenRow(name=name, token_hash=_hash(secret), role=role, projects={"names": names},
                       created_by=created_by)
        s.add(row)
        s.flush()
        return _info(row), secret


def list_tokens(core: Core, include_revoked: bool = False) -> list[TokenInfo]:
    with core.db.read() as s:
        q = select(TokenRow).order_by(TokenRow.id)
        if not include_revoked:
            q = q.where(TokenRow.revoked_at.is_(None))
        return [_info(r) for r in s.scalars(q)]


def revoke_token(core: Core, token_id: int) -> TokenInfo:
    with core.db.write() as s:
        row = s.get(TokenRow, token_id)
        if row is None:
            raise NotFound(f"no token with id {token_id}: `dyntrain tokens list` shows them")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return _info(row)


def authenticate(core: Core, secret: str) -> Caller | None:
    """The caller a token secret belongs to, or None (unknown or revoked)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    digest = _hash(secret)
    with core.db.read() as s:
        row = s.scalars(select(TokenRow).where(TokenRow.token_hash == digest)).first()
        if row is None or row.revoked_at is not None:
            return None
        caller = Caller(row.name, row.role, frozenset((row.projects or {}).get("names", [])), row.id)
        stale = row.last_used_at is None or utcnow() - row.last_used_at > _TOUCH_EVERY
    if stale:
        with core.db.write() as s:
            if (row := s.get(TokenRow, caller.token_id)) is not None:
                row.last_used_at = utcnow()
    return caller


def caller_by_token_id(core: Core, token_id: int) -> Caller | None:
    """The caller of a live (not revoked) token, for the UI's session cookie."""
    with core.db.read() as s:
        row = s.get(TokenRow, token_id)
        if row is None or row.revoked_at is not None:
            return None
        return Caller(row.name, row.role, frozenset((row.projects or {}).get("names", [])), row.id)


def write_owner_only(path: Path, text: str) -> None:
    """Write a secret readable by its owner alone, from the first byte (no chmod window)."""
    atomic_write(path, text.encode())


def ensure_admin_token(core: Core) -> str | None:
    """On first start (no token at all), create an admin token; return its secret, else None.

    The secret is also written, owner-only, to ``<data_dir>/admin-token`` for the local CLI.
    """
    with core.db.read() as s:
        if s.scalars(select(TokenRow.id).limit(1)).first() is not None:
            return None
    _, secret = create_token(core, "admin (first start)", "admin", created_by="dyntrain")
    write_owner_only(core.settings.data_dir / ADMIN_TOKEN_FILE, secret + "\n")
    return secret
