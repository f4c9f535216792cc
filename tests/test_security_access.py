"""Security review, access part: the Host and CSRF checks that keep other web pages away from a
loopback server's trust, permissions by exact route, project scopes, UI sessions that end when
signing out, and the security headers."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from dyntrain.access import audit, auth
from dyntrain.kernel import projects
from dyntrain.api import create_app
from dyntrain.access.auth import ROLES, required_permission
from dyntrain.client import Client
from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core
from dyntrain.datasets import changes
from dyntrain.storage.rows import PredictionRow, ProjectRow
from tests.conftest import LiveServer, png_bytes
from tests.test_auth import _walk

LOCAL = ("127.0.0.1", 40000)
REMOTE = ("203.0.113.7", 40000)
BASE = "http://127.0.0.1"
EVIL = "http://evil.example"


def _core(tmp_path, database_url, **settings) -> Core:
    core = Core.create(Settings(data_dir=tmp_path / "data", database_url=database_url, seed_demo=False,
                                scheduler_enabled=False, **settings))
    for name in ("p1", "p2"):
        projects.create_project(core, name, "image-classification", "", {})
    return core


def _upload(client, label="cat", seed=1, **kw):
    return client.post("/api/v1/projects/p1/samples", files=[("files", (f"{seed}.png", png_bytes(seed), "image/png"))],
                       data={"label": label}, **kw)


def _page_csrf(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def _form_csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _error(r) -> str:
    return r.json()["error"]["message"]


# -- 1. Host and CSRF: loopback trust is not reachable from other web pages ----------------------


@pytest.fixture
def local(tmp_path, database_url):
    """The default set-up: auth=auto on 127.0.0.1, a client on this machine."""
    core = _core(tmp_path, database_url)
    with TestClient(create_app(core=core), base_url=BASE, client=LOCAL) as client:
        yield core, client
    core.db.dispose()


def test_a_foreign_host_name_is_refused_with_a_json_error(local):
    core, client = local
    before = auth.list_tokens(core)
    # DNS rebinding: evil.example now resolves to 127.0.0.1, the browser calls it "same origin".
    r = client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers={"Host": "evil.example:8000"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host"
    assert "evil.example" in _error(r) and "DYNTRAIN_ALLOWED_HOSTS" in _error(r)
    assert r.headers["x-frame-options"] == "DENY"  # refusals carry the security headers too
    assert auth.list_tokens(core) == before
    for host in ("127.0.0.1", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        assert client.get("/api/v1/me", headers={"Host": host}).status_code == 200, host
    # Probes address a machine by its IP: the public health check answers any name.
    assert client.get("/api/v1/health", headers={"Host": "10.1.2.3:8000"}).status_code == 200


def test_allowed_hosts_setting_adds_names(tmp_path, database_url):
    core = _core(tmp_path, database_url, allowed_hosts="dyntrain.example.com, *.corp.example")
    with TestClient(create_app(core=core), base_url="http://dyntrain.example.com:8000", client=LOCAL) as client:
        assert client.get("/api/v1/me").status_code == 200
        assert client.get("/api/v1/me", headers={"Host": "ml.corp.example"}).status_code == 200
        assert client.get("/api/v1/me", headers={"Host": "corp.example.evil.example"}).status_code == 400
    # Bound to a named address, that name is allowed without the setting.
    core.settings.host, core.settings.allowed_hosts = "10.0.0.1", ""
    with TestClient(create_app(core=core), base_url="http://10.0.0.1:8000", client=REMOTE) as client:
        assert client.get("/api/v1/me").status_code == 401  # past the Host check: a token is needed there
    core.db.dispose()


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_other_sites_cannot_change_anything_through_loopback_trust(tmp_path, database_url, mode):
    core = _core(tmp_path, database_url, auth=mode)
    with TestClient(create_app(core=core), base_url=BASE, client=LOCAL) as client:
        # The CLI, httpx, curl: no browser header, so a multipart upload needs no CSRF token.
        r = _upload(client)
        assert r.status_code == 201, r.text
        sample = r.json()["samples"][0]
        tokens_before = auth.list_tokens(core)
        attacks = [  # what a page on another site can make the browser send, with no preflight
            ("multipart upload", "POST", "/api/v1/projects/p1/samples",
             {"files": [("files", ("x.png", png_bytes(9), "image/png"))], "data": {"label": "dog"},
              "headers": {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}}),
            ("form post to purge", "POST", f"/api/v1/projects/p1/samples/{sample['id']}/purge",
             {"data": {"confirm": "1"}, "headers": {"Origin": EVIL}}),
            ("text/plain JSON", "POST", "/api/v1/tokens",
             {"content": b'{"name": "x", "role": "admin"}', "headers": {"Content-Type": "text/plain",
                                                                      "Referer": EVIL + "/a"}}),
            ("a sibling port (same-site)", "PATCH", "/api/v1/projects/p1",
             {"json": {"description": "pwned"}, "headers": {"Origin": "http://127.0.0.1:3000",
                                                            "Sec-Fetch-Site": "same-site"}}),
            ("a form of an old browser (Referer only)", "DELETE", f"/api/v1/projects/p1/samples/{sample['id']}",
             {"headers": {"Referer": EVIL + "/"}}),
        ]
        for what, method, url, kw in attacks:
            r = client.request(method, url, **kw)
            assert r.status_code == 403 and "CSRF" in _error(r), (what, r.status_code, r.text[:200])
        # Nothing changed: one sample, its file still stored, no new token, description untouched.
        _, total = changes.list_samples(core, "p1")
        assert total == 1 and core.blobs.exists(sample["content_hash"])
        assert auth.list_tokens(core) == tokens_before
        assert projects.get_project(core, "p1").description == ""
        # Our own page works with no session: it embeds a CSRF token bound to a cookie it sets.
        page = client.get("/projects/p1")
        assert "dyntrain_csrf=" in page.headers["set-cookie"].replace(" ", "")
        same_origin = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
        r = _upload(client, "dog", 2, headers={**same_origin, "X-CSRF-Token": _page_csrf(page.text)})
        assert r.status_code == 201, r.text
        # The token alone, without this browser's cookie, is worth nothing.
        client.cookies.clear()
        r = _upload(client, "dog", 3, headers={**same_origin, "X-CSRF-Token": _page_csrf(page.text)})
        assert r.status_code == 403
    core.db.dispose()


def test_the_cli_still_uploads_multipart_to_a_live_loopback_server(tmp_path, database_url):
    core = _core(tmp_path, database_url)
    with LiveServer(create_app(core=core)) as server:
        api = Client(server.url)
        result = api.post("/projects/p1/samples", files=[("files", ("a.png", png_bytes(4), "image/png"))],
                          data={"label": "cat"})
        assert len(result["samples"]) == 1
        assert api.get("/me")["role"] == "admin"
    core.db.dispose()


def test_required_mode_session_changes_need_csrf_bearer_changes_do_not(tmp_path, database_url):
    core = _core(tmp_path, database_url, auth="required")
    _, secret = auth.create_token(core, "shop", "trainer")
    with TestClient(create_app(core=core), base_url=BASE, client=REMOTE) as client:
        # A bearer token is never added by a browser on its own: another origin's app (CORS) may send one.
        r = client.patch("/api/v1/projects/p1", json={"description": "a"},
                         headers={"Authorization": f"Bearer {secret}", "Origin": EVIL})
        assert r.status_code == 200
        form = client.get("/login")
        assert client.post("/login", data={"token": secret, "csrf_token": _form_csrf(form.text)},
                           follow_redirects=False).status_code == 303
        csrf = _page_csrf(client.get("/projects/p1").text)
        r = client.patch("/api/v1/projects/p1", json={"description": "b"}, headers={"Origin": EVIL})
        assert r.status_code == 403 and "CSRF" in _error(r)
        r = client.patch("/api/v1/projects/p1", json={"description": "b"},
                         headers={"Origin": BASE, "X-CSRF-Token": csrf})
        assert r.status_code == 200
    core.db.dispose()


# -- 2. Permissions by exact (method, route template) ------------------------------------------

P = "/api/v1/projects/{name}"
EXPECTED_PERMISSIONS = {
    ("GET", "/"): "read",
    ("GET", "/api/v1/health"): None,
    ("GET", "/api/v1/me"): "authenticated",
    ("GET", "/api/v1/projects"): "read",
    ("POST", "/api/v1/projects"): "admin",
    ("GET", "/api/v1/runs/{run_id}"): "read",
    ("GET", "/api/v1/settings-schema"): "read",
    ("GET", "/api/v1/tokens"): "admin",
    ("POST", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/{token_id}"): "admin",
    ("POST", "/api/v1/admin/gc"): "admin",
    ("GET", "/api/v1/audit"): "admin",
    ("GET", P): "read",
    ("PATCH", P): "edit",
    ("DELETE", P): "admin",
    ("GET", P + "/aliases/history"): "read",
    ("GET", P + "/audit"): "read",
    ("GET", P + "/augmentation-preview"): "read",
    ("POST", P + "/batches"): "edit",
    ("DELETE", P + "/batches/{batch_id}"): "edit",
    ("POST", P + "/batches/{batch_id}/commit"): "edit",
    ("GET", P + "/classes"): "read",
    ("POST", P + "/classes"): "edit",
    ("DELETE", P + "/classes/{label}"): "edit",
    ("PATCH", P + "/classes/{label}"): "edit",
    ("GET", P + "/dataset-versions"): "read",
    ("GET", P + "/dataset-versions/{number}"): "read",
    ("GET", P + "/dataset-versions/{number}/diff"): "read",
    ("POST", P + "/dataset-versions/{number}/restore"): "edit",
    ("GET", P + "/events"): "read",
    ("GET", P + "/health"): "read",
    ("GET", P + "/jobs"): "read",
    ("GET", P + "/jobs/{job_id}"): "read",
    ("POST", P + "/jobs/{job_id}/cancel"): "edit",
    ("GET", P + "/models"): "read",
    ("POST", P + "/models"): "edit",
    ("GET", P + "/models/{version}"): "read",
    ("GET", P + "/models/{version}/file"): "read",
    ("POST", P + "/models/{version}/promote"): "edit",
    ("POST", P + "/samples/archive"): "edit",
    ("POST", P + "/interactions"): "edit",
    ("POST", P + "/interactions/import"): "edit",
    ("GET", P + "/interactions"): "read",
    ("DELETE", P + "/interactions"): "admin",
    ("GET", P + "/recommend"): "predict",
    ("POST", P + "/recommend"): "predict",
    ("GET", P + "/similar"): "predict",
    ("POST", P + "/recommend/{prediction_id}/chosen"): "predict",
    ("GET", P + "/people"): "read",
    ("GET", P + "/items"): "read",
    ("GET", P + "/interactions/summary"): "read",
    ("POST", P + "/catalogue"): "edit",
    ("POST", P + "/catalogue/import"): "edit",
    ("PUT", P + "/catalogue/{item}/image"): "edit",
    ("GET", P + "/catalogue"): "read",
    ("GET", P + "/catalogue/{item}/image"): "read",
    ("POST", P + "/predict"): "predict",
    ("POST", P + "/predict/rows"): "predict",
    ("POST", P + "/predict/texts"): "predict",
    ("GET", P + "/predictions"): "read",
    ("POST", P + "/predictions/{prediction_id}/add-to-training"): "edit",
    ("POST", P + "/predictions/{prediction_id}/feedback"): "predict",
    ("GET", P + "/predictions/{prediction_id}/explanation"): "read",
    ("GET", P + "/predictions/{prediction_id}/image"): "read",
    ("GET", P + "/predictions/{prediction_id}/input"): "read",
    ("GET", P + "/predictions/{prediction_id}/files/{file}"): "read",
    ("POST", P + "/purge"): "admin",
    ("POST", P + "/rollback"): "edit",
    ("GET", P + "/runs"): "read",
    ("GET", P + "/samples"): "read",
    ("POST", P + "/samples"): "edit",
    ("POST", P + "/samples/csv"): "edit",
    ("POST", P + "/samples/rows"): "edit",
    ("POST", P + "/samples/texts"): "edit",
    ("POST", P + "/samples/bulk"): "edit",
    ("GET", P + "/samples/{sample_id}"): "read",
    ("PATCH", P + "/samples/{sample_id}"): "edit",
    ("DELETE", P + "/samples/{sample_id}"): "edit",
    ("GET", P + "/samples/{sample_id}/image"): "read",
    ("GET", P + "/samples/{sample_id}/blobs/{digest}"): "read",
    ("POST", P + "/samples/{sample_id}/purge"): "admin",
    ("GET", P + "/samples/{sample_id}/thumbnail"): "read",
    ("GET", P + "/samples/{sample_id}/versions"): "read", ("GET", P + "/samples/{sample_id}/predictions"): "read",
    ("POST", P + "/train"): "edit",
    ("GET", P + "/unlabelled"): "read",
    ("POST", P + "/unlabelled"): "edit",
    ("POST", P + "/unlabelled/confirm"): "edit",
    ("POST", P + "/unlabelled/csv"): "edit",
    ("POST", P + "/unlabelled/rows"): "edit",
    ("POST", P + "/unlabelled/texts"): "edit",
    ("DELETE", P + "/unlabelled/{sample_id}"): "edit",
    ("GET", P + "/unlabelled/{sample_id}/image"): "read",
    ("POST", P + "/unlabelled/{sample_id}/skip"): "edit",
    ("GET", "/audit"): "admin",
    ("GET", "/tokens"): "admin",
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/static"): None,
    ("GET", "/login"): None,
    ("POST", "/login"): None,
    ("POST", "/logout"): None,
    ("GET", "/metrics"): "read",
    ("GET", "/fragments/projects"): "read",
    ("GET", "/projects/{name}"): "read",
    ("GET", "/projects/{name}/activity"): "read",
    ("GET", "/projects/{name}/fragments/data"): "read",
    ("GET", "/projects/{name}/fragments/history"): "read",
    ("GET", "/projects/{name}/history"): "read",
    ("GET", "/projects/{name}/predictions"): "read",
    ("GET", "/projects/{name}/predictions/{prediction_id}"): "read",
    ("GET", "/projects/{name}/runs/{run_id}"): "read",
    ("GET", "/projects/{name}/settings"): "read",
    ("GET", "/projects/{name}/try"): "read",
    ("GET", "/projects/{name}/unlabelled"): "read",
    ("GET", "/projects/{name}/versions"): "read",
    ("GET", "/projects/{name}/models"): "read",
}


def _url(path: str) -> str:
    ids = {"name": "p1", "token_id": "999999"}  # never the id of a token this test uses
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: ids.get(m.group(1), "1"), path)


@pytest.fixture
def secured(tmp_path, database_url):
    """auth=required, a remote client, one token per role (+ tokens limited to p2)."""
    core = _core(tmp_path, database_url, auth="required")
    tokens = {role: auth.create_token(core, f"{role}-all", role)[1] for role in ROLES}
    for role in ROLES:
        tokens[f"{role}-p2"] = auth.create_token(core, f"{role} of p2", role, ["p2"])[1]
    app = create_app(core=core)
    with TestClient(app, base_url=BASE, client=REMOTE) as client:
        yield core, app, client, tokens
    core.db.dispose()


def _as(tokens, who):
    return {"Authorization": f"Bearer {tokens[who]}"}


def test_permission_table_is_exact_and_every_route_and_role_gets_it(secured):
    core, app, client, tokens = secured
    served = {(method, path): required_permission(method, path) for path, method in _walk(app.routes)}
    assert served == EXPECTED_PERMISSIONS
    # Deleting p1 goes last: every other route still finds it.
    routes = sorted(served.items(), key=lambda item: item[0] == ("DELETE", P))
    for (method, path), permission in routes:
        if permission is None:
            continue
        for role, granted in ROLES.items():
            r = client.request(method, _url(path), headers=_as(tokens, role), follow_redirects=False)
            if permission == "authenticated" or permission in granted:
                assert r.status_code not in (401, 403), (method, path, role, r.status_code, r.text[:200])
            else:
                assert r.status_code == 403, (method, path, role, r.status_code, r.text[:200])


def _prediction(core, content_hash: str) -> int:
    """A stored prediction of p1 whose input image is kept (as the predict route would leave it)."""
    with core.db.write() as s:
        pid = s.query(ProjectRow.id).filter_by(name="p1").scalar()
        row = PredictionRow(project_id=pid, model_version=1, label="cat", confidence=0.9, output={"label": "cat", "confidence": 0.9, "scores": {"cat": 0.9}},
                            input_hash=content_hash, input_stored=True)
        s.add(row)
        s.flush()
        return row.id


def test_a_predictor_cannot_change_training_data_and_feedback_is_audited(secured):
    core, app, client, tokens = secured
    sample = _upload(client, headers=_as(tokens, "trainer")).json()["samples"][0]
    prediction = _prediction(core, sample["content_hash"])
    base = f"/api/v1/projects/p1/predictions/{prediction}"
    # A predictor corrects its predictions, but cannot turn them into training data.
    r = client.post(f"{base}/add-to-training", headers=_as(tokens, "predictor"))
    assert r.status_code == 403 and "'edit'" in _error(r)
    r = client.post(f"{base}/feedback", json={"label": "dog", "add_to_training": True},
                    headers=_as(tokens, "predictor"))
    assert r.status_code == 403 and "'edit'" in _error(r)
    assert changes.list_samples(core, "p1")[1] == 1
    assert client.post(f"{base}/feedback", json={"label": "dog"}, headers=_as(tokens, "predictor")).status_code == 200
    # A trainer may; every one of these changes is in the audit log, with who made it.
    r = client.post(f"{base}/feedback", json={"label": "dog", "add_to_training": True}, headers=_as(tokens, "trainer"))
    assert r.status_code == 200, r.text
    log = [(e.actor, e.action) for e in audit.entries(core, "p1")]
    assert log[:2] == [("trainer-all", "feedback"), ("predictor-all", "feedback")]


def test_audit_skips_predictions_by_exact_route_not_by_substring():
    def entry(method, path):
        scope = {"type": "http", "method": method, "route": SimpleNamespace(path=path, name="x"),
                 "path_params": {"name": "p1"}, "state": {}}
        return audit._entry(scope, 200)

    for tail in ("/predict", "/predict/rows", "/predict/texts"):
        assert entry("POST", P + tail) is None
    for tail in ("/predictions/{prediction_id}/feedback", "/predictions/{prediction_id}/add-to-training"):
        assert entry("POST", P + tail) is not None
    assert entry("POST", "/login") is None and entry("POST", P + "/samples") is not None


# -- 3. Project scopes: tokens, by-id routes, lists, metrics ------------------------------------


def test_a_scoped_admin_stays_inside_its_projects(secured):
    core, app, client, tokens = secured
    mine = _as(tokens, "admin-p2")
    for body in ({"name": "x", "role": "admin"}, {"name": "x", "role": "viewer", "projects": ["p1"]},
                 {"name": "x", "role": "trainer", "projects": ["p1", "p2"]}):
        r = client.post("/api/v1/tokens", json=body, headers=mine)
        assert r.status_code == 403 and "limited to its projects" in _error(r), body
    r = client.post("/api/v1/tokens", json={"name": "shop", "role": "predictor", "projects": ["p2"]}, headers=mine)
    assert r.status_code == 201
    listed = client.get("/api/v1/tokens", headers=mine).json()
    assert listed and all(t["projects"] == ["p2"] for t in listed)
    everyone = {t.name: t.id for t in auth.list_tokens(core)}
    r = client.delete(f"/api/v1/tokens/{everyone['admin-all']}", headers=mine)
    assert r.status_code == 404
    assert client.get("/api/v1/me", headers=_as(tokens, "admin")).status_code == 200  # still works
    assert client.delete(f"/api/v1/tokens/{everyone['viewer of p2']}", headers=mine).status_code == 200
    # Actions on every project at once, or making a new one outside its scope.
    assert client.post("/api/v1/projects", json={"name": "p3"}, headers=mine).status_code == 403
    assert client.post("/api/v1/admin/gc", headers=mine).status_code == 403
    # The admin pages and the global audit log show its projects alone.
    page = client.get("/tokens", headers=mine).text
    assert "trainer of p2" in page and "admin-all" not in page
    assert all(e["project"] == "p2" for e in client.get("/api/v1/audit", headers=mine).json())
    # An unscoped admin still may do all of it.
    r = client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=_as(tokens, "admin"))
    assert r.status_code == 201


def test_scoped_tokens_see_only_their_projects_by_id_in_lists_and_metrics(secured):
    core, app, client, tokens = secured
    from dyntrain.training import records

    runs = {}
    for name in ("p1", "p2"):
        with core.db.read() as s:
            pid = s.query(ProjectRow.id).filter_by(name=name).scalar()
        runs[name] = records.start_run(core, pid, None, 1, {})
    core.metrics.prediction("p1", 1, 3)
    core.metrics.prediction("p2", 1, 2)
    for role in ("viewer", "trainer", "admin"):
        scoped = _as(tokens, f"{role}-p2")
        assert client.get(f"/api/v1/runs/{runs['p2']}", headers=scoped).status_code == 200
        r = client.get(f"/api/v1/runs/{runs['p1']}", headers=scoped)
        # the same answer as for a run that does not exist: a scoped token learns no other project's ids
        assert r.status_code == 404 and "p1" not in _error(r), role
        assert _error(client.get("/api/v1/runs/999999", headers=scoped)) == _error(r).replace(
            str(runs["p1"]), "999999"), role
        assert [p["name"] for p in client.get("/api/v1/projects", headers=scoped).json()] == ["p2"]
        for page in ("/", "/fragments/projects"):
            html = client.get(page, headers=scoped).text
            assert "/projects/p2" in html and "/projects/p1" not in html, (role, page)
        metrics = client.get("/metrics", headers=scoped).text
        assert 'project="p2"' in metrics and 'project="p1"' not in metrics
    assert client.get(f"/api/v1/runs/{runs['p1']}", headers=_as(tokens, "viewer")).status_code == 200
    metrics = client.get("/metrics", headers=_as(tokens, "viewer")).text
    assert 'project="p1"' in metrics and 'project="p2"' in metrics


# -- 4. Sessions end at sign-out; login CSRF; security headers ----------------------------------


def _sign_in(client, secret) -> str:
    form = client.get("/login")
    r = client.post("/login", data={"token": secret, "next": "/", "csrf_token": _form_csrf(form.text)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client.cookies.get("dyntrain_session")


def test_sign_out_and_revocation_end_the_session_server_side(secured):
    core, app, client, tokens = secured
    cookie = _sign_in(client, tokens["trainer"])
    csrf = _page_csrf(client.get("/").text)
    assert client.get("/api/v1/me").json()["name"] == "trainer-all"
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    client.cookies.set("dyntrain_session", cookie)  # a copy of the cookie, kept (or stolen) before
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303
    # Revoking the token ends its sessions too.
    client.cookies.clear()
    _sign_in(client, tokens["trainer"])
    assert client.get("/api/v1/me").status_code == 200
    trainer_id = next(t.id for t in auth.list_tokens(core) if t.name == "trainer-all")
    assert client.delete(f"/api/v1/tokens/{trainer_id}", headers=_as(tokens, "admin")).status_code == 200
    assert client.get("/api/v1/me").status_code == 401


def test_sign_in_form_needs_its_own_csrf_token(secured):
    core, app, client, tokens = secured
    # Login CSRF: another site posts the attacker's token to sign the victim's browser in.
    r = client.post("/login", data={"token": tokens["viewer"], "next": "/"}, headers={"Origin": EVIL},
                    follow_redirects=False)
    assert r.status_code == 403 and "dyntrain_session" not in r.headers.get("set-cookie", "")
    stolen = _form_csrf(client.get("/login").text)
    client.cookies.clear()  # the field's value without this browser's cookie
    r = client.post("/login", data={"token": tokens["viewer"], "csrf_token": stolen}, follow_redirects=False)
    assert r.status_code == 403
    assert _sign_in(client, tokens["viewer"])


def test_security_headers_on_every_response(local):
    core, client = local
    for path in ("/", "/projects/p1", "/login", "/api/v1/projects", "/static/app.js", "/no-such-page", "/metrics"):
        r = client.get(path)
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, path
        assert "'unsafe-inline'" not in csp.split("style-src-attr")[0], path  # no inline script or <style>
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
    # The pages the policy covers have no inline script to block.
    for path in ("/", "/projects/p1", "/login"):
        assert not re.search(r"<script(?![^>]*\bsrc=)", client.get(path).text), path
    assert "cdn.jsdelivr.net" in client.get("/docs").headers["content-security-policy"]
