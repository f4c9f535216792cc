"""Webhooks: finished / promoted / kept-back events POSTed to a project's ``webhook_url``.

Signed with HMAC-SHA256 (header ``X-Dyntrain-Signature: sha256=<hex>`` over the raw body),
retried with exponential backoff, and never sent to loopback, link-local or private
addresses unless the server setting ``webhook_allow_private`` says so (SSRF protection).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading

from urllib.parse import urlparse

import httpx
from sqlalchemy import func, select

from .background import Periodic
from .core import Core
from .project_settings import ProjectSettings
from .storage.files import stored_secret
from .storage.rows import EventRow, ProjectRow

__all__ = ["WEBHOOK_EVENTS", "sign", "check_destination", "WebhookSender", "webhook_secret"]

log = logging.getLogger(__name__)
WEBHOOK_EVENTS = ("job.finished", "model.promoted", "model.kept_back")


def webhook_secret(core: Core) -> str:
    """The signing key: the setting, or one generated once and kept (owner-only) in the data dir."""
    return stored_secret(core.settings.data_dir, "webhook-secret", core.settings.webhook_secret)


def sign(secret: str, body: bytes) -> str:
    """>>> sign("k", b"{}")[:7]
    'sha256='
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_destination(url: str, allow_private: bool) -> str | None:
    """Why ``url`` may not receive webhooks, or None when it may."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return "webhook_url must be an http(s) URL with a host"
    if allow_private:
        return None
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, parsed.port or 443)}
    except socket.gaierror:
        return f"cannot resolve {parsed.hostname}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_unspecified or ip.is_multicast:
            return (f"{parsed.hostname} resolves to {ip}, a loopback/link-local/private address; "
                    "set DYNTRAIN_WEBHOOK_ALLOW_PRIVATE=true on the server to allow it")
    return None


class WebhookSender:
    """Tails the events table and delivers webhook events, each with retries and backoff."""

    def __init__(self, core: Core, poll_s: float = 1.0, attempts: int = 5, backoff_s: float = 1.0):
        self.core, self.poll_s, self.attempts, self.backoff_s = core, poll_s, attempts, backoff_s
        self.delivered: list[dict] = []  # (for observability and tests) the last deliveries
        self._timer = Periodic("webhooks", self.tick, poll_s)
        with core.db.read() as s:
            self._cursor = s.scalar(select(func.max(EventRow.id))) or 0  # only events from now on

    def start(self) -> "WebhookSender":
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()

    def tick(self) -> None:
        with self.core.db.read() as s:
            rows = s.execute(select(EventRow, ProjectRow.name, ProjectRow.settings)
                             .join(ProjectRow, ProjectRow.id == EventRow.project_id)
                             .where(EventRow.id > self._cursor).order_by(EventRow.id).limit(200)).all()
        for event, name, settings in rows:
            self._cursor = event.id
            url = ProjectSettings(**(settings or {})).webhook_url
            if url and event.type in WEBHOOK_EVENTS:
                payload = {"id": event.id, "type": event.type, "project": name, "data": event.data,
                           "at": event.created_at.isoformat()}
                threading.Thread(target=self.deliver, args=(url, payload), daemon=True).start()

    def deliver(self, url: str, payload: dict) -> bool:
        refused = check_destination(url, self.core.settings.webhook_allow_private)
        if refused:
            log.warning("webhook for event %s not sent: %s", payload["id"], refused)
            self.delivered.append({"event": payload["id"], "ok": False, "reason": refused})
            return False
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Dyntrain-Event": payload["type"],
                   "X-Dyntrain-Delivery": str(payload["id"]),
                   "X-Dyntrain-Signature": sign(webhook_secret(self.core), body)}
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                # Redirects are not followed: they could lead to an address the check refused.
                r = httpx.post(url, content=body, headers=headers, timeout=10, follow_redirects=False)
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


