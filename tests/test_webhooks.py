"""Webhooks: signed, retried with backoff, and refused for private addresses by default."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from dyntrain.events import publish
from dyntrain.projects import create_project, project_row, update_project
from dyntrain.errors import Invalid
from dyntrain.webhooks import WebhookSender, check_destination, sign, webhook_secret
from tests.conftest import wait_for


@pytest.fixture
def receiver():
    received, statuses = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(statuses.pop(0) if statuses else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, statuses
    server.shutdown()


def _emit(core, project, type_="model.promoted"):
    with core.db.write() as s:
        publish(s, project_row(s, project).id, type_, {"version": 3})


def test_signed_delivery_with_retry(core, receiver):
    url, received, statuses = receiver
    core.settings.webhook_allow_private = True
    create_project(core, "p", settings={"webhook_url": url})
    sender = WebhookSender(core, backoff_s=0.05)
    statuses.append(500)  # the first attempt fails, the retry succeeds
    _emit(core, "p")
    _emit(core, "p", "data.changed")  # not a webhook event
    sender.tick()
    wait_for(lambda: sender.delivered, timeout=10)
    assert sender.delivered == [{"event": sender.delivered[0]["event"], "ok": True, "attempts": 2}]
    headers, body = received[-1]
    assert headers["X-Dyntrain-Signature"] == sign(webhook_secret(core), body)
    payload = json.loads(body)
    assert payload["type"] == "model.promoted" and payload["project"] == "p" and payload["data"] == {"version": 3}
    assert len(received) == 2


def test_private_destinations_are_refused_by_default(core, receiver):
    url, received, _ = receiver
    create_project(core, "p", settings={"webhook_url": url})
    sender = WebhookSender(core)
    _emit(core, "p")
    sender.tick()
    wait_for(lambda: sender.delivered, timeout=10)
    assert sender.delivered[0]["ok"] is False and "loopback" in sender.delivered[0]["reason"]
    assert received == []
    assert "private" in check_destination("http://10.1.2.3/x", allow_private=False)
    assert "link-local" in check_destination("http://169.254.169.254/latest", allow_private=False)
    assert check_destination("ftp://example.com/x", allow_private=True)


def test_webhook_url_must_be_http(core):
    create_project(core, "p")
    with pytest.raises(Invalid, match="webhook_url"):
        update_project(core, "p", settings={"webhook_url": "file:///etc/passwd"})
