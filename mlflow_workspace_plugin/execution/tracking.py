"""Where a run is tracked: the caller's tracking URI, or the workspace's when none is set."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.execution.request import RunRequest

DEFAULT_EXPERIMENT_ID = "0"
# the experiment kind MLflow 3's UI reads (checked against MLflow 3.17: its experiment-kind selector
# writes this tag; "custom_model_development" is its "machine learning" kind)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT_TAGS = {EXPERIMENT_KIND_TAG: "custom_model_development"}


def planned_tracking_uri(request: RunRequest, workspace) -> str:
    """The tracking URI the run will use (no global state changes, no folder created)."""
    if request.tracking_uri:
        return request.tracking_uri
    if workspace.is_local:
        return local_workspace.local_tracking_uri(workspace.local_path)
    return workspace.scope.tracking_uri


def resolve_tracking(request: RunRequest, workspace) -> tuple[str, str]:
    """(tracking URI, experiment id) of the run. With no tracking URI in the request, the
    workspace's becomes MLflow's tracking URI (so MLflow's own follow-up calls land there too)."""
    if request.tracking_uri is None:
        uri = workspace.get_mlflow_tracking_uri()
        mlflow.set_tracking_uri(uri)
    else:
        uri = request.tracking_uri
    client = MlflowClient(uri)
    if request.experiment_name and not request.experiment_id:
        existing = client.get_experiment_by_name(request.experiment_name)
        return uri, existing.experiment_id if existing else create_training_experiment(client, request.experiment_name)
    return uri, str(request.experiment_id or DEFAULT_EXPERIMENT_ID)


def create_training_experiment(client: MlflowClient, name: str) -> str:
    """Create experiment ``name`` tagged as model training, so MLflow 3's UI opens it on the runs view
    (not the GenAI traces page); returns its id."""
    return client.create_experiment(name, tags=TRAINING_EXPERIMENT_TAGS)
