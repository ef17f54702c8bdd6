"""``mlflow-workspace data create / list / show / archive / restore``: the workspace's data assets.

The same YAML as ``az ml data create -f data.yml``; see :mod:`mlflow_workspace_plugin.assets.data`.
Importing this module registers the ``data`` group on the ``mlflow-workspace`` command.
"""

from __future__ import annotations

import json

import click

from mlflow_workspace_plugin.cli.main import main

_CONFIG_OPTION = click.option("--config", "config_path", default=None, type=click.Path(),
                              help="workspace config file (default: discovered as Workspace.from_config does)")


def _tracking_uri(config_path: str | None) -> str:
    from mlflow_workspace_plugin.workspace import Workspace

    return Workspace.from_config(config_path).get_mlflow_tracking_uri()


@click.group()
def data() -> None:
    """Data assets of the workspace (azureml:<name>:<version> in job inputs)."""


@data.command()
@click.option("--file", "-f", "file", required=True, type=click.Path(dir_okay=False),
              help="Azure ML data YAML (name, version, type, path, description, tags)")
@click.option("--name", default=None, help="asset name (overrides the file's)")
@click.option("--version", default=None, help="asset version (overrides the file's; default: next integer)")
@_CONFIG_OPTION
def create(file: str, name: str | None, version: str | None, config_path: str | None) -> None:
    """Create a data asset version; a local path is uploaded into the workspace."""
    from mlflow_workspace_plugin.assets.data import create_data_asset, describe

    asset = create_data_asset(file, _tracking_uri(config_path), name=name, version=version)
    click.echo(json.dumps(describe(asset), indent=1))


@data.command("list")
@click.option("--name", "-n", default=None, help="only the versions of this asset")
@click.option("--include-archived", is_flag=True, help="also list archived versions")
@_CONFIG_OPTION
def list_data(name: str | None, include_archived: bool, config_path: str | None) -> None:
    """List data assets (newest version first), as name:version type path."""
    from mlflow_workspace_plugin.assets.store import AssetStore

    store = AssetStore(_tracking_uri(config_path))
    versions = store.list("data", name, include_archived=include_archived)
    if not versions:
        click.echo("no data assets" + (f" named {name!r}" if name else ""))
        return
    for asset in versions:
        asset = store.get("data", asset.name, asset.version)
        flag = "  (archived)" if asset.archived else ""
        click.echo(f"{asset.name}:{asset.version:<6} {asset.spec.get('type', ''):<10} {_shown_path(asset)}{flag}")


@data.command()
@click.argument("reference")
@_CONFIG_OPTION
def show(reference: str, config_path: str | None) -> None:
    """Show one version as JSON: REFERENCE is name, name:version, azureml:name:version or azureml:name@latest."""
    from mlflow_workspace_plugin.assets.data import describe, resolve_data

    click.echo(json.dumps(describe(resolve_data(_reference(reference), _tracking_uri(config_path))), indent=1))


@data.command()
@click.argument("name")
@click.option("--version", "-v", default=None, help="only this version (default: every version)")
@_CONFIG_OPTION
def archive(name: str, version: str | None, config_path: str | None) -> None:
    """Archive a data asset (hidden from list and @latest; still usable by exact version)."""
    _set_archived(name, version, config_path, True)


@data.command()
@click.argument("name")
@click.option("--version", "-v", default=None, help="only this version (default: every version)")
@_CONFIG_OPTION
def restore(name: str, version: str | None, config_path: str | None) -> None:
    """Restore an archived data asset."""
    _set_archived(name, version, config_path, False)


def _set_archived(name: str, version: str | None, config_path: str | None, archived: bool) -> None:
    from mlflow_workspace_plugin.assets.store import AssetStore

    changed = AssetStore(_tracking_uri(config_path)).set_archived("data", name, version, archived)
    word = "archived" if archived else "restored"
    click.echo(f"{word} {', '.join(v.reference for v in changed)}")


def _reference(text: str) -> str:
    if text.startswith("azureml:"):
        return text
    return f"azureml:{text}" if (":" in text or "@" in text) else f"azureml:{text}@latest"


def _shown_path(asset) -> str:
    from mlflow_workspace_plugin.uri import redact

    stored = " (stored in the workspace)" if asset.spec.get("stored_in_workspace") else ""
    return redact(asset.spec.get("path", "")) + stored


main.add_command(data)
