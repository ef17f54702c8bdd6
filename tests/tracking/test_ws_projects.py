"""Projects backend with a workspace tracking URI: the run, its autolog and logs land on the server."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import requests

ROOT_PROJECT = Path(__file__).resolve().parents[2]


def server_run(workspace, run_id: str) -> dict:
    response = requests.get(f"{workspace.server.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=30)
    response.raise_for_status()
    return response.json()["run"]


def server_artifacts(workspace, run_id: str, path: str = "") -> list[str]:
    response = requests.get(f"{workspace.server.url}/api/2.0/mlflow/artifacts/list",
                            params={"run_id": run_id, "path": path}, timeout=30)
    response.raise_for_status()
    found: list[str] = []
    for item in response.json().get("files", []):
        found += server_artifacts(workspace, run_id, item["path"]) if item["is_dir"] else [item["path"]]
    return found


@pytest.mark.compat
def test_root_project_runs_into_the_workspace(workspace, capfd):
    mlflow.set_experiment("projects-through-workspace")
    submitted = mlflow.projects.run(str(ROOT_PROJECT), parameters={"alpha": 0.3}, backend="azureml",
                                    backend_config={"USE_CONDA": False})
    run = server_run(workspace, submitted.run_id)
    assert run["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"] for m in run["data"]["metrics"]}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert params["alpha"] == "0.3"
    assert {"training_r2_score", "test_r2", "test_rmse"} <= metrics
    assert tags["mlflow.project.backend"] == "azureml"
    artifacts = server_artifacts(workspace, submitted.run_id)
    assert {"user_logs/std_log.txt", "outputs/metrics.txt", "snapshot/train.py"} <= set(artifacts)
    # the artifacts are on the server, in its artifact store, and the token went nowhere
    stored = list(workspace.server.artifacts_dir.rglob("std_log.txt"))
    assert stored and all(workspace.token not in p.read_text() for p in stored)
    console = capfd.readouterr()
    assert "ElasticNet(alpha=0.3)" in console.out
    assert workspace.token not in console.out + console.err
