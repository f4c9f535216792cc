"""Reading and writing the ``<label>/<file>`` layout used by import and export (folder or .zip)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .errors import Invalid
from .limits import limit_rows

__all__ = ["iter_labelled_files", "read_text_records", "read_table", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def _skip(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def iter_labelled_files(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """Yield (label, filename, bytes) from ``path/<label>/<file>`` or a .zip of that layout.

    Zip entries with ``..`` or absolute paths are refused before anything is read.

    >>> list(iter_labelled_files(Path("photos")))  # doctest: +SKIP
    [('mug', 'a.jpg', b'...')]
    """
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        yield from _from_zip(path)
    elif path.is_dir():
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path).parts
            if file.is_file() and not _skip(rel):
                if len(rel) != 2:
                    raise Invalid(f"{file}: expected PATH/<label>/<image>; put each image in its class's folder")
                yield rel[0], rel[1], file.read_bytes()
    else:
        raise Invalid(f"{path} is neither a folder nor a .zip file")


def _from_zip(path: Path) -> Iterator[tuple[str, str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        entries = [i for i in zf.infolist() if not i.is_dir()]
        unsafe = [i.filename for i in entries
                  if i.filename.startswith(("/", "\\")) or ".." in PurePosixPath(i.filename.replace("\\", "/")).parts
                  or (len(i.filename) > 1 and i.filename[1] == ":")]
        if unsafe:
            raise Invalid(f"{path.name} has unsafe entries (absolute or '..' paths): {', '.join(unsafe[:5])}")
        files = [(PurePosixPath(i.filename).parts, i) for i in sorted(entries, key=lambda i: i.filename)]
        files = [(parts, i) for parts, i in files if not _skip(parts)]
        # A zip of the folder itself has one common root: <root>/<label>/<file>.
        if files and all(len(p) == 3 for p, _ in files) and len({p[0] for p, _ in files}) == 1:
            files = [(p[1:], i) for p, i in files]
        for parts, info in files:
            if len(parts) != 2:
                raise Invalid(f"{info.filename}: expected <label>/<image> inside the zip")
            yield parts[0], parts[1], zf.read(info)


def read_text_records(path: Path, text_column: str = "text", label_column: str = "label", *,
                      max_rows: int | None = None) -> list[tuple[str, str]]:
    """(label, text) pairs from a .csv (with a header row) or a .jsonl file (one object per line).

    More than ``max_rows`` records (setting ``max_csv_rows``) is a :class:`TooLarge`, raised
    while reading (see :func:`dyntrain.limits.limit_rows`).

    >>> read_text_records(Path("reviews.csv"))  # doctest: +SKIP
    [('positive', 'A wonderful film'), ...]
    """
    import csv
    import json

    rows: list[dict] = []
    if path.suffix.lower() == ".jsonl":
        with open(path, encoding="utf-8") as f:
            lines = ((n, line) for n, line in enumerate(f, 1) if line.strip())
            for n, line in limit_rows(lines, max_rows, path.name):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise Invalid(f"{path.name} line {n} is not JSON: {exc.msg}") from None
    else:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(limit_rows(csv.DictReader(f), max_rows, path.name))
    out = []
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or text_column not in row or label_column not in row:
            have = ", ".join(row) if isinstance(row, dict) else type(row).__name__
            raise Invalid(f"{path.name} record {n} lacks '{text_column}' or '{label_column}' (it has: {have}); "
                          "choose the columns with --text-column / --label-column")
        out.append((str(row[label_column]), str(row[text_column])))
    return out


def read_table(path: Path, *, max_rows: int | None = None) -> tuple[list[str], list[dict]]:
    """(columns, rows) of a table: a .csv with a header row, or a .jsonl of one object per line.

    CSV cells stay strings (types are inferred at training time); JSON values keep theirs.
    More than ``max_rows`` rows (setting ``max_csv_rows``) is a :class:`TooLarge`.

    >>> read_table(Path("houses.csv"))  # doctest: +SKIP
    (['rooms', 'city', 'price'], [{'rooms': '3', 'city': 'Oslo', 'price': '310000'}, ...])
    """
    import json

    from .tables import read_csv_rows

    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        return read_csv_rows(path.read_bytes(), name=path.name, max_rows=max_rows)
    rows: list[dict] = []
    columns: dict[str, None] = {}
    lines = ((n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip())
    for n, line in limit_rows(lines, max_rows, path.name):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Invalid(f"{path.name} line {n} is not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise Invalid(f"{path.name} line {n} is not a JSON object of column: value")
        columns.update(dict.fromkeys(row))
        rows.append(row)
    return list(columns), rows
