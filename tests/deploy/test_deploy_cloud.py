"""A cloud workspace target (``azureml://`` through the test front door to a real ``mlflow server``):
models come from the remote registry, state lives under ``$MLFLOW_WORKSPACE_HOME``, and an endpoint
with ``auth_mode: aml_token`` accepts exactly the tokens the workspace accepts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
import sklearn
from mlflow.deployments import get_deploy_client
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

from mlflow_workspace_plugin.deploy import processes

pytestmark = pytest.mark.slow

# The tracking tests' fixtures (real mlflow server + token-checking front door), shared as-is.
_TRACKING = Path(__file__).resolve().parents[1] / "tracking"
sys.path.insert(0, str(_TRACKING))
_spec = importlib.util.spec_from_file_location("tracking_fixtures_for_deploy", _TRACKING / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures
_spec.loader.exec_module(_fixtures)
session_token = _fixtures.session_token
mlflow_server = _fixtures.mlflow_server
front_door = _fixtures.front_door
isolated_mlflow = _fixtures.isolated_mlflow
workspace = _fixtures.workspace


def test_cloud_workspace_endpoint_with_workspace_tokens(workspace, monkeypatch):
    diabetes = load_diabetes(as_frame=True)
    rows = diabetes.data.head(4)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(Ridge(alpha=0.5).fit(diabetes.data, diabetes.target), name="ridge",
                                 pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
    version = mlflow.register_model(f"runs:/{run.info.run_id}/ridge", "cloud-ridge")
    expected = np.asarray(mlflow.pyfunc.load_model(f"models:/cloud-ridge/{version.version}").predict(rows))

    client = get_deploy_client(workspace.uri)
    home = Path(workspace.client_dir).parent / "workspace-home"
    assert client.store.root.is_relative_to(home / "deployments")
    created = client.create_endpoint("cloud-ep", config={"auth_mode": "aml_token"})
    assert created["auth_mode"] == "aml_token" and "keys" not in created
    try:
        deployment = client.create_deployment("ridge", f"models:/cloud-ridge/{version.version}", endpoint="cloud-ep")
        assert deployment["state"] == "Healthy"
        got = client.predict(endpoint="cloud-ep", inputs=rows)  # sends the workspace token
        np.testing.assert_allclose(got.get_predictions("ndarray"), expected)
        body = {"dataframe_split": rows.to_dict(orient="split")}
        url = created["scoring_uri"]
        assert requests.post(url, json=body, timeout=30, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert requests.post(url, json=body, timeout=30).status_code == 401
        ok = requests.post(url, json=body, timeout=30, headers={"Authorization": f"Bearer {workspace.token}"})
        assert ok.status_code == 200
        # the token never reaches the endpoint's processes or its state files
        endpoint_dir = client.store.endpoint_dir("cloud-ep")
        for path in endpoint_dir.rglob("*.json"):
            assert workspace.token not in path.read_text()
        for pid in (created["pid"], deployment["pid"]):
            assert workspace.token.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        client.delete_endpoint("cloud-ep")
    assert processes.start_time(created["pid"]) is None and not processes.port_in_use(created["port"])
