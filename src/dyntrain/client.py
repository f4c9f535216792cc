"""A small client of the REST API, used by every CLI command but ``serve``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from .kernel.errors import DyntrainError

# httpx is imported where it is used: `dyntrain serve` imports this module through the CLI and
# never needs it (importing httpx costs ~0.1-0.2 s of an inference replica's start-up).

__all__ = ["Client", "ApiError"]


class ApiError(DyntrainError):
    """The server answered with an error; ``message`` is its explanation."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        super().__init__(message, details=details)
        self.status, self.code = status, code


READ_ATTEMPTS = 3


def _retry_after(response) -> float:
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.1), 5.0)
    except ValueError:
        return 1.0


class Client:
    """The dyntrain REST client — the CLI's, and the one for notebooks and scripts.

    Every error the server answers becomes an :class:`ApiError` carrying its status, code and
    message (what to do). ``url`` defaults to ``DYNTRAIN_URL`` (else http://127.0.0.1:8000),
    ``token`` to ``DYNTRAIN_TOKEN``.

    >>> client = Client("http://127.0.0.1:8000", token="…")  # doctest: +SKIP
    >>> shelf = client.project("shelf", create=True)  # doctest: +SKIP
    >>> shelf.add(["a.jpg", "b.jpg"], labels=["mug", "cup"]); shelf.train(wait=True)  # doctest: +SKIP
    >>> client.get("/projects")  # any route, as JSON  # doctest: +SKIP
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120.0):
        import os

        url = url or os.environ.get("DYNTRAIN_URL") or "http://127.0.0.1:8000"
        token = token if token is not None else os.environ.get("DYNTRAIN_TOKEN") or None
        self.base = url.rstrip("/") + "/api/v1"
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(timeout=timeout, headers=headers)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        import httpx

        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                response = self.http.request(method, self.base + path, **kwargs)
            except httpx.ConnectError:
                raise ApiError(0, "unreachable", f"cannot reach the dyntrain server at {self.base}: start it with "
                               "`dyntrain serve` (or `make serve`), or point --url / DYNTRAIN_URL at it") from None
            # A busy database answers 503 + Retry-After; a read is safe to ask again (a change
            # is not: it is reported, and the caller decides).
            if response.status_code != 503 or method != "GET" or attempt == READ_ATTEMPTS:
                break
            time.sleep(_retry_after(response))
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text[:500]}
            raise ApiError(response.status_code, error.get("code", "error"), error.get("message", ""),
                           error.get("details"))
        return response

    # -- projects (notebook API: dyntrain.client_project) -----------------------------------
    def project(self, name: str, *, create: bool = False, task: str | None = None,
                settings: dict[str, Any] | None = None, description: str = ""):
        """A handle on project ``name`` (checked to exist); ``create`` makes it when it does not,
        for ``task`` (None: the server's default) with ``settings``."""
        from .client_project import Project

        try:
            self.get(f"/projects/{quote(name, safe='')}")
        except ApiError as exc:
            if exc.status != 404 or not create:
                raise
            self.create_project(name, task=task, settings=settings, description=description)
        return Project(self, name)

    def create_project(self, name: str, task: str | None = None, *, settings: dict[str, Any] | None = None,
                       description: str = ""):
        """Create a project (409 ``conflict`` when the name is taken) and return its handle."""
        from .client_project import Project

        body = {"name": name, "description": description, "settings": settings or {}}
        self.post("/projects", json=body if task is None else {**body, "task": task})
        return Project(self, name)

    def projects(self) -> list[dict[str, Any]]:
        """Every project this token may see, with its status."""
        return self.get("/projects")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw).json()

    def post(self, path: str, **kw) -> Any:
        r = self.request("POST", path, **kw)
        return r.json() if r.content else None

    def patch(self, path: str, **kw) -> Any:
        return self.request("PATCH", path, **kw).json()

    def delete(self, path: str, **kw) -> Any:
        r = self.request("DELETE", path, **kw)
        return r.json() if r.content else None

    def download(self, path: str) -> bytes:
        return self.request("GET", path).content

    def events(self, project: str, after: int = 0) -> Iterator[dict]:
        """Follow a project's server-sent events (reconnects resume after the last id)."""
        import httpx

        last = after
        while True:
            try:
                with self.http.stream("GET", f"{self.base}/projects/{project}/events",
                                      headers={"Last-Event-ID": str(last), "Accept": "text/event-stream"}, timeout=None) as response:
                    if response.status_code >= 400:
                        response.read()
                        self._raise(response)
                    for line in response.iter_lines():
                        if line.startswith("data:"):
                            event = json.loads(line[5:].strip())
                            last = event["id"]
                            yield event
            except (httpx.RemoteProtocolError, httpx.ReadError):
                continue

    def _raise(self, response: httpx.Response) -> None:
        error = response.json().get("error", {})
        raise ApiError(response.status_code, error.get("code", "error"), error.get("message", response.text))
