"""``mlflow-workspace endpoint list / show / start / stop``: the workspace's online endpoints.

The same endpoints as ``mlflow deployments ... -t <tracking URI>``; keys are only printed with
``show --show-keys``.
"""

from __future__ import annotations

import json

import click

_CONFIG_OPTION = click.option("--config", "config_path", default=None, type=click.Path(),
                              help="workspace config file (default: discovered as Workspace.from_config does)")
_TARGET_OPTION = click.option("--target", "-t", "target_uri", default=None,
                              help="deployment target URI (default: the workspace's tracking URI)")


def _client(config_path: str | None, target_uri: str | None):
    from mlflow_workspace_plugin.deploy.client import WorkspaceDeploymentClient
    from mlflow_workspace_plugin.workspace import Workspace

    return WorkspaceDeploymentClient(target_uri or Workspace.from_config(config_path).get_mlflow_tracking_uri())


@click.group()
def endpoint() -> None:
    """Online endpoints of the workspace (models deployed with `mlflow deployments`)."""


@endpoint.command("list")
@_CONFIG_OPTION
@_TARGET_OPTION
@click.option("--json", "as_json", is_flag=True, help="print JSON (keys left out)")
def list_endpoints(config_path: str | None, target_uri: str | None, as_json: bool) -> None:
    """List endpoints with their state, scoring URI and deployments (name:traffic%:state)."""
    client = _client(config_path, target_uri)
    endpoints = [_without_keys(e) for e in client.list_endpoints()]
    if as_json:
        click.echo(json.dumps(endpoints, indent=1))
        return
    if not endpoints:
        click.echo(f"no endpoints in {client.target.tracking_uri}")
        return
    for item in endpoints:
        deployments = {d["name"]: d for d in client.list_deployments(endpoint=item["name"])}
        parts = [f"{name}:{item['traffic'].get(name, 0)}%:{d['state']}" for name, d in deployments.items()]
        click.echo(f"{item['name']:<20} {item['state']:<11} {item['compute']:<12} {item['scoring_uri']}  "
                   f"{' '.join(parts) or '(no deployments)'}")


@endpoint.command()
@click.argument("name")
@_CONFIG_OPTION
@_TARGET_OPTION
@click.option("--show-keys", is_flag=True, help="also print the endpoint's keys")
def show(name: str, config_path: str | None, target_uri: str | None, show_keys: bool) -> None:
    """Show an endpoint and its deployments (state, model, pid, port, restarts, log file) as JSON."""
    client = _client(config_path, target_uri)
    info = client.get_endpoint(name)
    if not show_keys:
        info = _without_keys(info)
    info["deployments"] = client.list_deployments(endpoint=name)
    click.echo(json.dumps(info, indent=1))


@endpoint.command()
@click.argument("name")
@_CONFIG_OPTION
@_TARGET_OPTION
@click.option("--delete", is_flag=True, help="also forget the endpoint (its deployments, keys and logs)")
def stop(name: str, config_path: str | None, target_uri: str | None, delete: bool) -> None:
    """Stop a local endpoint's processes (and free its ports); `start` brings it back."""
    client = _client(config_path, target_uri)
    if delete:
        client.delete_endpoint(name)
        click.echo(f"endpoint {name} deleted")
    else:
        client.stop_endpoint(name)
        click.echo(f"endpoint {name} stopped")


@endpoint.command()
@click.argument("name")
@_CONFIG_OPTION
@_TARGET_OPTION
def start(name: str, config_path: str | None, target_uri: str | None) -> None:
    """Start a stopped local endpoint again; waits until its deployments answer."""
    info = _client(config_path, target_uri).start_endpoint(name)
    click.echo(f"endpoint {name} {info['state']} at {info['scoring_uri']}")


def _without_keys(info: dict) -> dict:
    return {k: v for k, v in info.items() if k != "keys"}


COMMANDS = (endpoint,)
