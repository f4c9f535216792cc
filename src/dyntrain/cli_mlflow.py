"""``dyntrain mlflow sync``: back-fill a project's runs into MLflow (DYNTRAIN_MLFLOW_URI)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli import app, console

mlflow_app = typer.Typer(help="Runs and models in MLflow (DYNTRAIN_MLFLOW_URI).", no_args_is_help=True)
app.add_typer(mlflow_app, name="mlflow")


@mlflow_app.command("sync")
def sync(
    project: str = typer.Argument(..., help="Project name."),
    uri: str = typer.Option(..., "--uri", envvar="DYNTRAIN_MLFLOW_URI",
                            help="The tracking store: http://host:5000 or sqlite:///mlflow.db (env DYNTRAIN_MLFLOW_URI)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                            help="The data dir (default: env DYNTRAIN_DATA_DIR, else ./dyntrain-data); "
                                                 "DYNTRAIN_DATABASE_URL applies as for serve."),
):
    """Export every succeeded run of PROJECT not in MLflow yet (oldest first) and point the
    registered model's ``production`` alias where dyntrain's is. Safe to repeat: nothing twice."""
    from .kernel.config import Settings
    from .kernel.core import Core
    from .kernel.errors import DyntrainError
    from .ops import mlflow_log

    core = Core.create(Settings(**({"data_dir": data_dir} if data_dir is not None else {})))
    try:
        done = mlflow_log.sync(core, project, uri)
    except DyntrainError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        core.db.dispose()
    new = [d for d in done if not d["skipped"]]
    for d in new:
        console.print(f"run {d['run']} → MLflow run {d['mlflow_run_id']}, model version {d['registered_version']}")
    console.print(f"{len(new)} run(s) exported, {len(done) - len(new)} already there")
