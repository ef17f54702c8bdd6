"""Fixtures for deployment tests: one local workspace per session with the seed models registered,
and a safety net that stops every endpoint process the session started (by PID / process group).

Registered models (in ``deploy_ws``):

- ``sklearn-iris`` v1: seed 003 — a joblib SVC under ``outputs/`` with ``framework`` /
  ``framework_version`` tags and no MLmodel (no-code deployment);
- ``model-diabetes`` v1 (LinearRegression) and v2 (DecisionTreeRegressor, alias ``champion``): seed 002;
- ``no-flavor`` v1: a text file, no MLmodel, no tags (must be refused).
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import pandas as pd
import pytest
import sklearn
from mlflow.tracking import fluent
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeRegressor

from mlflow_workspace_plugin.deploy import processes
from mlflow_workspace_plugin.local_workspace import local_tracking_uri


@dataclass
class DeployWorkspace:
    folder: Path
    uri: str
    iris_file: Path
    iris_rows: pd.DataFrame
    diabetes_rows: pd.DataFrame


@pytest.fixture(scope="session")
def deploy_ws(tmp_path_factory) -> DeployWorkspace:
    folder = tmp_path_factory.mktemp("deploy-ws") / "ws"
    uri = local_tracking_uri(folder)
    saved = tracking_utils._tracking_uri, registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        iris = load_iris(as_frame=True)
        diabetes = load_diabetes(as_frame=True)
        outputs = tmp_path_factory.mktemp("iris-outputs") / "outputs"
        outputs.mkdir()
        iris_file = outputs / "model.joblib"
        joblib.dump(SVC(kernel="linear").fit(iris.data.to_numpy(), iris.target), iris_file)
        client = mlflow.MlflowClient()
        mlflow.set_experiment("deploy-tests")
        with mlflow.start_run() as run:
            mlflow.log_artifacts(str(outputs), "outputs")
            (outputs.parent / "notes.txt").write_text("not a model", encoding="utf-8")
            mlflow.log_artifact(str(outputs.parent / "notes.txt"), "plain")
            requirements = [f"scikit-learn=={sklearn.__version__}"]  # no requirement inference: faster
            mlflow.sklearn.log_model(LinearRegression().fit(diabetes.data, diabetes.target), name="linear",
                                     pip_requirements=requirements)
            mlflow.sklearn.log_model(DecisionTreeRegressor(max_depth=5, random_state=0).fit(
                diabetes.data, diabetes.target), name="tree", pip_requirements=requirements,
                skops_trusted_types=["sklearn.tree._tree.Tree"])
        client.create_registered_model("sklearn-iris")
        client.create_model_version("sklearn-iris", source=f"{run.info.artifact_uri}/outputs", run_id=run.info.run_id,
                                    tags={"framework": "ScikitLearn", "framework_version": sklearn.__version__,
                                          "model_path": "outputs/model.joblib"})
        mlflow.register_model(f"runs:/{run.info.run_id}/linear", "model-diabetes")
        mlflow.register_model(f"runs:/{run.info.run_id}/tree", "model-diabetes")
        client.set_registered_model_alias("model-diabetes", "champion", "2")
        client.create_registered_model("no-flavor")
        client.create_model_version("no-flavor", source=f"{run.info.artifact_uri}/plain", run_id=run.info.run_id)
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        fluent._active_experiment_id = None  # the experiment belongs to this workspace only
    yield DeployWorkspace(folder, uri, iris_file, iris.data.head(5), diabetes.data.head(5))
    stop_everything(folder / "deployments")


@pytest.fixture(scope="session")
def deploy_client(deploy_ws):
    from mlflow.deployments import get_deploy_client

    return get_deploy_client(deploy_ws.uri)


def recorded_pids(state_root: Path) -> list[int]:
    """Every front-process and scoring-server pid the state folder knows about."""
    pids = []
    for endpoint_file in Path(state_root).glob("*/endpoint.json"):
        process = json.loads(endpoint_file.read_text()).get("process") or {}
        if process.get("pid"):
            pids.append(process["pid"])
        status_file = endpoint_file.with_name("status.json")
        if status_file.is_file():
            status = json.loads(status_file.read_text())
            pids += [d["pid"] for d in status.get("deployments", {}).values() if d.get("pid")]
    return pids


def stop_everything(state_root: Path) -> None:
    """Session safety net: SIGKILL the process groups of every endpoint process still recorded."""
    for pid in recorded_pids(state_root):
        if processes.start_time(pid) is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
