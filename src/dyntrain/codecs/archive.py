"""Reading and writing the ``<label>/<file>`` layout used by import and export (folder or .zip)."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ..kernel.errors import Invalid
from ..kernel.limits import limit_rows

__all__ = ["iter_labelled_files", "read_text_records", "read_table", "IMAGE_SUFFIXES", "validate_label",
           "export_paths"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
MAX_NAME_BYTES = 255  # a file or folder name's limit on common filesystems (ext4, APFS, NTFS: 255 units)


def validate_label(label: str | None) -> str:
    """A class label, stripped; the one check behind every way a label comes in (uploads, imports,
    relabelling, class renames, feedback, add-to-training — ``datasets.changes`` re-exports it).

    A label names a folder when the project is exported (``<label>/<file>``), so it must be a
    plain folder name: not ``.`` or ``..``, no separators or control characters, at most 255
    bytes in UTF-8.

    >>> validate_label("  mug ")
    'mug'
    """
    if label is not None and not isinstance(label, str):  # JSON bodies may carry a list or an object
        raise Invalid(f"a class label is text (the class's name), got {type(label).__name__}: {str(label)[:40]}")
    label = (label or "").strip()
    if not label:
        raise Invalid("a label is required (the class the example belongs to)")
    if label in (".", ".."):
        raise Invalid(f"label {label!r} is not allowed: it would name the current or parent folder on export; "
                      "use a word")
    try:
        encoded = label.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no file system or database can store it
        raise Invalid(f"label {label[:40]!r} is not valid Unicode text (it holds a lone surrogate)") from None
    too_long = len(label) > 200 or len(encoded) > MAX_NAME_BYTES
    if too_long or any(c in label for c in "/\\\n\r\t\0"):
        raise Invalid(f"label {label[:40]!r} is invalid: at most 200 characters (255 bytes in UTF-8), no slashes, "
                      "backslashes, tabs, newlines or NUL characters")
    return label


def export_paths(out_dir: Path, samples: list[tuple[int, str, str]]) -> list[tuple[int, Path]]:
    """Where each sample ``(id, label, original file name)`` goes in the ``<label>/<file>`` layout
    import reads, all decided before anything is written; every path lies inside ``out_dir``.

    A label that cannot be a folder name (``..``, a slash, over 255 bytes: possible in data
    stored before labels were checked) stops the export up front, naming each. File names are
    made safe: empty, hidden or unencodable ones become ``<id>.img``, ones over 255 bytes are
    shortened with a hash of the whole name (the same every time), and a name already taken
    (in this export, or on disk from an earlier one) gets the sample id in front.

    >>> export_paths(Path("/tmp/out"), [(7, "mug", "a.png")])
    [(7, PosixPath('/tmp/out/mug/a.png'))]
    """
    from ..storage.files import path_inside

    bad: dict[str, str] = {}
    for _, label, _ in samples:
        try:
            validate_label(label)
        except Invalid as exc:
            bad.setdefault(label, exc.message)
    if bad:
        raise Invalid(f"{len(bad)} label(s) cannot be folder names, so nothing was exported: rename those classes "
                      "(or relabel their samples), then export again",
                      details=[{"field": f"label {label!r}", "reason": reason} for label, reason in bad.items()])
    out_dir = Path(out_dir)
    taken: set[str] = set()
    plan = []
    for sample_id, label, filename in samples:
        name = _export_name(sample_id, filename)
        if f"{label}/{name}" in taken or (out_dir / label / name).exists():
            name = _fit_name(f"{sample_id}-{name}")
        taken.add(f"{label}/{name}")
        plan.append((sample_id, path_inside(out_dir, f"{label}/{name}", "export path")))
    return plan


def _export_name(sample_id: int, filename: str) -> str:
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    try:
        os.fsencode(name)
    except UnicodeEncodeError:  # a lone surrogate: no file system takes it
        name = ""
    if not name or name.startswith(".") or "\0" in name:  # hidden files are skipped by import
        return f"{sample_id}.img"
    return _fit_name(name)


def _fit_name(name: str) -> str:
    """``name`` if it fits a file name, else its start, a hash of the whole name and its suffix:
    the same name always gives the same result, and long names that share a start stay apart.

    >>> len(_fit_name("é" * 200 + ".png").encode())
    255
    """
    raw = os.fsencode(name)
    if len(raw) <= MAX_NAME_BYTES:
        return name
    suffix = PurePosixPath(name).suffix
    suffix = suffix if len(os.fsencode(suffix)) <= 16 else ""
    tag = "-" + hashlib.sha256(raw).hexdigest()[:16]
    room = MAX_NAME_BYTES - len(os.fsencode(tag + suffix))
    # Cut in bytes; a multi-byte character split at the end is dropped.
    stem = os.fsencode(name[: len(name) - len(suffix)])[:room].decode("utf-8", "ignore")
    return stem + tag + suffix


def _skip(parts: tuple[str, ...]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def iter_labelled_files(path: Path, *, max_bytes: int | None = None) -> Iterator[tuple[str, str, bytes]]:
    """Yield (label, filename, bytes) from ``path/<label>/<file>`` or a .zip of that layout.

    One file at a time: a caller that sends them on as they come holds a few in memory, not
    the whole archive. Zip entries with ``..`` or absolute paths are refused before anything
    is read; a file over ``max_bytes`` (setting ``max_upload_bytes``) is a :class:`TooLarge`,
    for a zip member on its declared size before inflating it and again on the bytes actually
    inflated (so a zip bomb, or a header that lies about its size, never fills the memory).

    >>> list(iter_labelled_files(Path("photos")))  # doctest: +SKIP
    [('mug', 'a.jpg', b'...')]
    """
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        yield from _from_zip(path, max_bytes)
    elif path.is_dir():
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path).parts
            if file.is_file() and not _skip(rel):
                if len(rel) != 2:
                    raise Invalid(f"{file}: expected PATH/<label>/<image>; put each image in its class's folder")
                size = file.stat().st_size
                _check_file_size(size, max_bytes, f"{'/'.join(rel)} is {size} bytes")
                yield rel[0], rel[1], file.read_bytes()
    else:
        raise Invalid(f"{path} is neither a folder nor a .zip file")


_READ_CHUNK = 1024 * 1024


def _check_file_size(size: int, max_bytes: int | None, what: str) -> None:
    """:class:`TooLarge` when ``size`` is over ``max_bytes``; ``what`` says what was found."""
    if max_bytes is not None and size > max_bytes:
        from ..kernel.limits import exceeded

        raise exceeded(what, max_bytes, "max_upload_bytes", "leave that file out or make it smaller")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int | None) -> bytes:
    """A zip member's bytes, inflated in chunks and refused once past ``max_bytes``."""
    _check_file_size(info.file_size, max_bytes, f"{info.filename} is {info.file_size} bytes")  # as declared
    parts, size = [], 0
    with zf.open(info) as member:
        while chunk := member.read(_READ_CHUNK):
            size += len(chunk)  # as really inflated: the header may lie
            _check_file_size(size, max_bytes, f"{info.filename} inflates to more than {max_bytes} bytes")
            parts.append(chunk)
    return b"".join(parts)


def _from_zip(path: Path, max_bytes: int | None = None) -> Iterator[tuple[str, str, bytes]]:
    try:
        yield from _zip_members(path, max_bytes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        # A damaged archive, a CRC that does not match (e.g. a header that lies about a size),
        # or a compression method zipfile cannot read.
        raise Invalid(f"{path.name} cannot be read as a zip archive: {exc}") from None


def _zip_members(path: Path, max_bytes: int | None) -> Iterator[tuple[str, str, bytes]]:
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
            yield parts[0], parts[1], _read_member(zf, info, max_bytes)


def read_text_records(path: Path, text_column: str = "text", label_column: str = "label", *,
                      max_rows: int | None = None) -> list[tuple[str, str]]:
    """(label, text) pairs from a .csv (with a header row) or a .jsonl file (one object per line).

    More than ``max_rows`` records (setting ``max_csv_rows``) is a :class:`TooLarge`, raised
    while reading (see :func:`dyntrain.kernel.limits.limit_rows`).

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
            have = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
            raise Invalid(f"{path.name} record {n} lacks '{text_column}' or '{label_column}' (it has: {have}); "
                          "choose the columns with --text-column / --label-column")
        out.append((_record_value(row[label_column], path.name, n, label_column, integers=True),
                    _record_value(row[text_column], path.name, n, text_column)))
    return out


def _record_value(value, source: str, n: int, column: str, *, integers: bool = False) -> str:
    """A record's text or label as a string; :class:`Invalid` naming the record for anything
    else (``str()`` would store null as "None" and a list as "['x']"). An integer label (0/1
    sentiment datasets) is taken as its digits."""
    if isinstance(value, str):
        return value
    if integers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    got = "null (or a missing cell)" if value is None else f"a {type(value).__name__} ({str(value)[:40]})"
    raise Invalid(f"{source} record {n}: '{column}' is {got}, not a string; fix or drop that record")


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
