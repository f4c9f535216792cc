"""Atomic file writes: readers see the old file or the whole new one, never a part."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "stored_secret"]


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
