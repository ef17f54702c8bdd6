"""``mlflow-workspace info / uri / ui``: which workspace applies, its tracking URI, its UI."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.workspace import Workspace

_CONFIG_OPTION = click.option("--config", "config_path", default=None, type=click.Path(),
                              help="workspace config file (default: discovered as Workspace.from_config does)")


@click.command()
@_CONFIG_OPTION
def info(config_path: str | None) -> None:
    """Print which workspace applies, its tracking URI and compute targets."""
    ws = Workspace.from_config(config_path)
    click.echo(f"workspace:    {ws.workspace_name} ({'local' if ws.is_local else 'cloud'})")
    click.echo(f"config file:  {ws.config_path or '(none: embedded local default)'}")
    click.echo(f"tracking URI: {ws.get_mlflow_tracking_uri()}")
    if ws.is_local:
        click.echo(f"database:     {ws.local_path / local_workspace.DB_FILE}")
        click.echo(f"artifacts:    {local_workspace.artifact_root(ws.local_path)}")
    targets = ", ".join(["local", *(f"{t.name} ({t.type})" for t in ws.compute_targets.values())])
    click.echo(f"compute:      {targets}")


@click.command()
@_CONFIG_OPTION
def uri(config_path: str | None) -> None:
    """Print the tracking URI (e.g. export MLFLOW_TRACKING_URI=$(mlflow-workspace uri))."""
    click.echo(Workspace.from_config(config_path).get_mlflow_tracking_uri())


@click.command(context_settings={"ignore_unknown_options": True})
@_CONFIG_OPTION
@click.argument("ui_args", nargs=-1, type=click.UNPROCESSED)
def ui(config_path: str | None, ui_args: tuple[str, ...]) -> None:
    """Start MLflow's UI on the local workspace (extra arguments go to `mlflow ui`)."""
    ws = Workspace.from_config(config_path)
    if not ws.is_local:
        raise click.ClickException(
            f"{ws.workspace_name!r} is a cloud workspace: open it in its studio; `mlflow ui` serves local stores only"
        )
    command = [sys.executable, "-m", "mlflow", "ui",
               "--backend-store-uri", local_workspace.database_uri(ws.local_path),
               "--default-artifact-root", local_workspace.artifact_root(ws.local_path).as_uri(),
               *ui_args]
    click.echo(" ".join(command), err=True)
    raise SystemExit(subprocess.call(command, env=os.environ.copy()))


COMMANDS = (info, uri, ui)
