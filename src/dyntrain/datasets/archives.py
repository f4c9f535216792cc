"""A zip of labelled files imported over HTTP as ONE dataset version.

The project's task reads it (``Target.read_files``): files in class folders by default, photos with
COCO JSON, Pascal VOC XML or YOLO txt box files in an object-detection project (the format detected
unless named) — the same readers as ``dyntrain import``. Every file and label is checked before
anything is stored (:func:`dyntrain.datasets.changes.add_samples`), so a bad box is a 422 naming
its file and box and the project is left as it was.

>>> import_archive(core, "shelf", open("shelf.zip", "rb"), "shelf.zip")  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from .. import tasks
from ..kernel.core import Core
from ..kernel.entities import DatasetVersion, Sample
from ..kernel.errors import Invalid
from ..kernel.limits import exceeded
from .changes import Upload, add_samples, project_task

__all__ = ["import_archive"]


def import_archive(core: Core, project: str, stream: BinaryIO, filename: str, *, format: str | None = None,
                   batch: str | None = None) -> tuple[list[Sample], DatasetVersion | None]:
    """Add every labelled file of the zip ``stream`` (a new version, or staged in ``batch``)."""
    task = tasks.get(project_task(core, project))
    target, modality = task.target, task.modality
    if format is not None and format not in target.file_formats:
        known = f"one of {', '.join(target.file_formats)}" if target.file_formats else "not named: files go in class folders"
        raise Invalid(f"format {format!r} is not one a {task.name} project reads; the format is {known}")
    limit, setting, what = modality.upload_limit(core.settings)
    with tempfile.TemporaryDirectory(prefix="dyntrain-import-") as tmp:
        # the readers tell a zip from a folder by its name, and name it in their errors
        given = Path(filename.replace("\\", "/").replace("\0", "")).name
        path = Path(tmp) / (given if given.lower().endswith(".zip") else "upload.zip")
        with path.open("wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
        if not zipfile.is_zipfile(path):
            raise Invalid(f"{filename} is not a zip archive: send a .zip of the files (and their annotation files)")
        uploads, labels = [], []
        for label, name, data in target.read_files(path, max_bytes=core.settings.max_upload_bytes, format=format):
            if len(uploads) == limit:  # refused before the rest is inflated
                raise exceeded(f"{filename} holds more than {limit} {what}", limit, setting,
                               "split it into several archives sent into one upload batch (?batch=)")
            uploads.append(Upload(name, data))
            labels.append(label)
    if not uploads:
        raise Invalid(f"{filename} holds no labelled {what}")
    return add_samples(core, project, uploads, labels, batch=batch, source="import")
