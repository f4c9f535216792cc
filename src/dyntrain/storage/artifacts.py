"""The artifact store every machine reaches: blobs (content-addressed) and model files.

Chosen by URL (``DYNTRAIN_ARTIFACTS``): a path — local, or a shared filesystem mounted at the
same place on every machine — or ``s3://bucket/prefix`` for S3-compatible object storage
(boto3; MinIO or moto through ``DYNTRAIN_S3_ENDPOINT_URL``).

With S3, each machine keeps a local read-through copy under its data_dir: blobs are named by
their content and model files are immutable, so a cached copy is never stale.

>>> store = open_artifacts(Settings(data_dir="/tmp/dt-art"))  # doctest: +SKIP
>>> store.model_file("demo/v1-ab12cd34.onnx")                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Protocol

from ..kernel.config import Settings
from ..kernel.errors import MissingExtra, NotFound
from .blobs import BlobStore, FileBlobStore, sha256_hex
from .files import UnsafePath, atomic_write, path_inside

__all__ = ["ArtifactStore", "PathArtifacts", "S3Artifacts", "S3BlobStore", "open_artifacts", "parse_s3_url"]


class ArtifactStore(Protocol):
    url: str
    blobs: BlobStore

    def put_model(self, key: str, file: Path) -> None:
        """Publish a model file written at ``model_dir / key`` (before its row commits)."""

    def model_file(self, key: str) -> Path:
        """A local path to the model file ``key``, fetched first if this machine lacks it."""

    def delete_model(self, key: str) -> int:
        """Delete the model file ``key`` and its card everywhere; returns the local bytes freed."""


class PathArtifacts:
    """Everything under one directory: nothing to publish, nothing to fetch."""

    def __init__(self, blob_dir: Path, model_dir: Path):
        self.url = str(Path(model_dir).parent)
        self.blobs = FileBlobStore(blob_dir)
        self.model_dir = Path(model_dir)

    def put_model(self, key: str, file: Path) -> None:
        return None

    def model_file(self, key: str) -> Path:
        return path_inside(self.model_dir, key, "model file")

    def delete_model(self, key: str) -> int:
        return _delete_local_model(path_inside(self.model_dir, key, "model file"))


def parse_s3_url(url: str) -> tuple[str, str]:
    """>>> parse_s3_url("s3://bucket/a/b/")
    ('bucket', 'a/b')
    """
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"artifacts URL {url!r} names no bucket (expected s3://bucket/prefix)")
    return bucket, prefix.strip("/")


def _s3_client(endpoint_url: str | None):
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise MissingExtra("an S3 artifact store", "s3") from None
    # A session per store: boto3's default session is not thread-safe, its clients are.
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32))


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3BlobStore:
    """Blobs at ``prefix/blobs/ab/cdef…``; ``get`` reads through a local :class:`FileBlobStore`."""

    def __init__(self, client, bucket: str, prefix: str, cache: FileBlobStore | None = None):
        self.client, self.bucket, self.prefix, self.cache = client, bucket, prefix, cache

    def _key(self, digest: str) -> str:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFound(f"no blob named {digest!r}")
        return f"{self.prefix}/blobs/{digest[:2]}/{digest[2:]}".lstrip("/")

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        if not self.exists(digest):
            self.client.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data)
        if self.cache is not None:
            self.cache.put(data)
        return digest

    def get(self, digest: str) -> bytes:
        if self.cache is not None and self.cache.exists(digest):
            return self.cache.get(digest)
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=self._key(digest))["Body"].read()
        except Exception as exc:
            if _missing(exc):
                raise NotFound(f"blob {digest[:12]}… is missing from the store") from None
            raise
        if self.cache is not None:
            self.cache.put(data)
        return data

    def exists(self, digest: str) -> bool:
        """Asks the store itself: another machine may have deleted the blob."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
            return True
        except NotFound:
            return False
        except Exception as exc:
            if _missing(exc):
                return False
            raise

    def delete(self, digest: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(digest))
        if self.cache is not None:
            self.cache.delete(digest)


class S3Artifacts:
    """Model files at ``prefix/models/<project>/vN-….onnx``, cached under the local model_dir."""

    def __init__(self, url: str, local_blobs: Path, local_models: Path, endpoint_url: str | None = None,
                 client=None):
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        self.client = client or _s3_client(endpoint_url)
        self.blobs = S3BlobStore(self.client, self.bucket, self.prefix, FileBlobStore(local_blobs))
        self.model_dir = Path(local_models)
        self._fetching = threading.Lock()

    def _key(self, key: str) -> str:
        # Some S3-compatible servers and proxies normalise "a/../b", others keep it literally: with
        # every segment a plain name the key stays under prefix/models/ on all of them.
        if any(part in ("", ".", "..") for part in key.split("/")) or "\\" in key or "\0" in key:
            raise UnsafePath(f"model file {key!r} is not a plain relative key under {self.url}/models: refusing it")
        return f"{self.prefix}/models/{key}".lstrip("/")

    def put_model(self, key: str, file: Path) -> None:
        self.client.upload_file(str(file), self.bucket, self._key(key))
        card = Path(file).with_suffix(".json")
        if card.exists():
            self.client.upload_file(str(card), self.bucket, self._key(str(Path(key).with_suffix(".json"))))

    def model_file(self, key: str) -> Path:
        self._key(key)
        local = path_inside(self.model_dir, key, "model file")
        if local.exists():
            return local
        with self._fetching:
            if not local.exists():
                try:
                    atomic_write(local, lambda f: self.client.download_fileobj(self.bucket, self._key(key), f))
                except Exception as exc:
                    if _missing(exc):
                        raise NotFound(f"model file {key} is missing from {self.url}") from None
                    raise
        return local

    def delete_model(self, key: str) -> int:
        for k in (key, str(Path(key).with_suffix(".json"))):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(k))
        return _delete_local_model(path_inside(self.model_dir, key, "model file"))


def _delete_local_model(path: Path) -> int:
    freed = 0
    for p in (path, path.with_suffix(".json")):
        with contextlib.suppress(FileNotFoundError):
            size = p.stat().st_size
            p.unlink()
            freed += size
    return freed


def open_artifacts(settings: Settings) -> PathArtifacts | S3Artifacts:
    """The store named by ``settings.artifacts`` (see the module docstring)."""
    if settings.artifacts.startswith("s3://"):
        return S3Artifacts(settings.artifacts, settings.blob_dir, settings.model_dir,
                           endpoint_url=settings.s3_endpoint_url or None)
    return PathArtifacts(settings.blob_dir, settings.model_dir)
