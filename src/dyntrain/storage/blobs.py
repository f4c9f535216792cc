"""Content-addressed blob store: sha256 names, atomic writes, identical content stored once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from ..kernel.errors import NotFound
from .files import atomic_write, path_inside

__all__ = ["BlobStore", "FileBlobStore", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    """What callers need; an object-store implementation can follow without touching them."""

    def put(self, data: bytes) -> str: ...
    def get(self, digest: str) -> bytes: ...
    def exists(self, digest: str) -> bool: ...
    def delete(self, digest: str) -> None: ...


class FileBlobStore:
    """Blobs under ``root/ab/cdef…``; written to a temp file in the same folder, then renamed.

    >>> store = FileBlobStore(Path(tempfile.mkdtemp()))
    >>> d = store.put(b"hi"); store.get(d)
    b'hi'
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFound(f"no blob named {digest!r}")
        # The name is safe; the folders may not be (a symlinked ``ab/`` from a crafted backup).
        return path_inside(self.root, f"{digest[:2]}/{digest[2:]}", "blob")

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        path = self._path(digest)
        if path.exists():
            try:
                # A re-upload is fresh for housekeeping's grace period (its row may not exist yet).
                os.utime(path)
                return digest
            except FileNotFoundError:
                pass  # collected a moment ago: write it again below
        atomic_write(path, data)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest[:12]}… is missing from the store") from None

    def exists(self, digest: str) -> bool:
        try:
            return self._path(digest).exists()
        except NotFound:
            return False

    def delete(self, digest: str) -> None:
        try:
            self._path(digest).unlink()
        except FileNotFoundError:
            pass


