"""``mlflow-workspace init --from <folder>``: a starter workspace config for a folder of Azure ML job files.

Every compute name the files use (``compute: azureml:cpu-cluster``, a pipeline's
``settings.default_compute`` / ``jobs.<step>.compute``, a sweep's ``trial.compute``) becomes a
``{"type": "local"}`` target of a local workspace, so the files run unchanged on this machine; point a
name at a Ray cluster later by editing its entry (``{"type": "ray", "address": ...}``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.workspace import LOCAL_COMPUTE, starter_config, write_config


@click.command()
@click.option("--from", "folder", required=True, type=click.Path(),
              help="folder of Azure ML job YAML files (read recursively)")
@click.option("--config", "config_path", default="config.json", show_default=True, type=click.Path(dir_okay=False),
              help="where to write the workspace config")
@click.option("--local-path", default=None, type=click.Path(file_okay=False),
              help="the workspace's folder (default: the local workspace in use, $MLFLOW_WORKSPACE_HOME or "
                   "~/.mlflow-workspace, so earlier runs stay visible)")
@click.option("--force", is_flag=True, help="replace an existing config file")
def init(folder: str, config_path: str, local_path: str | None, force: bool) -> None:
    """Write a workspace config mapping every compute name of the job files in FOLDER to this machine."""
    from mlflow_workspace_plugin.jobs.compute_scan import scan_compute_names

    if os.path.lexists(config_path) and not force:  # before reading anything
        raise click.ClickException(f"{Path(config_path).absolute()} already exists; keep it or use --force")
    scan = scan_compute_names(folder)
    for warning in scan.warnings:
        click.echo(f"mlflow-workspace: warning: {warning}", err=True)
    if not scan.uses:
        raise click.ClickException(
            f"no compute names found in the {scan.files_read} YAML file(s) under {scan.folder} (only "
            f"'{LOCAL_COMPUTE}' or none); nothing written: jobs without a compute run on this machine already")
    workspace_folder = Path(local_path).expanduser().resolve() if local_path else local_workspace.default_home()
    compute = {name: {"type": LOCAL_COMPUTE} for name in sorted(scan.uses)}
    written = write_config(Path(config_path), starter_config(compute, workspace_folder), force=force)
    click.echo(f"wrote {written}:")
    click.echo(json.dumps(starter_config(compute, workspace_folder), indent=2))
    for name in sorted(scan.uses):
        files = scan.uses[name]
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        click.echo(f"  {name} -> this machine (used by {shown})")
    click.echo(f"Commands run in {written.parent} (or below it) use this workspace; to send a target's jobs to a "
               'Ray cluster, change its entry to {"type": "ray", "address": "http://<head>:8265"}.')


COMMANDS = (init,)
