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

from ..kernel.core import Core
from ..kernel.errors import Forbidden, Invalid, NotFound
from ..storage.files import atomic_write
from ..storage.rows import TokenRow, utcnow

__all__ = ["ROLES", "PERMISSIONS", "EVERY_PROJECT", "Caller", "LOCAL_ADMIN", "TokenInfo",
           "required_permission", "create_token", "list_tokens", "revoke_token", "authenticate", "ensure_admin_token",
           "start_session", "end_sessions", "caller_by_session", "is_loopback", "write_owner_only"]

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

    def covers(self, projects) -> bool:
        """Whether a token limited to ``projects`` (empty = every project) stays within this caller's scope."""
        names = frozenset(projects)
        return not self.projects or (bool(names) and names <= self.projects)

    def may_grant(self, role: str, projects) -> bool:
        """A token may only hand out what it has: a role with no permission it lacks, inside its scope."""
        return ROLES.get(role, frozenset()) <= ROLES.get(self.role, frozenset()) and self.covers(projects)


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


_P = "/api/v1/projects/{name}"
# The permission of every route, keyed by (method, route template) and nothing else: no prefix
# or substring rule can hand a new route (e.g. ``…/predictions/{id}/add-to-training``) the
# permission of a neighbour. ``None`` = public, ``authenticated`` = any valid caller. A route
# missing here needs ``admin`` (fail closed); tests/test_security_access.py states the same table
# literally and walks every route of the app against it, so a new route fails that test until
# it is given its permission here.
PERMISSIONS: dict[tuple[str, str], str | None] = {
    # Public: load balancers' health check, the sign-in form, the UI's static files and the API's
    # own documentation (a schema, nothing private).
    ("GET", "/api/v1/health"): None, ("GET", "/login"): None, ("POST", "/login"): None,
    ("POST", "/logout"): None, ("GET", "/static"): None, ("GET", "/docs"): None, ("GET", "/redoc"): None,
    ("GET", "/openapi.json"): None, ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/api/v1/me"): "authenticated",
    # Tokens, housekeeping, the global log, creating and deleting projects, purges (no undo).
    ("GET", "/api/v1/tokens"): "admin", ("POST", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/{token_id}"): "admin", ("POST", "/api/v1/admin/gc"): "admin",
    ("GET", "/api/v1/audit"): "admin", ("GET", "/tokens"): "admin", ("GET", "/audit"): "admin",
    ("POST", "/api/v1/projects"): "admin", ("DELETE", _P): "admin", ("POST", f"{_P}/purge"): "admin",
    ("POST", f"{_P}/samples/{{sample_id}}/purge"): "admin",
    # An application sending predictions and its corrections of them (feedback that also adds the
    # input to the training data checks "edit" in its route).
    ("POST", f"{_P}/predict"): "predict", ("POST", f"{_P}/predict/rows"): "predict",
    ("POST", f"{_P}/predict/texts"): "predict", ("POST", f"{_P}/predictions/{{prediction_id}}/feedback"): "predict",
    # Changing data, training, promoting, rolling back.
    **{(method, _P + tail): "edit" for method, tail in [
        ("PATCH", ""), ("POST", "/batches"), ("DELETE", "/batches/{batch_id}"),
        ("POST", "/batches/{batch_id}/commit"), ("POST", "/classes"), ("DELETE", "/classes/{label}"),
        ("PATCH", "/classes/{label}"), ("POST", "/dataset-versions/{number}/restore"),
        ("POST", "/jobs/{job_id}/cancel"), ("POST", "/models"), ("POST", "/models/{version}/promote"),
        ("POST", "/predictions/{prediction_id}/add-to-training"), ("POST", "/rollback"), ("POST", "/samples"),
        ("POST", "/samples/archive"), ("POST", "/samples/csv"), ("POST", "/samples/rows"), ("POST", "/samples/texts"),
        ("DELETE", "/samples/{sample_id}"), ("PATCH", "/samples/{sample_id}"), ("POST", "/train"),
        # many samples relabelled or deleted at once, as one version
        ("POST", "/samples/bulk"),
        # the labelling queue: unlabelled uploads wait, confirmed ones become one version
        ("POST", "/unlabelled"), ("POST", "/unlabelled/texts"), ("POST", "/unlabelled/rows"),
        ("POST", "/unlabelled/csv"), ("POST", "/unlabelled/confirm"), ("POST", "/unlabelled/{sample_id}/skip"),
        ("DELETE", "/unlabelled/{sample_id}")]},
    # Reading: the API …
    **{("GET", _P + tail): "read" for tail in [
        "", "/aliases/history", "/audit", "/augmentation-preview", "/classes", "/dataset-versions",
        "/dataset-versions/{number}", "/dataset-versions/{number}/diff", "/events", "/health", "/jobs",
        "/jobs/{job_id}", "/models", "/models/{version}", "/models/{version}/file", "/predictions",
        "/predictions/{prediction_id}/explanation", "/predictions/{prediction_id}/image",
        "/predictions/{prediction_id}/input", "/predictions/{prediction_id}/files/{file}", "/runs", "/samples",
        "/samples/{sample_id}", "/samples/{sample_id}/blobs/{digest}", "/samples/{sample_id}/image",
        "/samples/{sample_id}/thumbnail", "/samples/{sample_id}/versions",
        "/samples/{sample_id}/predictions", "/unlabelled",
        "/unlabelled/{sample_id}/image"]},
    ("GET", "/api/v1/projects"): "read", ("GET", "/api/v1/runs/{run_id}"): "read",
    ("GET", "/api/v1/settings-schema"): "read", ("GET", "/metrics"): "read",
    # Recommendation projects: interactions in (a person's deletion is a purge: no undo), answers
    # out, and what a person chose from an answer (bounded to that answer's items, once).
    ("POST", f"{_P}/interactions"): "edit", ("POST", f"{_P}/interactions/import"): "edit",
    ("GET", f"{_P}/interactions"): "read", ("DELETE", f"{_P}/interactions"): "admin",
    ("GET", f"{_P}/recommend"): "predict", ("POST", f"{_P}/recommend"): "predict",
    ("GET", f"{_P}/similar"): "predict", ("POST", f"{_P}/recommend/{{prediction_id}}/chosen"): "predict",
    # who and what the project knows (read like samples)
    ("GET", f"{_P}/people"): "read", ("GET", f"{_P}/items"): "read", ("GET", f"{_P}/interactions/summary"): "read",
    # the item catalogue: described like data, read like samples
    ("POST", f"{_P}/catalogue"): "edit", ("POST", f"{_P}/catalogue/import"): "edit",
    ("PUT", f"{_P}/catalogue/{{item}}/image"): "edit", ("GET", f"{_P}/catalogue"): "read",
    ("GET", f"{_P}/catalogue/{{item}}/image"): "read",
    # … and the UI's pages.
    **{("GET", page): "read" for page in [
        "/", "/fragments/projects", "/projects/{name}", "/projects/{name}/activity",
        "/projects/{name}/fragments/data", "/projects/{name}/fragments/history", "/projects/{name}/history",
        "/projects/{name}/predictions", "/projects/{name}/predictions/{prediction_id}",
        "/projects/{name}/runs/{run_id}", "/projects/{name}/settings", "/projects/{name}/try",
        "/projects/{name}/unlabelled", "/projects/{name}/versions", "/projects/{name}/models"]},
}
# Admin routes acting on every project at once (or making a new one, outside any scope): a token
# limited to some projects may not call them, whatever its role.
EVERY_PROJECT = frozenset({("POST", "/api/v1/projects"), ("POST", "/api/v1/admin/gc")})


def required_permission(method: str, path: str) -> str | None:
    """The permission a route needs, from its method and path template. ``None`` = public.

    >>> required_permission("POST", "/api/v1/projects/{name}/predict")
    'predict'
    >>> required_permission("POST", "/api/v1/projects/{name}/predictions/{prediction_id}/add-to-training")
    'edit'
    >>> required_permission("GET", "/projects/{name}")
    'read'
    >>> required_permission("DELETE", "/api/v1/projects/{name}")
    'admin'
    """
    return PERMISSIONS.get(("GET" if method == "HEAD" else method, path), "admin")


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
                 created_by: str = "", by: Caller | None = None) -> tuple[TokenInfo, str]:
    """A new token; returns its record and the secret, which is never shown again.

    ``by`` (the caller asking) may only create a token it could itself have been given:
    see :meth:`Caller.may_grant`.
    """
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("a token needs a name of 1 to 100 characters (who or what uses it)")
    names = sorted(set(projects or []))
    if by is not None and not by.may_grant(role, names):
        raise Forbidden(f"the {by.role} token {by.name!r} may only create tokens with a role no higher than its "
                        f"own, limited to its projects ({', '.join(sorted(by.projects)) or 'all'}): pass "
                        "--project for each of them, or ask an admin of every project")
    if names:
        from ..storage.rows import ProjectRow

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


def list_tokens(core: Core, include_revoked: bool = False, by: Caller | None = None) -> list[TokenInfo]:
    """Every token, or (``by`` a caller limited to some projects) those inside its scope."""
    with core.db.read() as s:
        q = select(TokenRow).order_by(TokenRow.id)
        if not include_revoked:
            q = q.where(TokenRow.revoked_at.is_(None))
        return [info for info in map(_info, s.scalars(q)) if by is None or by.covers(info.projects)]


def revoke_token(core: Core, token_id: int, by: Caller | None = None) -> TokenInfo:
    """Revoke a token (its UI sessions end with it); ``by`` may only revoke tokens inside its scope."""
    with core.db.write() as s:
        row = s.get(TokenRow, token_id)
        if row is None or (by is not None and not by.covers(_info(row).projects)):
            # Outside the caller's scope reads as absent: a scoped admin learns nothing of other tokens.
            raise NotFound(f"no token with id {token_id} among yours: `dyntrain tokens list` shows them")
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


# UI sessions: the signed session cookie names a token and that token's current session nonce,
# kept in the token's row (in its JSON document, next to its project names: no schema change).
# Signing out replaces the nonce, so every cookie issued for that token stops working on every
# API machine at once; revoking the token ends its sessions too.
_SESSION_KEY = "session"


def start_session(core: Core, token_id: int) -> str:
    """The nonce a new UI session of this token carries (the token's current one, made on first use)."""
    with core.db.write() as s:
        row = s.get(TokenRow, token_id, with_for_update=True)  # two first sign-ins: one nonce
        doc = dict(row.projects or {})
        if not doc.get(_SESSION_KEY):
            doc[_SESSION_KEY] = secrets.token_urlsafe(16)
            row.projects = doc  # a new dict: SQLAlchemy does not see changes inside a JSON value
        return doc[_SESSION_KEY]


def end_sessions(core: Core, token_id: int) -> None:
    """Sign out: every session cookie of this token is refused from now on."""
    with core.db.write() as s:
        if (row := s.get(TokenRow, token_id)) is not None:
            row.projects = {**(row.projects or {}), _SESSION_KEY: secrets.token_urlsafe(16)}


def caller_by_session(core: Core, token_id: int, nonce: str) -> Caller | None:
    """The caller of a UI session: its token is live and the session not signed out."""
    with core.db.read() as s:
        row = s.get(TokenRow, token_id)
        if row is None or row.revoked_at is not None:
            return None
        current = str((row.projects or {}).get(_SESSION_KEY) or "")
        if not current or not secrets.compare_digest(current, nonce):
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
