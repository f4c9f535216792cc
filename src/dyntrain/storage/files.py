"""Atomic file writes, stored paths kept inside their store, and the data dir's server lock."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..kernel.errors import Conflict, NotFound

__all__ = ["atomic_write", "stored_secret", "path_inside", "UnsafePath", "hold_server_lock", "SERVER_LOCK"]


class UnsafePath(NotFound):
    """A stored path (from the database, an archive, a manifest) that leads outside its store."""


def path_inside(root: Path, relative: str | os.PathLike[str], what: str = "stored path") -> Path:
    """``root / relative`` with symlinks and ``..`` resolved, refused unless it lies inside ``root``.

    Every path the database or an archive names (model files, blobs, work folders) goes through
    this before it is read, written or deleted: a row saying ``../../etc/passwd``, or a folder
    swapped for a symlink, must never reach a file outside the store.

    >>> path_inside(Path("/srv/models"), "shop/v1.onnx").as_posix()
    '/srv/models/shop/v1.onnx'
    """
    base = Path(root).resolve()
    try:
        target = (base / relative).resolve()
    except (ValueError, OSError):  # an embedded NUL, a symlink loop
        target = None
    if target is None or target == base or not target.is_relative_to(base):
        raise UnsafePath(f"{what} {os.fspath(relative)!r} lies outside {base}: refusing it (the database or "
                         "archive naming it is damaged or was tampered with)")
    return target


def atomic_write(path: Path, content: bytes | Callable[[BinaryIO], None], *, fsync: bool = True) -> Path:
    """Write ``content`` (bytes, or a function writing to a binary file) to ``path``.

    The data goes to a temp file in the same folder, is flushed to disk, then renamed over
    ``path``. The file is readable by its owner alone (``mkstemp``), which secrets need and
    nothing else minds.

    >>> atomic_write(Path("/tmp/dt-doc.bin"), b"data")  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(content, (bytes, bytearray, memoryview)):
                f.write(content)
            else:
                content(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def stored_secret(data_dir: Path, name: str, override: str = "") -> str:
    """A server secret: ``override`` (a setting) if given, else one generated once and kept,
    owner-only, as ``data_dir/name``."""
    if override:
        return override
    path = Path(data_dir) / name
    if not path.exists():
        atomic_write(path, secrets.token_hex(32).encode())
    return path.read_text().strip()


SERVER_LOCK = "server.lock"


def hold_server_lock(folder: Path) -> BinaryIO:
    """Take ``folder/server.lock`` exclusively for as long as the returned file stays open.

    An OS lock (``flock``), not a marker file: the kernel drops it when the process ends in any
    way, SIGKILL included, so a crash never leaves a stale lock behind. A second holder gets a
    :class:`Conflict` naming the process that has it.
    """
    import fcntl

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    f = os.fdopen(os.open(folder / SERVER_LOCK, os.O_RDWR | os.O_CREAT, 0o600), "r+b")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = f.read().decode(errors="replace").strip()
        f.close()
        raise Conflict(f"another dyntrain server{f' (pid {holder})' if holder else ''} is already using {folder}: "
                       "two servers on one SQLite data dir would both lead (every job and webhook twice). Stop "
                       "it first, or give this one its own --data-dir; several API processes need PostgreSQL "
                       "(docs/deployment.md)") from None
    f.truncate(0)
    f.write(str(os.getpid()).encode())
    f.flush()
    return f
