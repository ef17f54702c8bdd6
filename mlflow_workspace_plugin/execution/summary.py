"""The one line a foreground run ends with: final status, run ID, where to look at it."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from mlflow import MlflowClient

from mlflow_workspace_plugin.compute.handles import WatchedRun

UI_ADDRESS = "http://127.0.0.1:5000"
STUDIO = "https://ml.azure.com"


def run_location(client: MlflowClient, run_id: str) -> str:
    """How to open the run: its URL in ``mlflow-workspace ui`` (local workspace) or the studio."""
    uri = client.tracking_uri
    try:
        experiment_id = client.get_run(run_id).info.experiment_id
    except Exception:
        experiment_id = None
    scheme = urlsplit(uri).scheme
    if scheme in ("azureml-local", "sqlite", "file", ""):
        page = f"{UI_ADDRESS}/#/experiments/{experiment_id}/runs/{run_id}" if experiment_id else UI_ADDRESS
        return f"run `mlflow-workspace ui`, then open {page}"
    if scheme == "azureml":
        from mlflow_workspace_plugin.uri import parse_workspace_uri

        scope = parse_workspace_uri(uri)
        if scope.host.endswith(".api.azureml.ms"):
            wsid = (f"/subscriptions/{scope.subscription_id}/resourcegroups/{scope.resource_group}"
                    f"/workspaces/{scope.workspace_name}")
            return f"open {STUDIO}/runs/{run_id}?wsid={wsid}"
        return f"find it in the workspace at {scope.host} (experiment {experiment_id})"
    return f"find it at {uri} (experiment {experiment_id})"


def final_line(handle: WatchedRun) -> str:
    client = MlflowClient(handle.tracking_uri)
    status = handle.get_status()
    return f"mlflow-workspace: run {handle.run_id} {status}; to look at it, {run_location(client, handle.run_id)}"


def print_final_line(handle: WatchedRun) -> None:
    print(final_line(handle), file=sys.stderr, flush=True)
