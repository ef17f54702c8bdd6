"""Shared fixtures: every test gets a private local workspace and a clean MLflow tracking state."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest


def _reset_mlflow_tracking() -> None:
    from mlflow.tracking._tracking_service import utils as tracking_utils

    if mlflow.active_run() is not None:
        mlflow.end_run()
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils

    tracking_utils._tracking_uri = None
    registry_utils._registry_uri = None
    fluent._active_experiment_id = None  # an experiment id of another test's store must not leak


@pytest.fixture(autouse=True)
def isolated_workspace(tmp_path_factory, monkeypatch) -> Path:
    """A fresh ``MLFLOW_WORKSPACE_HOME``, no workspace config, no tracking URI, cwd in a tmp dir."""
    home = tmp_path_factory.mktemp("workspace-home")
    cwd = tmp_path_factory.mktemp("cwd")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_WORKSPACE_CONFIG",
                 "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_WORKSPACE_HOME", str(home))
    monkeypatch.chdir(cwd)
    _reset_mlflow_tracking()
    yield home
    _reset_mlflow_tracking()


@pytest.fixture
def local_tracking(isolated_workspace) -> str:
    """Point MLflow at the isolated local workspace and return its tracking URI."""
    from mlflow_workspace_plugin import Workspace

    uri = Workspace.from_config().get_mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


# ---------------------------------------------------------------- Ray (one head per test session)
@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """One real loopback Ray head shared by every test that needs it, started on first use."""
    pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -e '.[ray]')")
    from mlflow_workspace_plugin.compute.ray_head import LocalRayHead

    env = {
        # a runtime env that cannot be built fails once, not three times (Ray's default: ~70 s per such test)
        "RUNTIME_ENV_RETRY_TIMES": "1",
        # jobs inherit the head's environment: their journals must not land in the real ~/.mlflow-workspace
        "MLFLOW_WORKSPACE_HOME": str(tmp_path_factory.mktemp("ray-jobs-home")),
    }
    head = LocalRayHead(num_cpus=2, env=env).start(timeout=180)
    try:
        yield head
    finally:
        head.stop()


@pytest.fixture(scope="session")
def ray_multinode(tmp_path_factory):
    """One real multi-node Ray cluster on loopback shared by the tests that need several nodes: a head
    (1 CPU) and two worker nodes (1 CPU each) with custom resources ``node_b`` / ``node_c`` of their own."""
    pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -e '.[ray]')")
    from mlflow_workspace_plugin.compute.ray_nodes import FAST_NODE_DEATH_ENV, LoopbackCluster

    env = {**FAST_NODE_DEATH_ENV, "RUNTIME_ENV_RETRY_TIMES": "1",
           "MLFLOW_WORKSPACE_HOME": str(tmp_path_factory.mktemp("ray-multinode-home"))}
    workers = [{"num_cpus": 1, "resources": {"node_b": 1}, "node_name": "node-b"},
               {"num_cpus": 1, "resources": {"node_c": 1}, "node_name": "node-c"}]
    cluster = LoopbackCluster(head_cpus=1, workers=workers, env=env).start(timeout=240)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ray_workspace(ray_head, tmp_path, monkeypatch) -> str:
    """A local workspace (reachable by the jobs: same machine) with the Ray targets; returns its
    tracking URI, already set in MLflow and through ``MLFLOW_WORKSPACE_CONFIG``."""
    from ray_cluster import compute_targets, write_workspace

    from mlflow_workspace_plugin import Workspace

    config = write_workspace(tmp_path / "workspace", compute_targets(ray_head.address))
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    uri = Workspace.from_config().get_mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri
