"""Seed 002 (diabetes lab) end to end through ``azureml://`` + front door, vs a plain local store."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import requests  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.tree import DecisionTreeRegressor  # noqa: E402

EXPERIMENT = "experiment-diabetes"
MODEL = "model-diabetes"
CHART = "r2_by_estimator.png"


@dataclass
class LabResult:
    experiment_id: str
    experiment_names: set[str]
    runs: dict[str, dict]  # estimator -> {"run_id", "params", "metrics", "artifacts"}
    best_estimator: str
    model_version: str
    prediction_r2: float


def run_lab_flow() -> LabResult:
    """The seed 002 notebook, against whatever tracking URI is set."""
    mlflow.set_experiment(EXPERIMENT)
    mlflow.autolog(silent=True)
    try:
        X, y = load_diabetes(return_X_y=True)
        for estimator in (LinearRegression(), DecisionTreeRegressor(max_depth=5)):
            with mlflow.start_run():
                mlflow.log_param("estimator", type(estimator).__name__)
                estimator.fit(X, y)
    finally:
        mlflow.autolog(disable=True)

    names = {exp.name for exp in mlflow.search_experiments()}
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    df = mlflow.search_runs(exp.experiment_id, order_by=["start_time DESC"], max_results=2)
    assert len(df) == 2

    fig, ax = plt.subplots()
    ax.bar(df["params.estimator"], df["metrics.training_r2_score"])
    ax.set_ylabel("training r2")
    best = df.sort_values("metrics.training_r2_score", ascending=False).iloc[0]
    client = MlflowClient()
    client.log_figure(best["run_id"], fig, CHART)
    plt.close(fig)

    version = mlflow.register_model(f"runs:/{best['run_id']}/model", MODEL)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
    prediction_r2 = r2_score(y, model.predict(X))

    runs = {}
    for _, row in df.iterrows():
        run = client.get_run(row["run_id"])
        runs[run.data.params["estimator"]] = {
            "run_id": run.info.run_id,
            "params": run.data.params,
            "metrics": run.data.metrics,
            "artifacts": sorted(f.path for f in client.list_artifacts(run.info.run_id)),
        }
    return LabResult(exp.experiment_id, names, runs, best["params.estimator"], str(version.version),
                     prediction_r2)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.compat
def test_lab_flow_through_workspace_matches_local_store(workspace, tmp_path, monkeypatch):
    before = dict(workspace.door.stats)
    remote = run_lab_flow()

    # --- the client wrote nothing locally: no mlruns/mlartifacts, no workspace home
    assert _files(workspace.client_dir) == []
    assert _files(Path(os.environ["MLFLOW_WORKSPACE_HOME"])) == []
    assert workspace.door.stats["forwarded"] - before.get("forwarded", 0) > 20
    assert workspace.door.stats["unauthorised"] == before.get("unauthorised", 0)

    # --- what the server stored, asked directly over plain http (no front door, no token)
    server = workspace.server
    found = requests.post(f"{server.url}/api/2.0/mlflow/runs/search",
                          json={"experiment_ids": [remote.experiment_id]}, timeout=30).json()["runs"]
    by_estimator = {next(p["value"] for p in r["data"]["params"] if p["key"] == "estimator"): r
                    for r in found}
    assert set(by_estimator) == {"LinearRegression", "DecisionTreeRegressor"}
    for estimator, run in by_estimator.items():
        metric_keys = {m["key"] for m in run["data"]["metrics"]}
        assert metric_keys == set(remote.runs[estimator]["metrics"])
        assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    registered = requests.get(f"{server.url}/api/2.0/mlflow/registered-models/get",
                              params={"name": MODEL}, timeout=30).json()["registered_model"]
    assert registered["latest_versions"][0]["version"] == "1"

    # --- artifact bytes are in the server's artifacts destination
    best_run = remote.runs[remote.best_estimator]["run_id"]
    run_dir = server.artifacts_dir / remote.experiment_id / best_run / "artifacts"
    chart = run_dir / CHART
    assert chart.is_file() and chart.read_bytes().startswith(b"\x89PNG")
    mlmodels = list((server.artifacts_dir / remote.experiment_id / "models").glob("*/artifacts/MLmodel"))
    assert len(mlmodels) == 2  # one logged model per autologged fit
    assert CHART in remote.runs[remote.best_estimator]["artifacts"]

    # --- the token is nowhere on the server side (DB, artifacts, logs)
    for path in _files(server.root):
        assert workspace.token.encode() not in path.read_bytes(), path

    # --- the same notebook against a plain local store gives the same shape of results
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    monkeypatch.chdir(local_dir)
    mlflow.set_tracking_uri(f"sqlite:///{local_dir / 'mlflow.db'}")
    local = run_lab_flow()

    assert EXPERIMENT in remote.experiment_names and EXPERIMENT in local.experiment_names
    assert set(remote.runs) == set(local.runs) == {"LinearRegression", "DecisionTreeRegressor"}
    for estimator in remote.runs:
        r, loc = remote.runs[estimator], local.runs[estimator]
        assert r["params"] == loc["params"]
        assert set(r["metrics"]) == set(loc["metrics"]) and "training_r2_score" in r["metrics"]
        assert math.isclose(r["metrics"]["training_r2_score"], loc["metrics"]["training_r2_score"],
                            rel_tol=1e-6) or estimator == "DecisionTreeRegressor"
        assert r["artifacts"] == loc["artifacts"]
    assert remote.best_estimator == local.best_estimator
    assert remote.model_version == local.model_version == "1"
    best_r2 = remote.runs[remote.best_estimator]["metrics"]["training_r2_score"]
    assert remote.prediction_r2 == pytest.approx(best_r2, rel=1e-6)
    assert np.isfinite(local.prediction_r2)
