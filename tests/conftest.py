"""Shared fixtures: real SQLite and PostgreSQL databases, a platform core, an HTTP client."""

from __future__ import annotations

import io
import os
import uuid

import numpy as np
import pytest
from PIL import Image

from dyntrain.kernel.config import Settings
from dyntrain.kernel.core import Core

# The CLI under test must not pick up the admin token of a developer's own ./dyntrain-data.
os.environ["DYNTRAIN_TOKEN_FILE"] = os.devnull

PG_ADMIN_URL = os.environ.get("DYNTRAIN_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except Exception:
        return False


PG = _pg_available()


def require_postgres(available: bool = PG) -> None:
    """Every storage, scheduling and API test also runs on PostgreSQL: without it the suite fails."""
    if not available:
        pytest.fail(f"PostgreSQL is unreachable at {PG_ADMIN_URL}: start it, or point "
                    "DYNTRAIN_TEST_POSTGRES_URL at one (trust auth, a database the tests may create databases from)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A fresh, empty database on each backend (a new PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dyntrain.db'}"
        return
    require_postgres()
    import psycopg

    name = f"dyntrain_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, seed_demo=False,
                    scheduler_enabled=False)


@pytest.fixture
def core(settings) -> Core:
    c = Core.create(settings)
    yield c
    c.db.dispose()


@pytest.fixture
def client(core):
    from fastapi.testclient import TestClient

    from dyntrain.api import create_app

    # A request from this machine, to a name the server answers to (the default Host `testserver`
    # is refused): the loopback-bound server trusts it (auth=auto).
    with TestClient(create_app(core=core), base_url="http://127.0.0.1", client=("127.0.0.1", 50000)) as c:
        yield c


def png_bytes(seed: int = 0, size=(48, 40), mode="RGB") -> bytes:
    """A real, distinct PNG image (random pixels from a seed)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, "PNG" if mode != "CMYK" else "TIFF")
    return buf.getvalue()


@pytest.fixture
def make_png():
    return png_bytes


class LiveServer:
    """A real uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        import time

        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_server(core):
    from dyntrain.api import create_app

    with LiveServer(create_app(core=core)) as server:
        yield server


@pytest.fixture
def loop_server(core):
    """A live server whose training scheduler runs (the whole dynamic loop)."""
    from dyntrain.api import create_app

    core.settings.scheduler_enabled = True
    core.settings.scheduler_poll_s = 0.2
    with LiveServer(create_app(core=core)) as server:
        yield server


def wait_for(predicate, timeout: float = 300, interval: float = 0.3):
    """Poll until ``predicate()`` returns something truthy; fail with the last value otherwise."""
    import time

    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s; last value: {value!r}")
