"""Fixtures: one real ``mlflow server`` (SQLite, proxied artifacts) behind the test front door.

``workspace`` gives each test an ``azureml://127.0.0.1:<front door port>/...`` tracking URI with
``MLFLOW_TRACKING_TOKEN`` set; every test gets its own cwd and ``MLFLOW_WORKSPACE_HOME`` and
MLflow's process-global state (tracking/registry URI, active experiment) is restored afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import fluent
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils
from ws_front_door import FrontDoor
from ws_servers import SCOPE_PATH, MlflowServer, start_mlflow_server, workspace_uri

from mlflow_workspace_plugin import auth
from mlflow_workspace_plugin.reliable import pipeline as reliable_pipeline

_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID",
               "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_TOKEN",
               "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_AUTH")


@dataclass
class WorkspaceEnv:
    """What a test needs to talk to the workspace (via the front door) and to check the server."""

    uri: str
    token: str
    door: FrontDoor
    server: MlflowServer
    client_dir: Path  # the test's cwd: nothing may be written here by the plugin


@pytest.fixture(scope="session")
def session_token() -> str:
    return "tok-" + secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def front_door(mlflow_server: MlflowServer, session_token: str) -> Iterator[FrontDoor]:
    door = FrontDoor(mlflow_server.url, SCOPE_PATH, {session_token}).start()
    try:
        yield door
    finally:
        door.stop()


@pytest.fixture(autouse=True)
def isolated_mlflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Fresh cwd, workspace home and MLflow globals for every test."""
    for name in _MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_WORKSPACE_HOME", str(tmp_path / "workspace-home"))
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    monkeypatch.chdir(client_dir)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    auth.reset()
    _forget_stores()
    yield client_dir
    while mlflow.active_run() is not None:
        mlflow.end_run()
    _forget_stores()
    auth.reset()


def _forget_stores() -> None:
    """Close this process's logging pipelines (their journals live in the test's home) and make
    MLflow build fresh stores, so every test starts with its own journal folder."""
    reliable_pipeline.close_all(timeout=5.0)
    type(tracking_utils._tracking_store_registry)._get_store_with_resolved_uri.cache_clear()


@pytest.fixture
def workspace(front_door: FrontDoor, mlflow_server: MlflowServer, session_token: str,
              monkeypatch: pytest.MonkeyPatch, isolated_mlflow: Path) -> Iterator[WorkspaceEnv]:
    """Tracking URI set to the workspace behind the front door, token in the env."""
    front_door.faults.rules.clear()
    uri = workspace_uri(front_door.port)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", session_token)
    mlflow.set_tracking_uri(uri)
    yield WorkspaceEnv(uri, session_token, front_door, mlflow_server, isolated_mlflow)
    front_door.faults.rules.clear()
