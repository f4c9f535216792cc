"""Administration commands: ``gc`` (a client of the server, like the others) and ``backup`` /
``restore``, which act on the data dir and the database directly — the one exception to "the
CLI is a client of the server": a restore has no server to talk to yet.

Imported by ``cli.py``, which registers the commands on its app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli import URL, _client, _fail, _progress, app, console, out
from .client import ApiError
from .kernel.errors import DyntrainError
from .ops.housekeeping import human_bytes, report_lines

_DATA_DIR = typer.Option(None, "--data-dir",
                         help="The data dir (default: env DYNTRAIN_DATA_DIR, else ./dyntrain-data); "
                              "DYNTRAIN_DATABASE_URL and DYNTRAIN_ARTIFACTS apply as for serve.")


@app.command("gc")
def gc(dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be freed; delete nothing."),
       url: str = URL):
    """Housekeeping now: prediction retention, old model versions, unused feature caches, orphan files.

    Nothing a dataset version, sample, stored prediction input, alias or running training uses is
    deleted. Needs an admin token (DYNTRAIN_TOKEN). The server also runs this every hour by itself.
    """
    try:
        with console.status("dry run: counting what would be freed…" if dry_run else "collecting…"):
            report = _client(url).post("/admin/gc", params={"dry_run": str(dry_run).lower()})
    except ApiError as exc:
        _fail(exc)
    for line in report_lines(report):
        out.print(line, highlight=False)


def _settings(data_dir: Optional[Path]):
    from .kernel.config import Settings

    return Settings(**({"data_dir": data_dir} if data_dir is not None else {}))


def _run_with_bar(description: str, fn):
    """Run ``fn(progress)`` drawing its (bytes done, bytes in all) on the CLI's progress bar."""
    try:
        with _progress() as bar:
            task = bar.add_task(description, total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total or None)

            return fn(progress)
    except DyntrainError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1)


@app.command("backup")
def backup(out_file: Path = typer.Option(..., "--out", help="The archive to write (.tar, or .tar.gz to compress)."),
           data_dir: Optional[Path] = _DATA_DIR):
    """Back up a SQLite installation into one file: a consistent database snapshot (the server may keep
    running), the blobs it references, every model file and the data dir's secrets.

    On PostgreSQL use pg_dump plus a copy of the artifact store instead (docs/deployment.md).
    """
    settings = _settings(data_dir)
    manifest = _run_with_bar(f"backing up {settings.data_dir}",
                             lambda progress: _backup(settings, out_file, progress))
    counts = manifest["counts"]
    console.print(f"wrote {out_file}: {counts['projects']} projects, {counts['samples']} samples, "
                  f"{manifest['blobs']} blobs, {manifest['model_files']} model files "
                  f"({human_bytes(manifest['bytes'])} before compression), schema {manifest['schema_revision']}")
    if manifest["missing"]:
        console.print(f"[yellow]warning:[/yellow] {len(manifest['missing'])} files the database names were "
                      f"missing from the store already (first: {manifest['missing'][0]})")


def _backup(settings, out_file, progress):
    from .ops.backup import backup as run

    return run(settings, out_file, progress)


@app.command("restore")
def restore(archive: Path = typer.Argument(..., help="A file written by `dyntrain backup`."),
            data_dir: Optional[Path] = _DATA_DIR):
    """Restore a backup into an EMPTY data dir, then start the server on it (`dyntrain serve --data-dir …`)."""
    from .ops.backup import restore as run

    settings = _settings(data_dir)
    manifest = _run_with_bar(f"restoring into {settings.data_dir}", lambda progress: run(settings, archive, progress))
    console.print(f"restored the backup of {manifest['created_at']} ({manifest['counts']['projects']} projects, "
                  f"{manifest['blobs']} blobs, {manifest['model_files']} model files) into {settings.data_dir}; "
                  f"start it with: dyntrain serve --data-dir {settings.data_dir}")

