"""Access control: tokens and roles on every route, UI sessions with CSRF, CORS, the audit log."""

from __future__ import annotations

import re
import stat

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from dyntrain.access import auth
from dyntrain.api import create_app
from dyntrain.access.auth import ROLES, required_permission
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.kernel.errors import Invalid

REMOTE = ("203.0.113.7", 40000)  # a client on another machine (TEST-NET-3)
LOCAL = ("127.0.0.1", 40000)
BASE = "http://127.0.0.1"  # a Host the server answers to (TestClient's default `testserver` is refused)


@pytest.fixture
def secured(tmp_path, database_url):
    """An app that demands a token from everyone, two projects, and one token per role."""
    core = Core.create(Settings(data_dir=tmp_path / "data", database_url=database_url, seed_demo=False,
                                scheduler_enabled=False, auth="required"))
    app = create_app(core=core)
    from dyntrain.kernel import projects

    projects.create_project(core, "p1", "image-classification", "", {})
    projects.create_project(core, "p2", "image-classification", "", {})
    tokens = {role: auth.create_token(core, f"{role}-all", role)[1] for role in ROLES}
    tokens["trainer-p2"] = auth.create_token(core, "trainer of p2", "trainer", ["p2"])[1]
    with TestClient(app, base_url=BASE, client=REMOTE) as client:
        yield core, app, client, tokens
    core.db.dispose()


def _walk(routes, prefix=""):
    """Every (path template, method) the app serves, whatever FastAPI's router layout."""
    for r in routes:
        if hasattr(r, "original_router"):  # FastAPI ≥ 0.16x keeps included routers as objects
            yield from _walk(r.original_router.routes, prefix + getattr(r.include_context, "prefix", "") or prefix)
        elif isinstance(r, (APIRoute, Route)):
            for method in sorted((r.methods or set()) - {"HEAD"}):
                yield prefix + r.path if not r.path.startswith(prefix) else r.path, method
        elif isinstance(r, Mount):
            yield r.path, "GET"


def _url(path: str) -> str:
    def value(m):
        return "p1" if m.group(1) == "name" else "1"
    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)


def _wrong_role(permission: str) -> str:
    return {"read": "predictor", "predict": "viewer", "edit": "viewer", "admin": "trainer"}[permission]


def test_every_route_refuses_a_missing_or_wrong_role_token(secured):
    core, app, client, tokens = secured
    routes = sorted(set(_walk(app.routes)))
    walked = {p for p, _ in routes}
    documented = {p for p in client.get("/openapi.json").json()["paths"]}
    assert documented <= walked, f"the route walk missed {documented - walked}"
    pages = [p for p, _ in routes if not p.startswith("/api/")]
    assert "/projects/{name}" in pages and "/tokens" in pages  # HTML pages are walked too
    checked = 0
    for path, method in routes:
        permission = required_permission(method, path)
        if permission is None:
            assert (method, path) in auth.PERMISSIONS
            continue
        url = _url(path)
        # No token at all: the API says 401, a page sends the browser to the sign-in form.
        r = client.request(method, url, headers={"Accept": "text/html"}, follow_redirects=False)
        if path.startswith("/api/") or path == "/metrics":
            assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
            assert r.json()["error"]["code"] == "unauthorized"
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), (method, path)
        # A wrong token is refused everywhere.
        r = client.request(method, url, headers={"Authorization": "Bearer dt_not-a-token"}, follow_redirects=False)
        assert r.status_code == (401 if path.startswith("/api/") or path == "/metrics" else 303), (method, path)
        if permission != "authenticated":
            role = _wrong_role(permission)
            r = client.request(method, url, headers={"Authorization": f"Bearer {tokens[role]}"})
            assert r.status_code == 403, (method, path, role, r.status_code, r.text[:200])
        checked += 1
    assert checked >= 50


def test_roles_and_project_scopes(secured):
    core, app, client, tokens = secured

    def h(who):
        return {"Authorization": f"Bearer {tokens[who]}"}

    # viewer reads, cannot change; predictor cannot read; trainer changes data but cannot create projects.
    assert client.get("/api/v1/projects/p1", headers=h("viewer")).status_code == 200
    assert client.patch("/api/v1/projects/p1", json={"description": "x"}, headers=h("viewer")).status_code == 403
    assert client.get("/api/v1/projects/p1", headers=h("predictor")).status_code == 403
    assert client.patch("/api/v1/projects/p1", json={"description": "x"}, headers=h("trainer")).status_code == 200
    assert client.post("/api/v1/projects", json={"name": "p3"}, headers=h("trainer")).status_code == 403
    assert client.post("/api/v1/projects", json={"name": "p3"}, headers=h("admin")).status_code == 201
    # A token limited to p2 may change p2 only, and sees only p2 in the list.
    assert client.patch("/api/v1/projects/p2", json={"description": "y"}, headers=h("trainer-p2")).status_code == 200
    r = client.patch("/api/v1/projects/p1", json={"description": "y"}, headers=h("trainer-p2"))
    assert r.status_code == 403 and "p1" in r.json()["error"]["message"]
    assert [p["name"] for p in client.get("/api/v1/projects", headers=h("trainer-p2")).json()] == ["p2"]
    me = client.get("/api/v1/me", headers=h("trainer-p2")).json()
    assert me == {"name": "trainer of p2", "role": "trainer", "projects": ["p2"],
                  "permissions": ["edit", "predict", "read"]}
    # Health stays public and names no project.
    health = client.get("/api/v1/health")
    assert health.status_code == 200 and "p1" not in health.text


def test_tokens_are_hashed_listed_and_revoked(secured):
    core, app, client, tokens = secured
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    r = client.post("/api/v1/tokens", json={"name": "shop-app", "role": "predictor", "projects": ["p1"]},
                    headers=admin)
    assert r.status_code == 201
    created = r.json()
    secret = created["token"]
    assert secret.startswith("dt_") and len(secret) > 40
    listed = client.get("/api/v1/tokens", headers=admin).json()
    assert any(t["name"] == "shop-app" for t in listed) and all("token" not in t for t in listed)
    # Only a hash is stored: the secret appears nowhere in the database.
    from sqlalchemy import select

    from dyntrain.storage.rows import TokenRow

    with core.db.read() as s:
        stored = [(row.token_hash, row.name) for row in s.scalars(select(TokenRow))]
    assert all(secret not in h and secret not in n for h, n in stored)
    # An unknown project or role is a clear error.
    bad = client.post("/api/v1/tokens", json={"name": "x", "role": "predictor", "projects": ["nope"]}, headers=admin)
    assert bad.status_code == 404 and "nope" in bad.json()["error"]["message"]
    assert client.post("/api/v1/tokens", json={"name": "x", "role": "root"}, headers=admin).status_code == 422
    # The new token works until revoked.
    mine = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=mine).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=admin).status_code == 200
    assert client.get("/api/v1/me", headers=mine).status_code == 401
    assert client.delete("/api/v1/tokens/99999", headers=admin).status_code == 404


def test_ui_session_cookie_with_csrf(secured):
    core, app, client, tokens = secured
    form = client.get("/login")  # sets the CSRF cookie the form's hidden field must match
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    r = client.post("/login", data={"token": "dt_wrong", "next": "/", "csrf_token": login_csrf},
                    follow_redirects=False)
    assert r.status_code == 401 and "unknown or revoked" in r.text
    r = client.post("/login", data={"token": tokens["trainer"], "next": "https://evil.example/",
                                    "csrf_token": login_csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"  # never an open redirect
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/projects/p1")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    # A change carried by the cookie alone is refused; with the page's CSRF token it goes through.
    r = client.patch("/api/v1/projects/p1", json={"description": "from the UI"})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]["message"]
    r = client.patch("/api/v1/projects/p1", json={"description": "from the UI"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    # The trainer's session may not open admin pages; signing out ends the session.
    assert client.get("/tokens").status_code == 403
    client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    client.cookies.clear()
    assert client.get("/projects/p1", follow_redirects=False).status_code == 303


def test_cors_is_off_unless_origins_are_configured(tmp_path):
    def preflight(settings):
        with TestClient(create_app(settings), base_url=BASE, client=LOCAL) as c:
            return c.options("/api/v1/projects", headers={"Origin": "https://app.example",
                                                          "Access-Control-Request-Method": "GET"})
    base = dict(seed_demo=False, scheduler_enabled=False)
    off = preflight(Settings(data_dir=tmp_path / "a", **base))
    assert "access-control-allow-origin" not in off.headers
    on = preflight(Settings(data_dir=tmp_path / "b", cors_origins="https://app.example", **base))
    assert on.headers.get("access-control-allow-origin") == "https://app.example"


def test_first_start_admin_token_and_binding_rules(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", seed_demo=False, scheduler_enabled=False)
    app = create_app(settings)
    secret = app.state.first_admin_token
    path = settings.data_dir / "admin-token"
    assert path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert create_app(settings).state.first_admin_token is None  # printed once, on first start only
    with TestClient(app, base_url=BASE, client=LOCAL) as c:
        assert c.get("/api/v1/me").json()["role"] == "admin"  # loopback server, local caller: trusted
    with TestClient(app, base_url=BASE, client=REMOTE) as c:
        assert c.get("/api/v1/projects").status_code == 401
        assert c.get("/api/v1/projects", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    # Bound to every address, even a local caller needs a token (a proxy would look local).
    public = Settings(data_dir=tmp_path / "d", host="0.0.0.0", seed_demo=False, scheduler_enabled=False)
    with TestClient(create_app(public), base_url=BASE, client=LOCAL) as c:
        assert c.get("/api/v1/projects").status_code == 401
    with pytest.raises(Invalid, match="refusing to start without authentication"):
        create_app(Settings(data_dir=tmp_path / "d", host="0.0.0.0", auth="off", seed_demo=False))


def test_audit_log_records_who_changed_what(secured, make_png):
    core, app, client, tokens = secured
    trainer = {"Authorization": f"Bearer {tokens['trainer']}"}
    r = client.post("/api/v1/projects/p1/samples", headers=trainer,
                    files=[("files", ("a.png", make_png(1), "image/png"))], data={"label": "cat"})
    assert r.status_code in (200, 201), r.text
    client.patch("/api/v1/projects/p1", json={"settings": {"auto_train": False}}, headers=trainer)
    client.get("/api/v1/projects/p1", headers=trainer)  # reads are not audited
    entries = client.get("/api/v1/projects/p1/audit", headers=trainer).json()
    assert [(e["actor"], e["action"]) for e in entries][:2] == [("trainer-all", "patch_project"),
                                                                 ("trainer-all", "add_samples")]
    everything = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {tokens['admin']}"}).json()
    assert len(everything) >= 2
    assert client.get("/api/v1/audit", headers=trainer).status_code == 403  # the global log is admin's
