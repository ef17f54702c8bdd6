"""MLflow's default store, when no tracking URI is set, and the stray ``mlflow.db`` it leaves.

``mlflow run --experiment-name X`` resolves X in MLflow's default store (``sqlite:///mlflow.db``
in the current folder) before any backend runs, creating that file. The ``azureml`` backend sends
such runs to the workspace instead, so a database this process created holding no runs is
removed again.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlflow import MlflowClient
from mlflow.entities import ViewType

from mlflow_workspace_plugin import process_tree


def experiment_name(tracking_uri: str, experiment_id: str) -> str | None:
    """Name of ``experiment_id`` in MLflow's default store (None for the Default experiment)."""
    if str(experiment_id) == "0":
        return None
    return MlflowClient(tracking_uri).get_experiment(str(experiment_id)).name


def remove_if_created_here(tracking_uri: str) -> bool:
    """Delete the default SQLite store if this process created it and it holds no runs."""
    parts = urlsplit(tracking_uri)
    if parts.scheme != "sqlite":
        return False
    path = Path(unquote(parts.path))
    if path.name != "mlflow.db" or not path.is_file() or path.stat().st_mtime < process_started_at() - 1:
        return False
    client = MlflowClient(tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if client.search_runs(ids, run_view_type=ViewType.ALL, max_results=1):
        return False
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    mlruns = path.parent / "mlruns"
    if mlruns.is_dir() and not any(mlruns.rglob("*.*")):
        for folder in sorted(mlruns.rglob("*"), reverse=True):
            if folder.is_dir():
                folder.rmdir()
        mlruns.rmdir()
    return True


def process_started_at() -> float:
    """Start time of this process (epoch seconds; now when the system does not say)."""
    started = process_tree.started_at()
    return time.time() if started is None else started
