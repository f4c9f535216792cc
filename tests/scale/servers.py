"""Real server processes and fresh PostgreSQL databases for the scale-out tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

__all__ = ["PG_ADMIN_URL", "pg_available", "fresh_pg_database", "free_port", "ServerProcess", "rss_mb"]

PG_ADMIN_URL = os.environ.get("DYNTRAIN_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def fresh_pg_database():
    """A new, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    import psycopg

    name = f"dyntrain_scale_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class ServerProcess:
    """``dyntrain serve`` in a subprocess on 127.0.0.1; stderr goes to a log file for post-mortems."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, role: str | None = None,
                 port: int | None = None):
        self.data_dir, self.role = Path(data_dir), role
        self.env = {**os.environ, "DYNTRAIN_DATA_DIR": str(data_dir), "DYNTRAIN_SEED_DEMO": "false",
                    "DYNTRAIN_HOST": "127.0.0.1", **(env or {})}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.url}/api/v1"
        self.proc: subprocess.Popen | None = None
        self.log = self.data_dir.parent / f"server-{self.port}.log"
        self.started_in = float("nan")

    def start(self, timeout: float = 90) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "dyntrain.cli", "serve", "--port", str(self.port)]
        if self.role:
            args += ["--role", self.role]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.api + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start in {timeout}s:\n{self.tail()}")
            time.sleep(0.05)
        self.started_in = time.monotonic() - t0
        return self

    def health(self) -> dict:
        return httpx.get(self.api + "/health", timeout=5).json()

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: the process dies without any cleanup (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
