"""A deployment on a ``ray`` compute target: a Ray Serve application on the real loopback Ray head,
deployed through Serve's REST API on the dashboard, with Serve's HTTP proxy on a free loopback port."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import requests
import sklearn
from mlflow.deployments import get_deploy_client
from ray_cluster import write_workspace
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

from mlflow_workspace_plugin.deploy.errors import DeploymentError
from mlflow_workspace_plugin.deploy.processes import free_port

pytest.importorskip("ray.serve")
pytestmark = pytest.mark.slow


@pytest.fixture
def serve_workspace(ray_head, tmp_path, monkeypatch):
    """A local workspace whose config has the Ray target ``serve-cluster`` (cluster's own Python)."""
    from mlflow_workspace_plugin import Workspace

    config = write_workspace(tmp_path / "workspace", {
        "serve-cluster": {"type": "ray", "address": ray_head.address, "environment": "inherit"}})
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    uri = Workspace.from_config().get_mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("ray-deploy")
    diabetes = load_diabetes(as_frame=True)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(LinearRegression().fit(diabetes.data, diabetes.target), name="model",
                                 pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
    mlflow.register_model(f"runs:/{run.info.run_id}/model", "ray-diabetes")
    return uri


def put_other_application(address: str, serve_port: int, tracking_uri: str) -> None:
    """Another application on the cluster (an empty router: no CPU), deployed before ours."""
    other = {"name": "other-app", "route_prefix": "/other-app", "import_path": "mlflow_workspace_plugin.deploy.ray_app:build",
             "args": {"endpoint": "other-app", "tracking_uri": tracking_uri, "deployments": {}}}
    response = requests.put(f"{address}/api/serve/applications/", timeout=60, json={
        "http_options": {"host": "127.0.0.1", "port": serve_port}, "applications": [other]})
    assert response.status_code == 200, response.text


def test_ray_serve_deployment(serve_workspace, ray_head):
    client = get_deploy_client(serve_workspace)
    serve_port = free_port()
    put_other_application(ray_head.address, serve_port, serve_workspace)
    rows = load_diabetes(as_frame=True).data.head(3)
    created = client.create_deployment("rblue", "models:/ray-diabetes/1", config={
        "compute": "serve-cluster", "cpus_per_instance": 0.25, "timeout": 240})
    try:
        assert created["state"] == "Healthy" and created["compute"] == "serve-cluster"
        assert created["scoring_uri"] == f"http://127.0.0.1:{serve_port}/rblue/invocations"
        apps = requests.get(f"{ray_head.address}/api/serve/applications/", timeout=30).json()["applications"]
        assert apps["rblue"]["status"] == "RUNNING" and "model-rblue" in apps["rblue"]["deployments"]
        assert "other-app" in apps  # kept by the GET-merge-PUT
        assert "key_sha256" in apps["rblue"]["deployed_app_config"]["args"]
        keys = client.get_endpoint("rblue")["keys"]
        assert keys["primary_key"] not in str(apps)  # only digests reach the cluster

        expected = np.asarray(mlflow.pyfunc.load_model("models:/ray-diabetes/1").predict(rows))
        got = client.predict("rblue", rows)
        np.testing.assert_allclose(got.get_predictions("ndarray"), expected)
        body = {"dataframe_split": rows.to_dict(orient="split")}
        assert requests.post(created["scoring_uri"], json=body, timeout=60).status_code == 401
        ok = requests.post(created["scoring_uri"], json=body, timeout=60,
                           headers={"Authorization": f"Bearer {keys['secondary_key']}"})
        assert ok.status_code == 200 and ok.headers["azureml-model-deployment"] == "rblue"
        with pytest.raises(DeploymentError, match="HTTP 400"):
            client.predict("rblue", {"dataframe_split": {"columns": ["a"], "data": "oops"}})
        listed = client.list_deployments()
        assert [(d["name"], d["state"]) for d in listed] == [("rblue", "Healthy")]
    finally:
        client.delete_deployment("rblue")
    client.delete_deployment("rblue")  # idempotent
    apps = requests.get(f"{ray_head.address}/api/serve/applications/", timeout=30).json()["applications"]
    assert "rblue" not in apps and "other-app" in apps  # the cluster's other application was kept
    assert client.list_endpoints() == []
