"""Storage: database rows, migrations, sessions and the blob store. Knows nothing of HTTP."""

from .blobs import BlobStore, FileBlobStore, sha256_hex
from .db import Database

__all__ = ["BlobStore", "Database", "FileBlobStore", "sha256_hex"]
