"""``mlflow.tracking_store`` entry point for ``azureml://`` tracking URIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow_workspace_plugin.store.rest import WorkspaceTrackingStore


def tracking_store_builder(store_uri: str, artifact_uri: str | None = None) -> WorkspaceTrackingStore:
    """Build MLflow's REST tracking store against the workspace REST base (bad URI -> clear error).

    Building it starts reliable logging for the workspace, including a background replay of
    journals that earlier processes left behind.
    """
    from mlflow_workspace_plugin.store.rest import WorkspaceTrackingStore
    from mlflow_workspace_plugin.uri import parse_workspace_uri

    return WorkspaceTrackingStore(parse_workspace_uri(store_uri), store_uri)
