"""``auth.child_environment``: what a child process gets to log into the same workspace."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest
import requests
from ws_servers import WORKSPACE

from mlflow_workspace_plugin import auth
from mlflow_workspace_plugin.errors import WorkspaceUriError

CHILD = """
import mlflow
with mlflow.start_run(run_id=__import__("os").environ["MLFLOW_RUN_ID"]):
    mlflow.log_metric("child_metric", 42.0)
"""


def test_non_workspace_uris_need_nothing(tmp_path):
    for uri in ("http://127.0.0.1:5000", "https://example.invalid", f"sqlite:///{tmp_path}/x.db",
                f"azureml-local://{tmp_path}", "databricks", ""):
        assert auth.child_environment(uri) == {}


def test_malformed_workspace_uri_is_rejected():
    with pytest.raises(WorkspaceUriError):
        auth.child_environment("azureml://127.0.0.1:1/not/a/workspace")


def test_workspace_uri_gives_the_current_token(workspace):
    assert auth.child_environment(workspace.uri) == {"MLFLOW_TRACKING_TOKEN": workspace.token}


def test_child_process_logs_into_the_same_run(workspace):
    mlflow.set_experiment("child-env")
    with mlflow.start_run() as run:
        pass
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_TOKEN"}
    env.update(auth.child_environment(workspace.uri))
    env.update({"MLFLOW_TRACKING_URI": workspace.uri, "MLFLOW_RUN_ID": run.info.run_id})
    argv = [sys.executable, "-c", CHILD]
    assert not any(workspace.token in arg for arg in argv)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert workspace.token not in done.stdout + done.stderr
    got = requests.get(f"{workspace.server.url}/api/2.0/mlflow/runs/get",
                       params={"run_id": run.info.run_id}, timeout=30).json()["run"]
    assert {m["key"]: m["value"] for m in got["data"]["metrics"]} == {"child_metric": 42.0}
    assert WORKSPACE in workspace.uri
