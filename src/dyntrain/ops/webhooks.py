"""Webhooks: finished / promoted / kept-back events POSTed to a project's ``webhook_url``.

Signed with HMAC-SHA256 (header ``X-Dyntrain-Signature: sha256=<hex>`` over the raw body),
retried with exponential backoff, and sent only to public (``ipaddress`` ``is_global``)
addresses unless the server setting ``webhook_allow_private`` says so (SSRF protection). The
host is resolved once per delivery and the request goes to the address that was checked
(the URL's host still in the Host header and TLS SNI), so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import urlparse

import httpx
from sqlalchemy import select

from .background import Periodic
from ..kernel.core import Core
from ..kernel.events import EventDrain, ProjectEvent
from ..kernel.project_settings import ProjectSettings
from ..storage.files import stored_secret
from ..storage.rows import ProjectRow

__all__ = ["WEBHOOK_EVENTS", "sign", "check_destination", "resolve_destination", "WebhookSender", "webhook_secret"]

log = logging.getLogger(__name__)
WEBHOOK_EVENTS = ("job.finished", "model.promoted", "model.kept_back")


def webhook_secret(core: Core) -> str:
    """The signing key: the setting, or one generated once and kept (owner-only) in the data dir."""
    return stored_secret(core.settings.data_dir, "webhook-secret", core.settings.webhook_secret)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``.

    >>> sign("k", b"{}")[:7]
    'sha256='
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_destination(url: str, allow_private: bool) -> str | None:
    """Why ``url`` may not receive webhooks, or None when it may."""
    return resolve_destination(url, allow_private)[1]


def resolve_destination(url: str, allow_private: bool) -> tuple[str | None, str | None]:
    """(the address to connect to, None) when ``url`` may receive webhooks, else (None, why not).

    Every address the host resolves to must be global: that refuses loopback, private,
    link-local and also carrier-grade NAT (100.64.0.0/10, where some clouds keep their
    metadata service), which an "is private" test lets through.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None, "webhook_url must be an http(s) URL with a host"
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None, f"cannot resolve {parsed.hostname}"
    addresses = list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))
    if not addresses:
        return None, f"cannot resolve {parsed.hostname}"
    if not allow_private:
        for address in addresses:
            if not ipaddress.ip_address(address).is_global:
                return None, (f"{parsed.hostname} resolves to {address}, not a public address (loopback, "
                              "private, link-local, carrier-grade NAT or reserved); set "
                              "DYNTRAIN_WEBHOOK_ALLOW_PRIVATE=true on the server to allow it")
    return addresses[0], None


def _pinned_request(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL, headers, extensions) that connect to ``address`` yet speak to ``url``'s host: the
    Host header and the TLS server name (SNI, also the name the certificate must match) stay
    the URL's, so virtual hosts and certificate checks work as if httpx had resolved it."""
    original = httpx.URL(url)
    extensions = {"sni_hostname": original.host} if original.scheme == "https" else {}
    return str(original.copy_with(host=address)), {"Host": original.netloc.decode("ascii")}, extensions


class WebhookSender:
    """Drains the events table (sink ``webhooks``) and delivers webhook events, each with retries and backoff.

    The cursor is persisted, so events made while the server was down are sent after it starts.
    """

    def __init__(self, core: Core, poll_s: float = 1.0, attempts: int = 5, backoff_s: float = 1.0):
        self.core, self.poll_s, self.attempts, self.backoff_s = core, poll_s, attempts, backoff_s
        self.delivered: list[dict] = []  # (for observability and tests) the last deliveries
        self._timer = Periodic("webhooks", self.tick, poll_s)
        # Deliveries run side by side (one slow receiver must not hold back the others) but bounded,
        # and a batch is done only when each was delivered or given up: the cursor means "sent".
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook")
        self._drain = EventDrain(core, "webhooks", self._dispatch)

    def start(self) -> "WebhookSender":
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def tick(self) -> None:
        self._drain.tick()

    def _dispatch(self, events: list[ProjectEvent]) -> int:
        """Deliver each webhook of ``events``; the count of events done (none if stopped meanwhile:
        the batch is sent again after a restart, and receivers deduplicate by X-Dyntrain-Delivery)."""
        deliveries = []
        wanted = [item for item in events if item.event.type in WEBHOOK_EVENTS]
        if wanted:
            with self.core.db.read() as s:
                urls = dict(s.execute(select(ProjectRow.id, ProjectRow.settings).where(
                    ProjectRow.id.in_({item.event.project_id for item in wanted}))).all())
            for event, name in wanted:
                url = ProjectSettings(**(urls.get(event.project_id) or {})).webhook_url
                if url:
                    payload = {"id": event.id, "type": event.type, "project": name, "data": event.data,
                               "at": event.created_at.isoformat()}
                    deliveries.append(self._pool.submit(self.deliver, url, payload))
        wait(deliveries)
        return 0 if self._timer.stopping.is_set() else len(events)

    def deliver(self, url: str, payload: dict) -> bool:
        address, refused = resolve_destination(url, self.core.settings.webhook_allow_private)
        if refused:
            log.warning("webhook for event %s not sent: %s", payload["id"], refused)
            self.delivered.append({"event": payload["id"], "ok": False, "reason": refused})
            return False
        body = json.dumps(payload).encode()
        target, host, extensions = _pinned_request(url, address)
        headers = {**host, "Content-Type": "application/json", "X-Dyntrain-Event": payload["type"],
                   "X-Dyntrain-Delivery": str(payload["id"]),
                   "X-Dyntrain-Signature": sign(webhook_secret(self.core), body)}
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                # Redirects are not followed: they could lead to an address the check refused.
                with httpx.Client(timeout=10, follow_redirects=False) as http:  # (httpx.post takes no extensions)
                    r = http.post(target, content=body, headers=headers, extensions=extensions)
                if r.status_code < 300:
                    self.delivered.append({"event": payload["id"], "ok": True, "attempts": attempt})
                    return True
                reason = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                reason = repr(exc)
            log.info("webhook delivery %s attempt %d failed: %s", payload["id"], attempt, reason)
            if attempt < self.attempts and self._timer.stopping.wait(delay):
                break
            delay *= 2
        self.delivered.append({"event": payload["id"], "ok": False, "reason": reason})
        return False


