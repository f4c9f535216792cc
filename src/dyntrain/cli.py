"""The ``dyntrain`` command. Every command but ``serve`` is a client of a running server."""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import tasks
from .codecs.archive import read_table, read_text_records
from .client import ApiError, Client
from .kernel.errors import DyntrainError

app = typer.Typer(help="dyntrain: train small image classifiers that retrain themselves when the data changes.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()

URL = typer.Option("http://127.0.0.1:8000", "--url", envvar="DYNTRAIN_URL",
                   help="The dyntrain server (env DYNTRAIN_URL).")
UPLOAD_CHUNK = 32


def _token() -> str | None:
    """DYNTRAIN_TOKEN, else the first admin token the local server wrote to its data dir."""
    if token := os.environ.get("DYNTRAIN_TOKEN", "").strip():
        return token
    path = Path(os.environ.get("DYNTRAIN_TOKEN_FILE") or
                Path(os.environ.get("DYNTRAIN_DATA_DIR", "dyntrain-data")) / "admin-token")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _client(url: str) -> Client:
    return Client(url, token=_token())


def _fail(exc: DyntrainError | OSError) -> None:
    """Print what went wrong (a refusal's message and its first 20 details, or a file error) and exit 1."""
    console.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
    for d in getattr(exc, "details", [])[:20]:
        where = d.get("file") or d.get("field") or (f"row {d['row']}" if "row" in d else "")
        console.print(f"  - {where}: {d.get('reason')}")
    raise typer.Exit(1)


def _max_csv_rows() -> int:
    from .kernel.config import Settings

    return Settings().max_csv_rows  # env DYNTRAIN_MAX_CSV_ROWS, as on the server


def _max_upload_bytes() -> int:
    from .kernel.config import Settings

    return Settings().max_upload_bytes  # env DYNTRAIN_MAX_UPLOAD_BYTES, as on the server


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                    console=console)


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to bind (default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default 8000)."),
    data_dir: Optional[Path] = typer.Option(None, help="Where blobs, models and the SQLite file live."),
    no_demo: bool = typer.Option(False, "--no-demo", help="Do not create the demo project on first start."),
    role: Optional[str] = typer.Option(None, help="api | inference | all (default all; env DYNTRAIN_ROLE). "
                                                  "inference: predictions only, no scheduler, no training."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="Train on this Ray cluster (host:port, or 'local'; "
                                                   "env DYNTRAIN_RAY_ADDRESS)."),
    log_format: Optional[str] = typer.Option(None, "--log-format",
                                             help="Logs on stderr: json (one object per line, with request "
                                                  "and job ids) or text; default: text on a terminal, json "
                                                  "otherwise (env DYNTRAIN_LOG_FORMAT)."),
    auth: Optional[str] = typer.Option(None, help="auto (default): on 127.0.0.1 local requests need no token, "
                                                  "others do; required: always a token; off: loopback only "
                                                  "(env DYNTRAIN_AUTH)."),
):
    """Start the server (API, UI and training scheduler) in this process."""
    import uvicorn

    from .api import create_app
    from .kernel.config import Settings

    overrides = {k: v for k, v in {"host": host, "port": port, "data_dir": data_dir, "role": role,
                                   "ray_address": ray_address, "log_format": log_format, "auth": auth}.items()
                 if v is not None}
    if no_demo:
        overrides["seed_demo"] = False
    settings = Settings(**overrides)
    from .ops.observability import configure_logging

    fmt = configure_logging(settings.log_format, settings.log_level.upper())
    banner = (f"dyntrain ({settings.role}): data in {settings.data_dir}, database "
              f"{settings.database_url.split('@')[-1]}"
              + (f", artifacts {settings.artifacts}" if settings.artifacts else "")
              + (f", training on Ray at {settings.ray_address}" if settings.ray_address else ""))
    if fmt == "text":
        console.print(banner)
    else:
        logging.getLogger("dyntrain").info(banner)
    from .kernel.core import hold_data_dir

    try:
        data_dir_lock = hold_data_dir(settings)  # first: a refused second server touches nothing
        application = create_app(settings)
    except DyntrainError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2)
    application.state.data_dir_lock = data_dir_lock  # held while the server runs; the OS drops it at exit
    if application.state.first_admin_token:
        console.print("[bold]First start: an admin API token was created. It is shown only this once:[/bold]\n"
                      f"  {application.state.first_admin_token}\n"
                      f"It is also in {settings.data_dir / 'admin-token'} (readable by you alone), where the "
                      "local CLI finds it; elsewhere set DYNTRAIN_TOKEN.")
    # Our middleware writes the access log (with request ids); uvicorn's records join our handler.
    uvicorn.run(application, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                log_config=None, access_log=False)


@app.command()
def projects(url: str = URL):
    """List projects with their status."""
    try:
        items = _client(url).get("/projects")
    except ApiError as exc:
        _fail(exc)
    table = Table("name", "task", "samples", "classes", "version", "in service", "training")
    for p in items:
        st = p["status"]
        prod = st["production"]
        table.add_row(p["name"], p["task"], str(st["samples"]), str(st["classes"]), str(st["dataset_version"] or "-"),
                      f"v{prod['version']} acc {prod['accuracy']:.2f}" if prod and prod["accuracy"] is not None
                      else (f"v{prod['version']}" if prod else "-"),
                      (st["training"] or {}).get("status", "-"))
    out.print(table)


@app.command("import")
def import_(
    path: Path = typer.Argument(..., help="Images: a folder PATH/<label>/<images> or a .zip of one. "
                                "Texts: a .csv or .jsonl file with a text and a label per row. "
                                "Tables: a .csv (header row) or .jsonl file of rows, with --target."),
    project: str = typer.Option(..., "--project", "-p", help="Project name (created if missing)."),
    task: Optional[str] = typer.Option(None, "--task", help="Task of a new project, one of: " + ", ".join(tasks.names())
                                       + f". Left out: {tasks.default_for('files')} for folders and zips, "
                                       f"{tasks.default_for('texts')} for .csv/.jsonl, {tasks.default_for('rows')} "
                                       f"with --target, " + " or ".join(n for n in tasks.names() if tasks.get(n).modality.upload_format
                                                          == "interactions") + " with --user and --item."),
    text_column: str = typer.Option("text", "--text-column", help="Column / field holding the text."),
    label_column: str = typer.Option("label", "--label-column", help="Column / field holding the label."),
    target: Optional[str] = typer.Option(None, "--target", help="Tables: the column to predict (a class, or a "
                                         "number for tabular-regression); every other column is a feature."),
    box_format: Optional[str] = typer.Option(None, "--format", help="Object detection: coco, voc or yolo; "
                                             "semantic segmentation: png (images/ + masks/ with a class table) "
                                             "or coco (detected from the files when left out)."),
    user: Optional[str] = typer.Option(None, "--user", help="Recommendation: the column holding the user id "
                                       "(with --item; the task defaults to recommendation)."),
    item: Optional[str] = typer.Option(None, "--item", help="Recommendation: the column holding the item id."),
    rating: Optional[str] = typer.Option(None, "--rating", help="Recommendation: the column holding a rating."),
    weight: Optional[str] = typer.Option(None, "--weight", help="Recommendation: the column holding a weight."),
    time: Optional[str] = typer.Option(None, "--time", help="Recommendation: the column holding the event time "
                                       "(ISO 8601 or Unix seconds)."),
    catalogue: bool = typer.Option(False, "--catalogue", help="Recommendation: the item catalogue (a .csv, .jsonl "
                                   "or a .zip with pictures): --item, --category, --text-column and --image name "
                                   "its columns; every other CSV column is an attribute. One dataset version."),
    category: Optional[str] = typer.Option(None, "--category", help="Catalogue: the column holding the category."),
    image: Optional[str] = typer.Option(None, "--image", help="Catalogue: the column naming a picture in the .zip."),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="Items WITHOUT labels into the labelling queue: "
                                    "images (a folder or .zip of files, no class folders), texts (.csv/.jsonl, "
                                    "--text-column) or table rows (.csv/.jsonl; --target names a column to leave "
                                    "out). Label them on the project's Unlabelled page."),
    url: str = URL,
):
    """Upload labelled examples as ONE new dataset version (or none if anything fails).

    Object detection (--task object-detection): a folder or .zip of images with COCO JSON, Pascal
    VOC XML or YOLO txt boxes; every bad box is named (file and box) before anything is sent.
    Semantic segmentation (--task semantic-segmentation): images/ and masks/ (PNG masks of the same
    stem, indexed or RGB, with classes.json, labelmap.txt or classes.txt), or COCO polygons / RLE;
    a bad mask (not a PNG, another size, an unknown colour or class) is named with its file.
    Recommendation (--task recommendation, or --user and --item): a .csv or .jsonl file of
    interactions with its columns named; every row is checked before anything is sent, then it
    goes in batches of 10,000 (each a dataset version)."""
    client = _client(url)
    if catalogue:
        return _import_catalogue(client, path, project, item or "item", category or "category",
                                 text_column, image or "image")
    if unlabelled:
        from .cli_unlabelled import import_unlabelled

        return import_unlabelled(client, path, project, task, text_column, target)
    tabular = path.suffix.lower() in (".csv", ".jsonl")
    if task is None and tabular:
        try:  # an existing project decides what the file holds
            task = client.get(f"/projects/{project}")["task"]
        except ApiError:
            pass
    if task is None and not tabular:
        try:  # an existing project decides what the files hold (class folders, box files …)
            task = client.get(f"/projects/{project}")["task"]
        except ApiError:
            pass
    if user or item or _upload_format(task) == "interactions":
        return _import_interactions(client, path, project, task or "recommendation", user or "user",
                                    item or "item", rating, weight, time)
    if target is not None or _upload_format(task) == "rows":
        task = task or tasks.default_for("rows")
        if _upload_format(task) != "rows" or not tabular:
            console.print("[red]error:[/red] --target imports a .csv or .jsonl table into a project of: "
                          + " or ".join(n for n in tasks.names() if _upload_format(n) == "rows"))
            raise typer.Exit(1)
        return _import_table(client, path, project, task, target)
    task = task or tasks.default_for("texts" if tabular else "files")
    try:
        # Images are read one by one while uploading (a zip is never inflated whole into memory),
        # each checked against the server's per-file limit before it is sent.
        # the task's target reads its labelled files (class folders; box files of COCO, VOC, YOLO …)
        records = (read_text_records(path, text_column, label_column, max_rows=_max_csv_rows()) if tabular
                   else tasks.get(task).target.read_files(path, max_bytes=_max_upload_bytes(), format=box_format))
    except Exception as exc:  # Invalid from the readers, OSError from the disk
        console.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
        raise typer.Exit(1)

    def send(batch: str, start: int, chunk: list) -> None:
        if tabular:
            client.post(f"/projects/{project}/samples/texts", params={"batch": batch},
                        json={"items": [{"text": text, "label": label} for label, text in chunk], "source": "import"})
        else:
            client.post(f"/projects/{project}/samples", params={"batch": batch},
                        files=[("files", (name, data)) for _, name, data in chunk],
                        data={"labels": [label for label, _, _ in chunk], "source": "import"})

    _upload_as_one_version(client, project, task, records, UPLOAD_CHUNK, "examples", send, source=path)


# A chunk also ends at this many bytes of file content: 32 files of up to max_upload_bytes each
# would otherwise make a request over max_request_bytes (and hold that much in memory here).
CHUNK_BYTES = 64 * 1024 * 1024


def _chunks(items: Iterable, size: int, max_bytes: int = CHUNK_BYTES) -> Iterator[list]:
    """Lists of up to ``size`` items (and about ``max_bytes`` of their bytes), drawn lazily."""
    chunk, held = [], 0
    for item in items:
        chunk.append(item)
        held += sum(len(x) for x in item if isinstance(x, bytes)) if isinstance(item, tuple) else 0
        if len(chunk) >= size or held >= max_bytes:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def _create_project_if_missing(client: Client, project: str, task: str) -> bool:
    """True if the project had to be created (so a failed import deletes it again)."""
    try:
        client.get(f"/projects/{project}")
        return False
    except ApiError as exc:
        if exc.status != 404:
            raise
    client.post("/projects", json={"name": project, "task": task})
    console.print(f"created {task} project {project!r}")
    return True


def _upload_as_one_version(client: Client, project: str, task: str, items: Iterable, chunk_size: int, what: str,
                           send, source: Path) -> None:
    """Stage ``items`` in one upload batch (``send(batch, start, chunk)`` per chunk, drawn from
    ``items`` as it goes, with a progress bar) and commit it as ONE dataset version.

    On any failure the batch is discarded, so nothing of a failed import lands. The project is
    created (if missing) only once the first chunk has been read, and deleted again when the
    import fails: a bad file or a refused upload leaves no empty project behind."""
    chunks = _chunks(items, chunk_size)
    created = False
    sent = 0
    try:
        first = next(chunks, None)
        if first is None:
            console.print(f"[red]error:[/red] nothing to import in {source}")
            raise typer.Exit(1)
        created = _create_project_if_missing(client, project, task)
        batch = client.post(f"/projects/{project}/batches")["id"]
        try:
            with _progress() as bar:
                job = bar.add_task(f"uploading {what}", total=len(items) if isinstance(items, list) else None)
                for chunk in itertools.chain([first], chunks):
                    send(batch, sent, chunk)
                    sent += len(chunk)
                    bar.advance(job, len(chunk))
            result = client.post(f"/projects/{project}/batches/{batch}/commit")
        except BaseException:
            try:
                client.delete(f"/projects/{project}/batches/{batch}")
            except ApiError:
                pass
            raise
    except BaseException as exc:
        if created:
            try:  # only while it holds no data (a commit whose answer was lost did land)
                if not client.get(f"/projects/{project}/dataset-versions"):
                    client.delete(f"/projects/{project}")
                    console.print(f"deleted project {project!r} again: the import failed before any data landed")
            except ApiError:
                pass
        if isinstance(exc, DyntrainError):  # the server's refusal, or Invalid / TooLarge from the readers
            _fail(exc)
        if isinstance(exc, OSError):
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        raise
    version = result.get("version")
    console.print(f"imported {sent} {what} into {project!r}"
                  + (f": dataset version {version['number']}" if version else " (no change to the data)"))


TABLE_CHUNK = 500


def _import_table(client: Client, path: Path, project: str, task: str, target: Optional[str]) -> None:
    """Rows of a CSV/JSONL file into a tabular project: ONE dataset version (or none)."""
    if not target:
        console.print("[red]error:[/red] name the column to predict with --target COLUMN")
        raise typer.Exit(1)
    try:
        columns, rows = read_table(path, max_rows=_max_csv_rows())
    except Exception as exc:  # Invalid / TooLarge from the reader, OSError from the disk
        console.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
        raise typer.Exit(1)
    if target not in columns:
        console.print(f"[red]error:[/red] {path.name} has no column {target!r} (its columns: {', '.join(columns)}); "
                      "choose the column to predict with --target")
        raise typer.Exit(1)
    if not rows:
        console.print(f"[red]error:[/red] nothing to import in {path}")
        raise typer.Exit(1)

    def send(batch: str, start: int, chunk: list) -> None:
        try:
            client.post(f"/projects/{project}/samples/rows", params={"batch": batch},
                        json={"rows": chunk, "target": target, "source": "import"})
        except ApiError as exc:  # number rows as in the whole file, not the chunk
            exc.details = [{**d, "row": d["row"] + start} if isinstance(d.get("row"), int) else d
                           for d in exc.details]
            raise

    _upload_as_one_version(client, project, task, rows, TABLE_CHUNK, "rows", send, source=path)


def _import_interactions(client: Client, path: Path, project: str, task: str, user: str, item: str,
                         rating: Optional[str], weight: Optional[str], time: Optional[str]) -> None:
    """Interactions of a CSV / JSON Lines file into a recommendation project, in batches."""
    from .codecs.interactions import read_file, wire

    if _upload_format(task) != "interactions":
        console.print(f"[red]error:[/red] --user/--item import interactions into a project of: "
                      + " or ".join(n for n in tasks.names() if _upload_format(n) == "interactions"))
        raise typer.Exit(1)
    try:  # every row checked here first: a bad file sends nothing
        records = read_file(path.read_bytes(), path.name, user=user, item=item, rating=rating, weight=weight,
                            time=time)
    except (DyntrainError, OSError) as exc:
        _fail(exc)
    try:
        _create_project_if_missing(client, project, task)
        sent, version = 0, None
        with _progress() as bar:
            job = bar.add_task("uploading interactions", total=len(records))
            for chunk in _chunks(records, INTERACTION_CHUNK):
                version = client.post(f"/projects/{project}/interactions",
                                      json={"interactions": [wire(r) for r in chunk], "source": "import"})["version"]
                sent += len(chunk)
                bar.advance(job, len(chunk))
    except DyntrainError as exc:
        if sent:
            console.print(f"[yellow]{sent:,} of {len(records):,} interactions were imported before this:[/yellow]")
        _fail(exc)
    console.print(f"imported {sent:,} interactions into {project!r}: dataset version {version}")


def _import_catalogue(client: Client, path: Path, project: str, item: str, category: str, text: str,
                      image: str) -> None:
    """A catalogue file, checked here whole (pictures decoded on the server), sent as one request:
    one dataset version, however many items."""
    from .codecs.catalogue import read_file

    try:
        data = path.read_bytes()
        entries = read_file(data, path.name, item=item, category=category, text=text, image=image)
    except (DyntrainError, OSError) as exc:
        _fail(exc)
    try:
        r = client.post(f"/projects/{project}/catalogue/import", files={"file": (path.name, data)},
                        data={"item": item, "category": category, "text": text, "image": image})
    except DyntrainError as exc:
        _fail(exc)
    console.print(f"catalogue of {project!r}: {r['added']:,} of {len(entries):,} items changed "
                  f"({r['items']:,} described): dataset version {r['version']}")


#: Interactions per request (the server's limit per JSON batch).
INTERACTION_CHUNK = 10_000


@app.command()
def recommend(project: str = typer.Argument(..., help="Project name."),
              user: str = typer.Option(..., "--user", help="The person."),
              n: int = typer.Option(10, "-n", help="How many items."),
              include_seen: bool = typer.Option(False, "--include-seen", help="Also items they already had."),
              url: str = URL):
    """A person's top items from the model in service (a stranger gets the most popular ones)."""
    _print_items(_client(url), f"/projects/{project}/recommend",
                 {"user": user, "n": n, "exclude_seen": not include_seen}, f"for {user}")


@app.command()
def similar(project: str = typer.Argument(..., help="Project name."),
            item: str = typer.Option(..., "--item", help="The item."),
            n: int = typer.Option(10, "-n", help="How many items."), url: str = URL):
    """The items most like one item, from the model in service."""
    _print_items(_client(url), f"/projects/{project}/similar", {"item": item, "n": n}, f"like {item}")


def _print_items(client: Client, path: str, params: dict, what: str) -> None:
    try:
        answer = client.get(path, params=params)
    except DyntrainError as exc:
        _fail(exc)
    out.print(f"{len(answer['items'])} items {what} (model v{answer['model_version']}, {answer['source']}; "
              f"prediction {answer['prediction_id']})", soft_wrap=True)
    table = Table()
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    for rank, (i, score) in enumerate(zip(answer["items"], answer["scores"]), start=1):
        table.add_row(str(rank), i, f"{score:.4g}")
    out.print(table)


@app.command()
def export(
    project: str = typer.Argument(..., help="Project name."),
    out_dir: Path = typer.Option(..., "--out", help="Folder to write into (<label>/<file>), or for object "
                                 "detection a folder or a .zip of images with their box files, for semantic "
                                 "segmentation a folder of images/ and masks/ (or COCO)."),
    box_format: Optional[str] = typer.Option(None, "--format", help="Object detection: coco (default), voc or "
                                             "yolo; semantic segmentation: png (default) or coco."),
    url: str = URL,
):
    """Download a project's examples into the layout import reads back."""
    client = _client(url)
    try:
        info = client.get(f"/projects/{project}")
        target = tasks.get(info["task"]).target
        if box_format is not None and box_format not in target.file_formats:
            console.print(f"[red]error:[/red] --format {box_format} does not apply to a {info['task']} project"
                          + (f"; choose {', '.join(target.file_formats)}" if target.file_formats else ""))
            raise typer.Exit(1)
        samples, offset = [], 0
        while True:  # list first: every path is decided (and checked) before anything is written
            page = client.get(f"/projects/{project}/samples", params={"offset": offset, "limit": 200})
            samples += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
        with _progress() as bar:
            task = bar.add_task(f"downloading {len(samples)} examples", total=len(samples))

            def content(sample: dict, blob: str | None = None) -> bytes:
                """A sample's file, or a file its annotation names (a mask's PNG)."""
                if blob is not None:
                    return client.download(f"/projects/{project}/samples/{sample['id']}/blobs/{blob}")
                data = client.download(f"/projects/{project}/samples/{sample['id']}/image")
                bar.advance(task)
                return data

            written = target.write_files(out_dir, samples, content, format=box_format)
    except DyntrainError as exc:  # the server's (ApiError) and the writers' refusals
        _fail(exc)
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot write into {out_dir}: {exc}")
        raise typer.Exit(1)
    console.print(f"exported {written} examples to {out_dir}")


@app.command()
def train(
    project: str = typer.Argument(..., help="Project name."),
    wait: bool = typer.Option(False, "--wait", help="Follow the run with a progress bar until it ends."),
    url: str = URL,
):
    """Train now on the newest data (skips the sliding delay)."""
    client = _client(url)
    try:
        accepted = client.post(f"/projects/{project}/train")
        console.print(f"job {accepted['job_id']} {accepted['status']}")
        if wait:
            job = _follow(client, project, accepted["job_id"])
            if job["status"] != "succeeded":
                console.print(f"[red]job {job['status']}:[/red] {job.get('error') or ''}")
                raise typer.Exit(1)
            run = client.get(f"/runs/{job['run_id']}")
            gate = (run["result"] or {}).get("gate") or {}
            headline = tasks.get(((run["result"] or {}).get("gate") or {}).get("task")
                                 or client.get(f"/projects/{project}")["task"]).target.headline
            if run["accuracy"] is not None:
                scores = f"accuracy {run['accuracy']:.3f} macro-F1 {run['macro_f1']:.3f}"
            elif run.get("r2") is not None or run.get("mae") is not None:  # regression: no classes
                scores = f"R² {_num(run.get('r2'))} MAE {_num(run.get('mae'))}"
            else:  # boxes, masks …: the target's own headline score
                scores = f"{headline} {_num(((run['result'] or {}).get('metrics') or {}).get(headline))}"
            console.print(f"run {run['id']}: {run['learner']} {scores} → model v{run['model_version']} "
                          f"{'[green]in service[/green]' if gate.get('promoted') else '[yellow]kept back[/yellow]'}"
                          f" ({gate.get('reason', '')})")
    except ApiError as exc:
        _fail(exc)


def _follow(client: Client, project: str, job_id: int) -> dict:
    """Poll a job, drawing its stage, percent and ETA, until it ends."""
    import time

    with _progress() as bar:
        task = bar.add_task("waiting", total=100)
        while True:
            job = client.get(f"/projects/{project}/jobs/{job_id}")
            p = job["progress"] or {}
            stage = p.get("stage") or job["status"]
            bar.update(task, completed=p.get("percent", 0),
                       description=f"{stage}" + (f" · {p['candidate']}" if p.get("candidate") else ""))
            if job["status"] in ("succeeded", "failed", "cancelled"):
                if job["status"] == "succeeded":
                    bar.update(task, completed=100)
                return job
            time.sleep(0.5)


@app.command()
def runs(project: str = typer.Argument(..., help="Project name."), url: str = URL):
    """Training history: learner, scores, model version and the gate's decision."""
    try:
        items = _client(url).get(f"/projects/{project}/runs")
    except ApiError as exc:
        _fail(exc)
    table = Table("run", "data v", "status", "learner", "accuracy", "macro-F1", "model", "gate", "seconds")
    for r in items:
        gate = r.get("gate") or {}
        table.add_row(str(r["id"]), str(r["dataset_version"]), r["status"], r["learner"] or "-",
                      _num(r["accuracy"]), _num(r["macro_f1"]), f"v{r['model_version']}" if r["model_version"] else "-",
                      "promoted" if gate.get("promoted") else ("kept back" if gate else "-"),
                      _num(r["seconds"], 1))
    out.print(table)


def _num(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


@app.command("export-model")
def export_model(
    project: str = typer.Argument(..., help="Project name."),
    out_file: Path = typer.Option(..., "--out", help="Where to write the .onnx file."),
    version: Optional[int] = typer.Option(None, "--version", help="Model version (default: the one in service)."),
    url: str = URL,
):
    """Download a model as one ONNX file (uint8 NHWC 224x224 RGB in, probabilities out)."""
    client = _client(url)
    try:
        if version is None:
            serving = [m for m in client.get(f"/projects/{project}/models") if "production" in m["aliases"]]
            if not serving:
                console.print(f"[red]error:[/red] project {project!r} has no model in service; pass --version")
                raise typer.Exit(1)
            version = serving[0]["version"]
        out_file.write_bytes(client.download(f"/projects/{project}/models/{version}/file"))
    except ApiError as exc:
        _fail(exc)
    console.print(f"wrote model v{version} to {out_file}")


@app.command()
def predict(
    project: str = typer.Argument(..., help="Project name."),
    files: Optional[list[Path]] = typer.Argument(None, help="Image files (image projects), or files of texts, "
                                                "one per line (text projects)."),
    text: Optional[list[str]] = typer.Option(None, "--text", help="A text to classify (repeatable)."),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="A .csv (header row) or .jsonl file of table rows "
                                            "(tabular projects); a .csv/.jsonl argument in a tabular project works too."),
    target: Optional[str] = typer.Option(None, "--target", help="Tables: a column to leave out (e.g. the known answer)."),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON document."),
    version: Optional[int] = typer.Option(None, "--version", help="A specific model version."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Write the files an answer carries into this "
                                           "folder (semantic segmentation: <image stem>.png, the mask as an "
                                           "indexed PNG whose palette holds the class colours)."),
    url: str = URL,
):
    """Classify images, texts or table rows (or predict a number, boxes, a mask) with the model in service."""
    client, params = _client(url), {"version": version} if version else None
    files = files or []
    try:
        task = client.get(f"/projects/{project}")["task"] if (files or csv_file) and not text else None
        if csv_file is not None or _upload_format(task) == "rows":
            return _predict_table(client, project, ([csv_file] if csv_file else []) + files, target, params, as_json)
        if text or (files and _upload_format(task) == "texts"):
            lines = list(text or []) + [line for f in files for line in f.read_text().splitlines() if line.strip()]
            result = client.post(f"/projects/{project}/predict/texts", params=params, json={"texts": lines})
            files = [Path(line[:40]) for line in lines]
        elif files:
            result = client.post(f"/projects/{project}/predict", params=params,
                                 files=[("files", (f.name, f.read_bytes())) for f in files])
        else:
            console.print("[red]error:[/red] give image files, text files, or --text")
            raise typer.Exit(1)
    except ApiError as exc:
        _fail(exc)
    except OSError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1)
    if out_dir is not None:
        _write_prediction_files(client, project, task, out_dir, files, result["predictions"])
    if as_json:
        out.print_json(json.dumps(result))
        return
    _print_predictions(client, project, task, "input", [str(f) for f in files], result["predictions"])


def _write_prediction_files(client: Client, project: str, task: str | None, out_dir: Path, files: list[Path],
                            predictions: list[dict]) -> None:
    """The files each answer carries (a mask PNG), as ``<input stem><suffix>`` in ``out_dir``."""
    target = tasks.get(task or client.get(f"/projects/{project}")["task"]).target
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for f, p in zip(files, predictions):
            for suffix, data in ({} if "error" in p else target.prediction_files(p)).items():
                (out_dir / f"{Path(f).stem}{suffix}").write_bytes(data)
                console.print(f"wrote {out_dir / (Path(f).stem + suffix)}")
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot write into {out_dir}: {exc}")
        raise typer.Exit(1)


def _print_predictions(client: Client, project: str, task: str | None, first: str, names: list[str],
                       predictions: list[dict]) -> None:
    """One table row per prediction; the project's task target says what an answer holds."""
    kind = tasks.get(task or client.get(f"/projects/{project}")["task"]).target
    columns = kind.cli_columns()
    table = Table(first, *columns)
    for name, p in zip(names, predictions):
        if "error" in p:
            table.add_row(name, f"[red]{p['error']}[/red]", *["-"] * (len(columns) - 1))
        else:
            table.add_row(name, *kind.cli_cells(p))
    out.print(table)


PREDICT_CHUNK = 200


def _predict_table(client: Client, project: str, paths: list[Path], target: Optional[str], params,
                   as_json: bool) -> None:
    """Rows of CSV/JSONL files → /predict/rows. Columns the model does not take (the target,
    an id) are left out with a note, so the file used for import works as it is."""
    rows: list[dict] = []
    for path in paths:
        try:
            rows += read_table(path, max_rows=_max_csv_rows())[1]
        except Exception as exc:  # Invalid / TooLarge from the reader, OSError from the disk
            console.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
            raise typer.Exit(1)
    if not rows:
        console.print("[red]error:[/red] no rows to predict")
        raise typer.Exit(1)
    try:
        models = [m for m in client.get(f"/projects/{project}/models")
                  if (m["version"] == params["version"] if params else "production" in m["aliases"])]
        known = {c["name"] for c in ((models[0]["card"].get("input") or {}).get("columns") or [])} if models else set()
        extra = sorted({k for r in rows for k in r} - known) if known else ([target] if target else [])
        if extra:
            console.print(f"leaving out column(s) the model does not use: {', '.join(map(str, extra))}")
            rows = [{k: v for k, v in r.items() if k not in extra} for r in rows]
        result = {"predictions": []}
        for i in range(0, len(rows), PREDICT_CHUNK):  # the server takes max_files_per_request items a call
            part = client.post(f"/projects/{project}/predict/rows", params=params,
                               json={"rows": rows[i:i + PREDICT_CHUNK]})["predictions"]
            result["predictions"] += part
    except ApiError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps(result))
        return
    _print_predictions(client, project, None, "row", [str(n) for n in range(1, len(result["predictions"]) + 1)],
                       result["predictions"])


def _upload_format(task: str | None) -> str | None:
    """How a task's samples are sent ("files", "texts", "rows"); None for no or an unknown task
    (the server then says which tasks exist)."""
    try:
        return tasks.get(task).modality.upload_format if task else None
    except DyntrainError:
        return None


@app.command()
def watch(project: str = typer.Argument(..., help="Project name."), url: str = URL):
    """Follow a project's live events (training progress, promotions) until Ctrl-C."""
    client = _client(url)
    try:
        with _progress() as bar:
            task = bar.add_task("idle", total=100)
            for event in client.events(project):
                data = event["data"]
                if event["type"] == "job.progress":
                    bar.update(task, completed=data.get("percent", 0),
                               description=f"job {data['job_id']}: {data.get('stage')}"
                               + (f" · {data['candidate']}" if data.get("candidate") else ""))
                else:
                    bar.console.print(f"{event['at'][11:19]} {event['type']}: "
                                      + ", ".join(f"{k}={v}" for k, v in data.items() if k != "kpis"))
    except ApiError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def promote(project: str = typer.Argument(..., help="Project name."),
            version: int = typer.Argument(..., help="Model version to serve."), url: str = URL):
    """Serve a given model version (moves the production alias)."""
    try:
        r = _client(url).post(f"/projects/{project}/models/{version}/promote")
    except ApiError as exc:
        _fail(exc)
    console.print(f"{project}: now serving v{r['production']} (was v{r['previous']})")


@app.command()
def rollback(project: str = typer.Argument(..., help="Project name."), url: str = URL):
    """Serve the model version that served before the current one."""
    try:
        r = _client(url).post(f"/projects/{project}/rollback")
    except ApiError as exc:
        _fail(exc)
    console.print(f"{project}: rolled back, now serving v{r['production']}")


@app.command()
def doctor(project: str = typer.Argument(..., help="Project name."), url: str = URL):
    """Check a project's data: too few examples, imbalance, duplicates, conflicting or likely wrong labels,
    tiny or corrupt images — with what to do about each."""
    try:
        with console.status("checking the data…"):
            report = _client(url).get(f"/projects/{project}/health")
    except ApiError as exc:
        _fail(exc)
    findings = report["findings"]
    if not findings:
        out.print(f"[green]no problems found[/green] in {report['samples']} samples")
        return
    colour = {"error": "red", "warning": "yellow", "info": "blue"}
    for f in findings:
        out.print(f"[{colour.get(f['severity'], 'white')}]{f['severity']}[/] {f['kind']}: {f['message']}")
        if f["sample_ids"]:
            ids = ", ".join(str(i) for i in f["sample_ids"][:12])
            out.print(f"   samples: {ids}{' …' if len(f['sample_ids']) > 12 else ''}")
        out.print(f"   what to do: {f['advice']}")
    if not report["checked_mislabelling"]:
        out.print("[dim](likely-mislabelled check skipped: backbone features unavailable)[/dim]")
    if any(f["severity"] == "error" for f in findings):
        raise typer.Exit(2)


from . import cli_access  # noqa: E402,F401 - registers `tokens` and `audit`
from . import cli_admin  # noqa: E402,F401 - registers `gc`, `backup` and `restore`
from . import cli_events  # noqa: E402,F401 - registers `events tail`
from . import cli_mlflow  # noqa: E402,F401 - registers `mlflow sync`


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
