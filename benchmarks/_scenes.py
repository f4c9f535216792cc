"""Synthetic scenes as a project's dataset version: what the detection and segmentation benchmarks train on.

Each photo becomes a stored PNG blob and each label goes through the task's target as an upload's
label does (``Target.stored_label``: a mask's PNG lands in the blob store beside the photos), so
``training.pipeline.train`` reads the items exactly as it reads a project's.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
from PIL import Image

from dyntrain import tasks
from dyntrain.kernel.entities import VersionItem


class MemoryBlobs(dict):
    """A content-addressed blob store in memory (sha256 → bytes), enough for one benchmark run."""

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self[digest] = data
        return digest

    def exists(self, digest: str) -> bool:
        return digest in self

    # the store's read, also the run's ``load_image``
    def get(self, digest: str) -> bytes:  # type: ignore[override]
        return self[digest]


def as_version(task: str, labelled: list[tuple[np.ndarray, Any]]) -> tuple[list[VersionItem], MemoryBlobs]:
    """(items, blobs) of ``(photo, label as a client sends it)`` pairs for a project of ``task``."""
    target = tasks.get(task).target
    blobs, items = MemoryBlobs(), []
    for i, (image, raw) in enumerate(labelled):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "PNG")
        digest = blobs.put(buf.getvalue())
        key, annotation = target.stored_label(raw, {"width": image.shape[1], "height": image.shape[0]}, blobs)
        items.append(VersionItem(i + 1, digest, key, annotation))
    return items, blobs
