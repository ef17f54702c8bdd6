"""The examples (seeds 000, 002, 003) run as users run them, and land in the local workspace."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from helpers import REPO_ROOT, artifact_paths
from mlflow import MlflowClient

from mlflow_workspace_plugin import Workspace

EXAMPLES = REPO_ROOT / "examples"


def run_example(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def client() -> MlflowClient:
    return MlflowClient(Workspace.local(os.environ["MLFLOW_WORKSPACE_HOME"]).get_mlflow_tracking_uri())


def test_seed_002_diabetes_lab(tmp_path):
    chart = tmp_path / "r2.png"
    output = run_example(str(EXAMPLES / "diabetes_lab.py"), "--chart", str(chart))
    assert "registered model-diabetes version 1" in output
    assert "no artifacts at artifact path" not in output.lower()
    assert chart.read_bytes().startswith(b"\x89PNG")
    store = client()
    experiment = store.get_experiment_by_name("experiment-diabetes")
    runs = store.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["estimator"] for r in runs) == ["DecisionTreeRegressor", "LinearRegression"]
    assert all("training_r2_score" in r.data.metrics for r in runs)
    best = max(runs, key=lambda r: r.data.metrics["training_r2_score"])
    assert "charts/r2_by_estimator.png" in artifact_paths(store, best.info.run_id)
    (version,) = store.search_model_versions("name = 'model-diabetes'")
    assert version.run_id == best.info.run_id


def test_seed_003_iris_project_and_registration():
    output = run_example(str(EXAMPLES / "iris" / "submit.py"), "--kernel", "linear", "--penalty", "1.0")
    assert "registered sklearn-iris version 1" in output
    store = client()
    (run,) = store.search_runs([store.get_experiment_by_name("train-iris").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"kernel": "linear", "penalty": "1.0"}
    assert run.data.metrics["accuracy"] > 0.9
    assert "outputs/model.joblib" in artifact_paths(store, run.info.run_id)
    (version,) = store.search_model_versions("name = 'sklearn-iris'")
    assert version.tags["framework"] == "ScikitLearn" and version.tags["framework_version"]
    mlflow.set_tracking_uri(store.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/sklearn-iris/1")
    assert list(model.predict(np.array([[5.1, 3.5, 1.4, 0.2]]))) == [0]


def test_seed_000_projects_run_with_dict_and_json_file():
    output = run_example(str(EXAMPLES / "projects_run.py"))
    assert output.count(": FINISHED") == 2
    store = client()
    runs = store.search_runs([store.get_experiment_by_name("experiment-with-mlflow-projects").experiment_id])
    assert sorted(r.data.params["alpha"] for r in runs) == ["0.3", "0.6"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"training_r2_score", "test_r2"} <= set(run.data.metrics)
        paths = artifact_paths(store, run.info.run_id)
        assert {"outputs/metrics.txt", "user_logs/std_log.txt", "snapshot/train.py", "snapshot/MLproject"} <= set(paths)


pytestmark = pytest.mark.slow  # its tests start processes (runs, CLI subprocesses, servers)
