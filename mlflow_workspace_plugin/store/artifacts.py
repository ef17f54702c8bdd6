"""``mlflow.artifact_repository`` entry point for the ``mlflow-artifacts`` scheme.

A tracking server started with ``--serve-artifacts`` hands out ``mlflow-artifacts:/<path>``
artifact URIs, which the client resolves against the *tracking URI's* host. MLflow's own
``MlflowArtifactsRepository`` only accepts ``http(s)`` tracking URIs, so this factory routes:

* tracking URI ``azureml://...``  -> :class:`~.artifact_repo.WorkspaceArtifactRepository`
  (``<workspace REST base>/api/2.0/mlflow-artifacts/artifacts/<path>`` with the workspace token);
* anything else                   -> MLflow's ``MlflowArtifactsRepository``, unchanged.

Every path that ends in an ``mlflow-artifacts:`` URI (``runs:/``, ``models:/``, logged models,
model versions, ``mlflow.artifacts.download_artifacts``) goes through this one hook.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

SCHEME = "mlflow-artifacts"


def mlflow_artifacts_repository(
    artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> Any:
    """Artifact repository for an ``mlflow-artifacts:`` URI, resolved for the tracking URI."""
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository
    from mlflow.tracking._tracking_service.utils import get_tracking_uri

    from mlflow_workspace_plugin.uri import SCHEME as WORKSPACE_SCHEME

    effective = tracking_uri or get_tracking_uri()
    if isinstance(effective, str) and urlsplit(effective).scheme == WORKSPACE_SCHEME:
        from mlflow_workspace_plugin.store.artifact_repo import WorkspaceArtifactRepository

        return WorkspaceArtifactRepository(artifact_uri, tracking_uri=effective, registry_uri=registry_uri)
    return MlflowArtifactsRepository(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
