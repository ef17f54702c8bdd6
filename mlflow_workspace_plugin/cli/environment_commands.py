"""``mlflow-workspace environment create / list / show``: the workspace's registered environments
(Azure ML's environment YAML; :mod:`mlflow_workspace_plugin.assets.environments`) and Azure's curated
ones known here (``list --curated``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click

_CONFIG_OPTION = click.option("--config", "config_path", default=None, type=click.Path(),
                              help="workspace config file (default: discovered as Workspace.from_config does)")


def _store(config_path: str | None):
    from mlflow_workspace_plugin.assets.store import AssetStore
    from mlflow_workspace_plugin.workspace import Workspace

    return AssetStore(Workspace.from_config(config_path).get_mlflow_tracking_uri())


@click.group()
def environment() -> None:
    """Environments jobs run in (like `az ml environment`): registered ones and Azure's curated ones."""


@environment.command()
@click.option("-f", "--file", "file_path", required=True, type=click.Path(dir_okay=False),
              help="Azure ML environment YAML (name, version, image, conda_file, build, description, tags)")
@click.option("-n", "--name", default=None, help="name (overrides the file's)")
@click.option("-v", "--version", default=None, help="version (overrides the file's; default: the next integer)")
@_CONFIG_OPTION
def create(file_path: str, name: str | None, version: str | None, config_path: str | None) -> None:
    """Register an environment in the workspace; prints it as JSON."""
    from mlflow_workspace_plugin.assets.environments import create_environment, environment_summary

    asset = create_environment(file_path, store=_store(config_path), name=name, version=version)
    click.echo(json.dumps(environment_summary(asset), indent=1))


@environment.command("list")
@click.option("-n", "--name", default=None, help="list the versions of this environment")
@click.option("--curated", is_flag=True, help="list Azure's curated environments known here instead")
@_CONFIG_OPTION
def list_environments(name: str | None, curated: bool, config_path: str | None) -> None:
    """Registered environments (newest version of each name, or every version of --name)."""
    if curated:
        _list_curated(config_path)
        return
    versions = _store(config_path).list("environment", name)
    if name is None:
        newest: dict[str, object] = {}
        for asset in versions:
            newest.setdefault(asset.name, asset)
        versions = list(newest.values())
    for asset in versions:
        created = datetime.fromtimestamp(asset.created_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{asset.reference}\t{created}\t{asset.description or ''}".rstrip())


@environment.command()
@click.option("-n", "--name", required=True, help="the environment's name")
@click.option("-v", "--version", default=None, help="a version (default: --label latest)")
@click.option("-l", "--label", default=None, type=click.Choice(["latest"]), help="latest: the newest version")
@_CONFIG_OPTION
def show(name: str, version: str | None, label: str | None, config_path: str | None) -> None:
    """One registered environment (or a curated one, by its AzureML- name) as JSON."""
    from mlflow_workspace_plugin.assets.environments import environment_summary
    from mlflow_workspace_plugin.environments import curated as curated_table

    if version is not None and label is not None:
        raise click.UsageError("give --version or --label, not both")
    canonical, spelled_curated = curated_table.canonical_name(name)
    if spelled_curated:
        entry = curated_table.lookup(canonical, *_config(config_path))
        if entry is None:
            raise click.ClickException(f"Curated environment {name!r} is not known here; "
                                       "see `mlflow-workspace environment list --curated`")
        click.echo(json.dumps({"name": f"AzureML-{entry.name}", "packages": list(entry.packages),
                               "python": entry.python, "description": entry.description,
                               "source": entry.origin, "dropped": list(entry.dropped)}, indent=1))
        return
    click.echo(json.dumps(environment_summary(_store(config_path).get("environment", name, version)), indent=1))


def _config(config_path: str | None) -> tuple[dict | None, object]:
    from mlflow_workspace_plugin.workspace import Workspace, load_config_json

    workspace = Workspace.from_config(config_path)
    if workspace.config_path is None:
        return None, None
    return load_config_json(workspace.config_path), workspace.config_path


def _list_curated(config_path: str | None) -> None:
    from mlflow_workspace_plugin.environments import curated as curated_table

    config, path = _config(config_path)
    source = curated_table.table_source()
    click.echo(f"# from {source['repository']} {source['folder']} at {source['commit'][:12]} ({source['date']})")
    for name in curated_table.known_names(config):
        entry = curated_table.lookup(name, config, path)
        where = "workspace config" if entry.origin.startswith("workspace config") else "azureml-assets"
        click.echo(f"azureml:AzureML-{name}@latest\tpython {entry.python or '?'}\t{len(entry.packages)} packages"
                   f"\t{where}")


COMMANDS = (environment,)
