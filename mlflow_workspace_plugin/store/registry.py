"""``mlflow.model_registry_store`` entry point for ``azureml://`` registry URIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow_workspace_plugin.store.rest import WorkspaceRegistryStore


def registry_store_builder(store_uri: str, tracking_uri: str | None = None) -> WorkspaceRegistryStore:
    """Build MLflow's REST model registry store against the workspace REST base."""
    from mlflow_workspace_plugin.store.rest import WorkspaceRegistryStore
    from mlflow_workspace_plugin.uri import parse_workspace_uri

    return WorkspaceRegistryStore(parse_workspace_uri(store_uri))
