"""MLflow store builders for ``azureml-local://`` URIs (the local workspace)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from mlflow_workspace_plugin.local_database import seed_new_database
from mlflow_workspace_plugin.local_workspace import DB_FILE, artifact_root, database_uri, folder_from_uri

LOCK_NAME = ".mlflow.db.lock"


@contextlib.contextmanager
def one_process_at_a_time(folder: Path) -> Iterator[None]:
    """Hold the workspace's database lock: MLflow creates or upgrades the schema when a store is
    opened, and two processes doing that at once on a fresh workspace collide (e.g. "duplicate
    column name"). Opening an up-to-date database only checks its version, so the wait is short."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(folder / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tracking_store_builder(store_uri: str, artifact_uri: str | None = None):
    """``mlflow.tracking_store`` entry point: SQLite store rooted in the workspace folder."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = folder_from_uri(store_uri)
    folder.mkdir(parents=True, exist_ok=True)
    root = artifact_uri or artifact_root(folder).as_posix()
    with one_process_at_a_time(folder):
        seed_new_database(folder / DB_FILE, root)
        return SqlAlchemyStore(database_uri(folder), root)


def registry_store_builder(store_uri: str, tracking_uri: str | None = None):
    """``mlflow.model_registry_store`` entry point: SQLite registry in the same database."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    folder = folder_from_uri(store_uri)
    folder.mkdir(parents=True, exist_ok=True)
    with one_process_at_a_time(folder):
        seed_new_database(folder / DB_FILE, artifact_root(folder).as_posix())
        return SqlAlchemyStore(database_uri(folder))
