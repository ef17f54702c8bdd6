"""Workspace credentials on Ray (issue 13, item 1): the token never appears in Ray's job API, logs
or temp files; the job still logs to the workspace; a ``cluster`` credential sends none at all."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import requests
from helpers import write_project
from mlflow import MlflowClient
from ray_cluster import job_client

pytestmark = pytest.mark.slow

SCRIPT = ("import mlflow, os\nmlflow.log_metric('reached_workspace', 1)\n"
          "print('token in env:', 'MLFLOW_TRACKING_TOKEN' in os.environ)\n")


def secret_fragments(token: str) -> list[str]:
    """The token and pieces of it long enough to matter."""
    return [token, token[4:20], token[-16:], token[8:24]]


def files_containing(folder: Path, fragments: list[str]) -> list[str]:
    found = []
    needles = [fragment.encode() for fragment in fragments]
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if any(needle in data for needle in needles):
                    found.append(str(path))
        except OSError:
            continue
    return found


@pytest.fixture
def ray_targets(workspace, ray_head, tmp_path, monkeypatch):  # noqa: F811
    config = tmp_path / "ws-config" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"workspace_name": "w", "local_path": str(tmp_path / "unused"), "compute": {
        "ray-forward": {"type": "ray", "address": ray_head.address, "environment": "inherit"},
        "ray-cluster-id": {"type": "ray", "address": ray_head.address, "environment": "inherit",
                           "credential": "cluster"},
    }}))
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    return workspace


def test_forwarded_token_is_sealed_and_the_job_still_logs(ray_targets, ray_head, tmp_path, capfd):  # noqa: F811
    workspace = ray_targets
    submitted = mlflow.projects.run(str(write_project(tmp_path / "proj", SCRIPT)), backend="azureml",
                                    backend_config={"COMPUTE": "ray-forward"}, synchronous=False)
    assert submitted.wait(), submitted.failure_message()
    run = MlflowClient().get_run(submitted.run_id)
    assert run.data.metrics == {"reached_workspace": 1.0}  # the job authenticated with the token

    fragments = secret_fragments(workspace.token)
    listing = requests.get(f"{ray_head.address}/api/jobs/", timeout=30).text
    assert submitted.job_id in listing
    assert not [f for f in fragments if f in listing]
    info = job_client(ray_head).get_job_info(submitted.job_id)
    assert "MLFLOW_TRACKING_TOKEN" not in info.runtime_env["env_vars"]
    assert not files_containing(ray_head.temp_dir, fragments)
    out = capfd.readouterr()
    assert not [f for f in fragments if f in out.out + out.err]
    log = Path(MlflowClient().download_artifacts(submitted.run_id, "user_logs/std_log.txt")).read_text()
    assert "token in env: True" in log


def test_cluster_credential_sends_no_user_credential(ray_targets, ray_head, tmp_path):  # noqa: F811
    workspace = ray_targets
    submitted = mlflow.projects.run(str(write_project(tmp_path / "proj", SCRIPT)), backend="azureml",
                                    backend_config={"COMPUTE": "ray-cluster-id"}, synchronous=False)
    submitted.wait()
    info = job_client(ray_head).get_job_info(submitted.job_id)
    env_vars = info.runtime_env["env_vars"]
    assert not {"MLFLOW_TRACKING_TOKEN", "MLFLOW_WORKSPACE_SEAL_KEY"} & set(env_vars)
    assert not [f for f in secret_fragments(workspace.token) if f in json.dumps(info.runtime_env)]
    # this test cluster has no identity of its own: the job cannot log, and says so in its log
    assert submitted.get_status() == "FAILED"
