"""Webhooks: signed, retried with backoff, and refused for private addresses by default."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from dyntrain.kernel.events import publish
from dyntrain.kernel.projects import create_project, project_row, update_project
from dyntrain.kernel.errors import Invalid
from dyntrain.ops.webhooks import WebhookSender, check_destination, sign, webhook_secret
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
    core.settings.webhook_allow_private = True  # saved while allowed (or DNS changed since): refused when sent
    create_project(core, "p", settings={"webhook_url": url})
    core.settings.webhook_allow_private = False
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


def _fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Resolve the given names to the given addresses in turn (the last one repeats); others as usual.
    Returns the list of names looked up, in order."""
    real, asked = socket.getaddrinfo, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        queue = answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port or 80))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize("address", ["100.64.0.1", "100.100.100.200", "192.0.2.7", "198.18.0.1", "0.0.0.0",
                                     "::ffff:127.0.0.1", "fd00::1", "fe80::1"])
def test_only_global_addresses_receive_webhooks(monkeypatch, address):
    # Carrier-grade NAT (100.64.0.0/10, with a cloud metadata address in it) passed the old
    # loopback/private/link-local test; only ipaddress's is_global addresses may receive webhooks.
    _fake_dns(monkeypatch, {"hooks.example.test": [address]})
    reason = check_destination("https://hooks.example.test/x", allow_private=False)
    assert reason and address in reason and "DYNTRAIN_WEBHOOK_ALLOW_PRIVATE" in reason
    assert check_destination("https://hooks.example.test/x", allow_private=True) is None
    _fake_dns(monkeypatch, {"hooks.example.test": ["93.184.215.14"]})
    assert check_destination("https://hooks.example.test/x", allow_private=False) is None


def test_delivery_goes_to_the_checked_address_not_a_second_dns_answer(core, monkeypatch):
    # DNS rebinding: the first answer is public (passes the check), the next points inside.
    asked = _fake_dns(monkeypatch, {"hooks.example.test": ["93.184.215.14", "169.254.169.254"]})
    sent = []

    def post(self, url, **kwargs):  # records what would be sent instead of sending it
        sent.append((str(url), kwargs))
        return httpx.Response(204)

    monkeypatch.setattr(httpx.Client, "post", post)
    assert WebhookSender(core).deliver("https://hooks.example.test:8443/in?x=1", {"id": 1, "type": "model.promoted"})
    (url, kwargs), = sent
    assert url == "https://93.184.215.14:8443/in?x=1"
    assert kwargs["headers"]["Host"] == "hooks.example.test:8443"
    assert kwargs["extensions"] == {"sni_hostname": "hooks.example.test"}  # TLS name and certificate check
    assert asked == ["hooks.example.test"]  # resolved once


def test_pinned_delivery_reaches_the_receiver_with_its_host_name(core, receiver, monkeypatch):
    url, received, _ = receiver
    port = url.split(":")[2].split("/")[0]
    asked = _fake_dns(monkeypatch, {"hooks.example.test": ["127.0.0.1", "127.0.0.9"]})  # 2nd answer: nobody there
    core.settings.webhook_allow_private = True
    assert WebhookSender(core, attempts=1).deliver(f"http://hooks.example.test:{port}/hook",
                                                   {"id": 7, "type": "model.promoted"})
    headers, body = received[-1]
    assert headers["Host"] == f"hooks.example.test:{port}" and json.loads(body)["id"] == 7
    assert asked == ["hooks.example.test"]


def test_non_global_webhook_url_is_refused_when_saved(client, core, monkeypatch):
    _fake_dns(monkeypatch, {"metadata.example.test": ["100.100.100.200"]})
    r = client.post("/api/v1/projects", json={"name": "p", "settings": {"webhook_url": "http://100.64.0.1/x"}})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "webhook_url", r.text
    assert client.post("/api/v1/projects", json={"name": "p"}).status_code == 201
    r = client.patch("/api/v1/projects/p", json={"settings": {"webhook_url": "http://metadata.example.test/latest"}})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert "100.100.100.200" in error["message"] and "DYNTRAIN_WEBHOOK_ALLOW_PRIVATE" in error["message"]
    assert error["details"] == [{"field": "webhook_url", "reason": error["details"][0]["reason"]}]
    assert client.get("/api/v1/projects/p").json()["settings"]["webhook_url"] is None  # nothing saved
    core.settings.webhook_allow_private = True  # the server setting allows it
    r = client.patch("/api/v1/projects/p", json={"settings": {"webhook_url": "http://metadata.example.test/latest"}})
    assert r.status_code == 200 and r.json()["settings"]["webhook_url"] == "http://metadata.example.test/latest"
