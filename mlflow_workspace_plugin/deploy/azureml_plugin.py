"""``mlflow.deployments`` plugin for ``azureml://`` targets (a cloud workspace's tracking URI)."""

from __future__ import annotations

from mlflow_workspace_plugin.deploy.client import WorkspaceDeploymentClient
from mlflow_workspace_plugin.deploy.errors import one_line_in_cli
from mlflow_workspace_plugin.deploy.plugin_common import help_text
from mlflow_workspace_plugin.deploy.plugin_common import run_local as _run_local

__all__ = ["WorkspaceDeploymentClient", "run_local", "target_help"]


@one_line_in_cli
def run_local(name, model_uri, flavor=None, config=None):
    """Serve ``model_uri`` of the discovered workspace in the foreground until Ctrl-C."""
    return _run_local(name, model_uri, flavor, config)


def target_help() -> str:
    return help_text("azureml", "azureml://<host>/mlflow/v1.0/subscriptions/<sub>/resourceGroups/<rg>/providers/"
                                "Microsoft.MachineLearningServices/workspaces/<name>")
