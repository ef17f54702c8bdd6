"""A new local workspace starts from a ready, already-migrated database instead of running MLflow's
schema migrations (about a second on a quiet machine, tens of seconds on a busy one).

The first workspace created with a given MLflow version builds a *template*: MLflow creates and
migrates an empty database with a placeholder artifact root (an empty folder beside it); it is kept in
``$XDG_CACHE_HOME/mlflow-workspace/db-templates/mlflow-<version>.db`` (``~/.cache`` by default). Every
new workspace then gets a copy, with the one row that names a place (the Default experiment's artifact
location) and its times rewritten. MLflow still opens every database through its own store, which checks
the schema version; a template is only ever used by the MLflow version that built it (its name says
which), so an upgraded MLflow builds a new one. ``MLFLOW_WORKSPACE_DB_TEMPLATE=0`` turns this off.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

TEMPLATE_ENV = "MLFLOW_WORKSPACE_DB_TEMPLATE"
PLACEHOLDER_NAME = "template-artifacts"  # the template's artifact root (an empty folder in the cache)
_logger = logging.getLogger(__name__)


def template_folder() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mlflow-workspace" / "db-templates"


def seed_new_database(database: Path, artifact_root: str) -> bool:
    """Copy the template to ``database`` when it does not exist yet; returns whether it did. Any
    problem (no cache folder, a failed build) leaves ``database`` absent: MLflow then creates it."""
    if database.exists() or os.environ.get(TEMPLATE_ENV, "1").lower() in ("0", "false", "off", "no"):
        return False
    try:
        template = _template()
        placeholder = str(template.parent / PLACEHOLDER_NAME)
        staged = database.with_name(database.name + ".seeding")
        shutil.copyfile(template, staged)
        now = int(time.time() * 1000)
        with sqlite3.connect(staged) as connection:
            (location,) = connection.execute("SELECT artifact_location FROM experiments WHERE experiment_id = 0"
                                              ).fetchone()
            connection.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
                "WHERE experiment_id = 0", (location.replace(placeholder, artifact_root.rstrip("/"), 1), now, now))
        connection.close()
        os.replace(staged, database)
        return True
    except Exception as error:  # the template is an optimisation: MLflow creates the database itself
        _logger.debug("mlflow-workspace: no database template (%s); MLflow creates the database", error)
        return False


def _template() -> Path:
    import mlflow

    folder = template_folder()
    path = folder / f"mlflow-{mlflow.__version__}.db"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix="building-") as building:
        staged = Path(building) / "mlflow.db"
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{staged.as_posix()}", str(folder / PLACEHOLDER_NAME))
        store.engine.dispose()
        os.replace(staged, path)  # two processes building at once: either copy is complete
    return path
