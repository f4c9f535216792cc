"""The CLI is a client of a real server: import/export round trip, batches, clear errors."""

from __future__ import annotations

import zipfile

from typer.testing import CliRunner

from dyntrain.cli import app
from tests.conftest import png_bytes

runner = CliRunner()


def _tree(root, n_per_label=3):
    files = {}
    for li, label in enumerate(["mug", "cup"]):
        (root / label).mkdir(parents=True)
        for i in range(n_per_label):
            data = png_bytes(li * 100 + i)
            (root / label / f"{label}-{i}.png").write_bytes(data)
            files[(label, f"{label}-{i}.png")] = data
    return files


def _read_tree(root):
    return {(p.parent.name, p.name): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_import_export_round_trip_is_identical(live_server, tmp_path, monkeypatch):
    monkeypatch.setattr("dyntrain.cli.UPLOAD_CHUNK", 2)  # several requests, still one version
    files = _tree(tmp_path / "in")
    r = runner.invoke(app, ["import", str(tmp_path / "in"), "--project", "shop", "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert "dataset version 1" in r.output
    r = runner.invoke(app, ["export", "shop", "--out", str(tmp_path / "out"), "--url", live_server.url])
    assert r.exit_code == 0, r.output
    assert _read_tree(tmp_path / "out") == files
    r = runner.invoke(app, ["projects", "--url", live_server.url])
    assert r.exit_code == 0 and "shop" in r.output


def test_import_zip_and_refuse_unsafe_zip(live_server, tmp_path):
    files = _tree(tmp_path / "in")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for (label, name), data in files.items():
            zf.writestr(f"photos/{label}/{name}", data)
    r = runner.invoke(app, ["import", str(archive), "--project", "zipped", "--url", live_server.url])
    assert r.exit_code == 0, r.output
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../etc/mug/x.png", png_bytes(1))
        zf.writestr("/abs/mug/y.png", png_bytes(2))
    r = runner.invoke(app, ["import", str(evil), "--project", "evil", "--url", live_server.url])
    assert r.exit_code == 1 and "unsafe entries" in r.output
    assert not any(p["name"] == "evil" for p in _projects(live_server))


def test_failed_import_leaves_no_version(live_server, tmp_path, monkeypatch):
    monkeypatch.setattr("dyntrain.cli.UPLOAD_CHUNK", 2)
    _tree(tmp_path / "in")
    (tmp_path / "in" / "mug" / "zz-broken.png").write_bytes(b"not an image")  # in the last chunk
    r = runner.invoke(app, ["import", str(tmp_path / "in"), "--project", "shop", "--url", live_server.url])
    assert r.exit_code == 1 and "zz-broken.png" in r.output
    import httpx

    # The project the import created is deleted again: nothing of a failed import is left behind.
    assert not any(p["name"] == "shop" for p in _projects(live_server))
    # A project that existed before stays, without a new version.
    assert httpx.post(f"{live_server.url}/api/v1/projects", json={"name": "shop"}).status_code == 201
    r = runner.invoke(app, ["import", str(tmp_path / "in"), "--project", "shop", "--url", live_server.url])
    assert r.exit_code == 1 and "zz-broken.png" in r.output
    assert httpx.get(f"{live_server.url}/api/v1/projects/shop/dataset-versions").json() == []
    assert httpx.get(f"{live_server.url}/api/v1/projects/shop/samples").json()["total"] == 0


def test_unreachable_server_says_what_to_do():
    r = runner.invoke(app, ["projects", "--url", "http://127.0.0.1:9"])
    assert r.exit_code == 1 and "dyntrain serve" in r.output


def _projects(server):
    import httpx

    return httpx.get(f"{server.url}/api/v1/projects").json()


def test_help_everywhere():
    for cmd in ([], ["import"], ["export"], ["serve"]):
        r = runner.invoke(app, [*cmd, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output


def test_tokens_and_audit_commands(live_server, tmp_path):
    url = ["--url", live_server.url]
    _tree(tmp_path / "in")
    assert runner.invoke(app, ["import", str(tmp_path / "in"), "--project", "shop", *url]).exit_code == 0
    r = runner.invoke(app, ["tokens", "create", "shop-app", "--role", "predictor", "--project", "shop", *url])
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[-1]
    assert secret.startswith("dt_")
    r = runner.invoke(app, ["tokens", "list", *url])
    assert r.exit_code == 0 and "shop-app" in r.output and secret not in r.output
    token_id = next(line.split()[1] for line in r.output.splitlines() if "shop-app" in line)
    # The predictor token reads nothing: the CLI says so plainly.
    r = runner.invoke(app, ["projects", *url], env={"DYNTRAIN_TOKEN": secret})
    assert r.exit_code == 1 and "predictor" in r.output and "permission" in r.output
    assert runner.invoke(app, ["tokens", "revoke", token_id, *url]).exit_code == 0
    r = runner.invoke(app, ["projects", *url], env={"DYNTRAIN_TOKEN": secret})
    assert r.exit_code == 1 and "unknown or revoked" in r.output
    r = runner.invoke(app, ["audit", "--project", "shop", *url])
    assert r.exit_code == 0 and "add_samples" in r.output


def test_client_asks_again_when_the_database_is_busy():
    """A 503 with Retry-After (the server's answer for a locked or lost database) is retried for
    reads; a change is reported, never sent twice."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dyntrain.client import ApiError, Client

    seen = []

    class Busy(BaseHTTPRequestHandler):
        def _answer(self):
            seen.append((self.command, self.path))
            busy = len([s for s in seen if s == (self.command, self.path)]) < 3
            body = json.dumps({"error": {"code": "database_busy", "message": "the database is busy"}} if busy
                              else [{"name": "shop"}]).encode()
            self.send_response(503 if busy else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "0.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = Client(f"http://127.0.0.1:{server.server_address[1]}")
        assert client.get("/projects") == [{"name": "shop"}]
        assert seen.count(("GET", "/api/v1/projects")) == 3
        try:
            client.post("/projects", json={"name": "x"})
            raise AssertionError("a 503 on a change must be reported")
        except ApiError as exc:
            assert exc.status == 503 and exc.code == "database_busy"
        assert seen.count(("POST", "/api/v1/projects")) == 1
    finally:
        server.shutdown()
