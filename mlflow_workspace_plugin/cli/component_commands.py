"""``mlflow-workspace component create / list / show``: command components registered in the workspace
(like ``az ml component``), used by pipeline steps as ``azureml:<name>:<version>`` or ``@latest``."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def component() -> None:
    """Register command components in the workspace and look at them (like `az ml component`)."""


@component.command()
@click.option("-f", "--file", "file_path", required=True, type=click.Path(dir_okay=False),
              help="the component's YAML file")
@click.option("-n", "--name", default=None, help="the component's name (default: the file's name)")
@click.option("-v", "--version", default=None, help="its version (default: the file's, else the next number)")
def create(file_path: str, name: str | None, version: str | None) -> None:
    """Register a component from its YAML file; its code folder is stored with it."""
    from mlflow_workspace_plugin.jobs.pipeline.registered import create_component

    asset = create_component(Path(file_path), name=name, version=version)
    click.echo(json.dumps({"name": asset.name, "version": asset.version, "reference": asset.reference}, indent=2))


@component.command(name="list")
@click.option("-n", "--name", default=None, help="only the versions of this component")
def list_command(name: str | None) -> None:
    """List registered components, newest first."""
    from mlflow_workspace_plugin.assets.store import AssetStore

    rows = [("NAME", "VERSION", "DESCRIPTION")]
    rows += [(a.name, a.version, (a.description or "")[:60]) for a in AssetStore().list("component", name)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@component.command()
@click.option("-n", "--name", required=True)
@click.option("-v", "--version", default=None, help="default: the latest")
def show(name: str, version: str | None) -> None:
    """Show a registered component (JSON)."""
    from mlflow_workspace_plugin.assets.store import AssetStore

    asset = AssetStore().get("component", name, version)
    click.echo(json.dumps({"name": asset.name, "version": asset.version, "reference": asset.reference,
                           "archived": asset.archived, "spec": asset.spec}, indent=2, default=str))


COMMANDS = (component,)
