"""MLflow store builders for ``azureml-local://`` URIs (the local workspace)."""

from __future__ import annotations

from mlflow_workspace_plugin.local_workspace import artifact_root, database_uri, folder_from_uri


def tracking_store_builder(store_uri: str, artifact_uri: str | None = None):
    """``mlflow.tracking_store`` entry point: SQLite store rooted in the workspace folder."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = folder_from_uri(store_uri)
    folder.mkdir(parents=True, exist_ok=True)
    root = artifact_uri or artifact_root(folder).as_posix()
    return SqlAlchemyStore(database_uri(folder), root)


def registry_store_builder(store_uri: str, tracking_uri: str | None = None):
    """``mlflow.model_registry_store`` entry point: SQLite registry in the same database."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    folder = folder_from_uri(store_uri)
    folder.mkdir(parents=True, exist_ok=True)
    return SqlAlchemyStore(database_uri(folder))
