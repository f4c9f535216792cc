"""A small Ray cluster on 127.0.0.1 for tests and benchmarks: a head node and one worker node.

Every port is chosen free and given explicitly, the object stores are capped, and the cluster
is stopped by killing exactly the processes it started (found by its own temp dir and GCS
port) — never ``ray stop``, which would also stop other people's Ray on a shared machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["RayCluster", "ray_env"]

RAY = str(Path(sys.executable).with_name("ray"))
# Ray turns 127.0.0.1 into the machine's routable address for multi-node clusters; another
# loopback address (all of 127/8 is loopback on Linux) keeps every node's address local.
NODE_IP = "127.0.0.2"


def ray_env(**extra: str) -> dict[str, str]:
    """Environment for Ray processes and drivers: no usage stats, no scheduler chatter."""
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_SCHEDULER_EVENTS": "0", "PYTHONUNBUFFERED": "1", **extra}


def _free_block(size: int) -> int:
    """A base port such that base … base+size-1 are all free (best effort)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + size >= 60000 or base < 20000:
            continue
        ok = True
        for p in range(base, base + size):
            with socket.socket() as s:
                try:
                    s.bind(("0.0.0.0", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free block of ports")


class RayCluster:
    """``with RayCluster(worker_cpus=1) as c: ... c.address, c.env(...)``"""

    def __init__(self, worker_cpus: int = 1, head_cpus: int = 0, object_store_mb: int = 100,
                 worker_env: dict[str, str] | None = None):
        self.worker_cpus, self.head_cpus, self.object_store_mb = worker_cpus, head_cpus, object_store_mb
        self.worker_env = worker_env or {}
        self.temp_dir = tempfile.mkdtemp(prefix="dtray", dir="/tmp")  # short: socket paths are limited
        self.base = _free_block(140)
        self.port = self.base
        self.address = f"{NODE_IP}:{self.port}"
        # Token authentication with a token of our own: deterministic whatever ~/.ray holds,
        # and nothing else on the machine can submit work to this cluster.
        self.token = secrets.token_hex(32)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for this cluster's nodes and for drivers (API processes) that join it."""
        return ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, **extra)

    def _ports(self, offset: int) -> list[str]:
        b = self.base + offset
        return [f"--node-manager-port={b + 1}", f"--object-manager-port={b + 2}",
                f"--dashboard-agent-listen-port={b + 3}", f"--dashboard-agent-grpc-port={b + 4}",
                f"--metrics-export-port={b + 5}", f"--runtime-env-agent-port={b + 6}",
                f"--min-worker-port={b + 20}", f"--max-worker-port={b + 59}"]

    def _run(self, args: list[str], env: dict[str, str]) -> None:
        proc = subprocess.run([RAY, "start", *args], env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")

    def start(self) -> "RayCluster":
        store = str(self.object_store_mb * 1024 * 1024)
        try:
            self._run(["--head", f"--port={self.port}", f"--node-ip-address={NODE_IP}", f"--num-cpus={self.head_cpus}",
                       "--num-gpus=0", f"--object-store-memory={store}", "--include-dashboard=false",
                       "--dashboard-host=127.0.0.1", f"--dashboard-port={self.base + 7}",
                       f"--ray-client-server-port={self.base + 8}", "--disable-usage-stats",
                       f"--temp-dir={self.temp_dir}", *self._ports(0)], self.env())
            self._run([f"--address={self.address}", f"--node-ip-address={NODE_IP}", f"--num-cpus={self.worker_cpus}",
                       "--num-gpus=0", f"--object-store-memory={store}", f"--temp-dir={self.temp_dir}",
                       *self._ports(70)], self.env(**self.worker_env))
        except BaseException:
            self.stop()
            raise
        return self

    def pids(self) -> list[int]:
        """Every process of this cluster: those naming its temp dir or GCS port, and their children."""
        parents: dict[int, int] = {}
        roots: set[int] = set()
        markers = (self.temp_dir, f":{self.port} ", f":{self.port}\0")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_text()
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            if any(m in cmd + "\0" for m in markers) and int(entry) != os.getpid():
                roots.add(int(entry))
        found = set(roots)
        changed = True
        while changed:
            changed = False
            for pid, ppid in parents.items():
                if ppid in found and pid not in found:
                    found.add(pid)
                    changed = True
        return sorted(found)

    def worker_pids(self, name: str) -> list[int]:
        """Ray worker processes whose title names ``name`` (e.g. the running task)."""
        out = []
        for pid in self.pids():
            try:
                if name in Path(f"/proc/{pid}/cmdline").read_text():
                    out.append(pid)
            except OSError:
                pass
        return out

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.pids():
                time.sleep(0.2)
            if not self.pids():
                break
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> "RayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
