"""The ``mlflow-workspace`` command group; verb modules register on it.

The plugin's own input errors (``MlflowException``: workspace config, compute settings, job files,
environment settings) reach the user as one ``Error: ...`` line and exit code 1, not a traceback.
"""

from __future__ import annotations

import os
import sys

import click
from mlflow.exceptions import MlflowException

PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


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
    quiet_progress_bars()


def quiet_progress_bars() -> None:
    """No progress bars in output that is not a terminal (logs, pipes, CI): MLflow's artifact bars
    follow ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``, which an explicit setting keeps deciding."""
    if PROGRESS_BAR_ENV not in os.environ and not sys.stderr.isatty():
        os.environ[PROGRESS_BAR_ENV] = "false"


def _register() -> None:
    from mlflow_workspace_plugin.cli import (
        component_commands,
        endpoint_commands,
        init_command,
        job_commands,
        sync_command,
        workspace_commands,
    )

    for module in (workspace_commands, init_command, sync_command, job_commands, endpoint_commands,
                   component_commands):
        for command in module.COMMANDS:
            main.add_command(command)
    main.add_command(__import__("mlflow_workspace_plugin.cli.environment_commands", fromlist=["_"]).environment)


_register()
from mlflow_workspace_plugin.cli import data_commands  # noqa: E402,F401  (registers `data`)
