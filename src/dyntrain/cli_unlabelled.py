"""``dyntrain import --unlabelled``: items without labels into a project's labelling queue.

Images: a folder or a .zip of image files (no class folders). Texts: a .csv or .jsonl file with a
text column. Table rows: a .csv or .jsonl file (``--target`` names a column to leave out). Items
are sent in chunks; if any chunk is refused, the items already queued by this import are deleted
again, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .codecs.archive import IMAGE_SUFFIXES, _check_file_size, _read_member, _skip
from .kernel.errors import Invalid

__all__ = ["iter_loose_files", "import_unlabelled"]


def iter_loose_files(path: Path, *, max_bytes: int | None = None) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of every image file in a folder or .zip, at any depth (hidden files and
    ``__MACOSX`` left out); one at a time, each checked against ``max_bytes`` before it is read whole."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                for info in sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: i.filename):
                    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
                    if ".." in parts or info.filename.startswith(("/", "\\")):
                        raise Invalid(f"{path.name} has an unsafe entry (absolute or '..' path): {info.filename}")
                    if not _skip(parts) and PurePosixPath(info.filename).suffix.lower() in IMAGE_SUFFIXES:
                        yield parts[-1], _read_member(zf, info, max_bytes)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
            raise Invalid(f"{path.name} cannot be read as a zip archive: {exc}") from None
    elif path.is_dir():
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path).parts
            if file.is_file() and not _skip(rel) and file.suffix.lower() in IMAGE_SUFFIXES:
                size = file.stat().st_size
                _check_file_size(size, max_bytes, f"{'/'.join(rel)} is {size} bytes")
                yield file.name, file.read_bytes()
    else:
        raise Invalid(f"{path} is neither a folder nor a .zip file of images")


def import_unlabelled(client, path: Path, project: str, task: str | None, text_column: str,
                      drop: str | None) -> None:
    """The CLI command's work (see :func:`dyntrain.cli.import_`)."""
    import typer

    from . import tasks
    from .cli import _chunks, _create_project_if_missing, _fail, _max_csv_rows, _max_upload_bytes, _progress, console
    from .client import ApiError
    from .codecs.archive import read_table
    from .kernel.errors import DyntrainError

    table = path.suffix.lower() in (".csv", ".jsonl")
    if task is None:
        try:  # an existing project decides what the file holds
            task = client.get(f"/projects/{project}")["task"]
        except ApiError:
            task = tasks.default_for("texts" if table else "files")
    fmt = tasks.get(task).modality.upload_format
    try:
        if fmt == "files":
            items, what, chunk_size = iter_loose_files(path, max_bytes=_max_upload_bytes()), "images", 32
        elif not table:
            raise Invalid(f"{path.name}: a {task} project takes a .csv or .jsonl file")
        else:
            columns, rows = read_table(path, max_rows=_max_csv_rows())
            if fmt == "texts":
                if text_column not in columns:
                    raise Invalid(f"{path.name} has no column {text_column!r} (its columns: {', '.join(columns)}); "
                                  "choose it with --text-column")
                items = []
                for n, r in enumerate(rows, 1):
                    if not isinstance(r.get(text_column), str):
                        raise Invalid(f"{path.name} record {n}: {text_column!r} is not a text; fix or drop it")
                    items.append(r[text_column])
                what, chunk_size = "texts", 200
            else:
                items, what, chunk_size = rows, "rows", 500
    except (DyntrainError, OSError) as exc:
        console.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
        raise typer.Exit(1)

    def send(chunk: list) -> dict:
        if fmt == "files":
            return client.post(f"/projects/{project}/unlabelled", files=[("files", (n, d)) for n, d in chunk],
                               data={"source": "import"})
        if fmt == "texts":
            return client.post(f"/projects/{project}/unlabelled/texts", json={"texts": chunk, "source": "import"})
        return client.post(f"/projects/{project}/unlabelled/rows",
                           json={"rows": chunk, "drop": drop, "source": "import"})

    added: list[int] = []
    duplicates = 0
    created = False
    try:
        chunks = _chunks(items, chunk_size)
        first = next(chunks, None)
        if first is None:
            console.print(f"[red]error:[/red] nothing to import in {path}")
            raise typer.Exit(1)
        created = _create_project_if_missing(client, project, task)
        with _progress() as bar:
            job = bar.add_task(f"queueing {what}", total=len(items) if isinstance(items, list) else None)
            for chunk in _prepend(first, chunks):
                result = send(chunk)
                added += [s["id"] for s in result["added"]]
                duplicates += len(result["duplicates"])
                bar.advance(job, len(chunk))
    except BaseException as exc:
        for sample_id in added:  # all or nothing: take back what this import queued
            try:
                client.delete(f"/projects/{project}/unlabelled/{sample_id}")
            except ApiError:
                pass
        if created:
            try:
                client.delete(f"/projects/{project}")
            except ApiError:
                pass
        if isinstance(exc, DyntrainError):
            _fail(exc)
        if isinstance(exc, OSError):
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        raise
    console.print(f"queued {len(added)} {what} in {project!r} for labelling"
                  + (f" ({duplicates} left out: already in the project)" if duplicates else "")
                  + f"; label them on the project's Unlabelled page")


def _prepend(first, rest):
    yield first
    yield from rest
