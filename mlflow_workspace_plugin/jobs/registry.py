"""Where jobs are tracked and how a job is found again by its name (run tag ``azureml.job.name``).

Jobs go where the projects backend sends runs: MLflow's tracking URI when one is set
(``MLFLOW_TRACKING_URI`` / ``mlflow.set_tracking_uri``), else the workspace of ``Workspace.from_config()``.
A job's name is unique across the workspace: every experiment (deleted ones too) is searched.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.jobs.job_names import JOB_NAME_TAG
from mlflow_workspace_plugin.workspace import Workspace

MAX_LISTED = 1000


def explicit_tracking_uri() -> str | None:
    """MLflow's tracking URI if the user set one, else None (the workspace's is used)."""
    return mlflow.get_tracking_uri() if is_tracking_uri_set() else None


def planned_uri(workspace: Workspace) -> str:
    """The tracking URI jobs of ``workspace`` use, without creating anything."""
    explicit = explicit_tracking_uri()
    if explicit:
        return explicit
    if workspace.is_local:
        return local_workspace.local_tracking_uri(workspace.local_path)
    return workspace.scope.tracking_uri


def store_exists(uri: str) -> bool:
    """False when ``uri`` is a local store that was never created (so it holds no jobs yet)."""
    parts = urlsplit(uri)
    if parts.scheme == local_workspace.LOCAL_SCHEME:
        return (local_workspace.folder_from_uri(uri) / local_workspace.DB_FILE).exists()
    if parts.scheme == "sqlite" and uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).exists()
    return True


def jobs_client(workspace: Workspace | None = None) -> MlflowClient:
    """A client on the store holding the jobs (the workspace's folder is created if needed)."""
    workspace = workspace or Workspace.from_config()
    explicit = explicit_tracking_uri()
    return MlflowClient(explicit or workspace.get_mlflow_tracking_uri())


def find_job(client: MlflowClient, name: str) -> Run | None:
    """The run of job ``name`` (any experiment, deleted ones included), or None."""
    runs = _search(client, f"tags.`{JOB_NAME_TAG}` = '{_quoted(name)}'", max_results=1)
    return runs[0] if runs else None


def get_job(client: MlflowClient, name: str) -> Run:
    """The run of job ``name``; an error naming the store when there is none."""
    run = find_job(client, name)
    if run is None:
        raise MlflowException(f"No job named {name!r} in the workspace at {client.tracking_uri}; "
                              "`mlflow-workspace job list` shows the jobs there")
    return run


def list_jobs(client: MlflowClient, experiment_name: str | None = None, max_results: int = 100) -> list[Run]:
    """Top-level jobs, newest first, optionally of one experiment (an unknown experiment is an
    error). A sweep's trials and a pipeline's steps are listed by ``job show`` of the sweep or
    pipeline, not here (as in Azure)."""
    experiment_ids = None
    if experiment_name is not None:
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            known = ", ".join(sorted(e.name for e in client.search_experiments())) or "(none)"
            raise MlflowException(f"No experiment named {experiment_name!r}; experiments: {known}")
        experiment_ids = [experiment.experiment_id]
    runs = _search(client, f"tags.`{JOB_NAME_TAG}` != ''", max_results=max_results,
                   experiment_ids=experiment_ids, view=ViewType.ACTIVE_ONLY)
    return [run for run in runs if "azureml.sweep.trial_index" not in run.data.tags
            and "azureml.pipeline.step" not in run.data.tags]


def _search(client: MlflowClient, filter_string: str, *, max_results: int,
            experiment_ids: list[str] | None = None, view: int = ViewType.ALL) -> list[Run]:
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=view,
                                                                             max_results=MAX_LISTED)]
    if not experiment_ids:
        return []
    return list(client.search_runs(experiment_ids, filter_string=filter_string, run_view_type=view,
                                   max_results=max_results, order_by=["attributes.start_time DESC"]))


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")
