"""The ``mlflow-workspace`` command group; verb modules register on it.

The plugin's own input errors (``MlflowException``: workspace config, compute settings, job files,
environment settings) reach the user as one ``Error: ...`` line and exit code 1, not a traceback.
"""

from __future__ import annotations

import click
from mlflow.exceptions import MlflowException


class WorkspaceGroup(click.Group):
    """A click group that turns the plugin's errors into one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MlflowException as exc:
            raise click.ClickException(exc.message) from None


@click.group(cls=WorkspaceGroup)
def main() -> None:
    """Inspect the MLflow workspace of this directory (cloud config or the local default),
    run jobs on it and serve its models."""


def _register() -> None:
    from mlflow_workspace_plugin.cli import (
        component_commands,
        endpoint_commands,
        job_commands,
        sync_command,
        workspace_commands,
    )

    for module in (workspace_commands, sync_command, job_commands, endpoint_commands, component_commands):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
