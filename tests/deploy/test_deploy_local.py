"""Local endpoints end to end: real front processes and MLflow scoring servers on 127.0.0.1.

One endpoint (``diab``) is shared by the tests of this module, in order: create -> predict -> keys ->
traffic split -> blue/green update under load -> crash restart -> delete.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import mlflow
import numpy as np
import pytest
import requests

from mlflow_workspace_plugin.deploy import processes
from mlflow_workspace_plugin.deploy.errors import DeploymentError

pytestmark = pytest.mark.slow
ENDPOINT = "diab"


def pyfunc_predict(deploy_ws, model_uri, rows):
    return np.asarray(mlflow.pyfunc.load_model(model_uri).predict(rows))


@pytest.fixture(scope="module")
def diab(deploy_client, deploy_ws):
    """Endpoint ``diab`` (key auth) with deployment ``blue`` = model-diabetes v1."""
    endpoint = deploy_client.create_endpoint(ENDPOINT)
    deploy_client.create_deployment("blue", "models:/model-diabetes/1", endpoint=ENDPOINT)
    yield endpoint
    deploy_client.delete_endpoint(ENDPOINT)


@pytest.fixture
def registry(deploy_ws):
    mlflow.set_tracking_uri(deploy_ws.uri)
    mlflow.set_registry_uri(deploy_ws.uri)
    return deploy_ws


@pytest.mark.compat
def test_create_endpoint_shows_two_keys_and_a_healthy_deployment(deploy_client, diab):
    endpoint = deploy_client.get_endpoint(ENDPOINT)
    keys = endpoint["keys"]
    assert keys["primary_key"] and keys["secondary_key"] and keys["primary_key"] != keys["secondary_key"]
    assert endpoint["state"] == "Healthy" and endpoint["traffic"] == {"blue": 100}
    assert endpoint["scoring_uri"] == f"http://127.0.0.1:{endpoint['port']}/invocations"
    deployment = deploy_client.get_deployment("blue", endpoint=ENDPOINT)
    assert deployment["state"] == "Healthy" and deployment["flavor"] == "python_function"
    assert deployment["model"]["name"] == "model-diabetes" and deployment["model"]["version"] == "1"
    assert processes.start_time(deployment["pid"]) is not None
    assert deployment["log"].endswith("logs/blue.log") and "Uvicorn running" in open(deployment["log"]).read()
    assert [d["name"] for d in deploy_client.list_deployments(endpoint=ENDPOINT)] == ["blue"]


@pytest.mark.compat
def test_predict_matches_pyfunc_for_dataframe_dict_and_list(deploy_client, diab, registry):
    rows = registry.diabetes_rows
    expected = pyfunc_predict(registry, "models:/model-diabetes/1", rows)
    by_frame = deploy_client.predict(endpoint=ENDPOINT, inputs=rows)
    np.testing.assert_allclose(by_frame.get_predictions("ndarray"), expected)
    by_dict = deploy_client.predict(endpoint=ENDPOINT, inputs={c: rows[c].tolist() for c in rows.columns})
    np.testing.assert_allclose(by_dict["predictions"], expected)
    by_records = deploy_client.predict("blue", {"dataframe_records": rows.to_dict(orient="records")}, ENDPOINT)
    np.testing.assert_allclose(by_records["predictions"], expected)


def test_key_auth_is_enforced(deploy_client, diab, deploy_ws):
    endpoint = deploy_client.get_endpoint(ENDPOINT)
    body = {"dataframe_split": deploy_ws.diabetes_rows.head(1).to_dict(orient="split")}
    url = endpoint["scoring_uri"]
    assert requests.post(url, json=body, timeout=30).status_code == 401
    wrong = requests.post(url, json=body, headers={"Authorization": "Bearer not-the-key"}, timeout=30)
    assert wrong.status_code == 401 and "UNAUTHENTICATED" in wrong.text
    ok = requests.post(url.replace("/invocations", "/score"), json=body, timeout=30,
                       headers={"Authorization": f"Bearer {endpoint['keys']['secondary_key']}"})
    assert ok.status_code == 200 and ok.headers["azureml-model-deployment"] == "blue"
    # a regenerated key replaces the old one at once
    old = endpoint["keys"]["secondary_key"]
    new = deploy_client.update_endpoint(ENDPOINT, config={"regenerate_key": "secondary"})["keys"]["secondary_key"]
    assert new != old
    assert requests.post(url, json=body, headers={"Authorization": f"Bearer {old}"}, timeout=30).status_code == 401
    assert requests.post(url, json=body, headers={"Authorization": f"Bearer {new}"}, timeout=30).status_code == 200


def test_malformed_payload_surfaces_the_servers_400(deploy_client, diab):
    with pytest.raises(DeploymentError, match="HTTP 400") as info:
        deploy_client.predict(endpoint=ENDPOINT, inputs={"dataframe_split": {"columns": ["a"], "data": "oops"}})
    assert "dataframe" in str(info.value).lower() or "input" in str(info.value).lower()


def test_traffic_split_between_blue_and_green(deploy_client, diab, deploy_ws):
    green = deploy_client.create_deployment("green", "models:/model-diabetes@champion", endpoint=ENDPOINT,
                                            config={"traffic": {"blue": 90, "green": 10}})
    assert green["state"] == "Healthy" and green["model"]["version"] == "2" and green["traffic"] == 10
    endpoint = deploy_client.get_endpoint(ENDPOINT)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {endpoint['keys']['primary_key']}"
    body = {"dataframe_split": deploy_ws.diabetes_rows.head(1).to_dict(orient="split")}
    served = Counter()
    for _ in range(200):
        response = session.post(endpoint["scoring_uri"], json=body, timeout=30)
        assert response.status_code == 200
        served[response.headers["azureml-model-deployment"]] += 1
    # binomial(200, 0.1): mean 20, sd 4.2 -> [5, 40] is > 3.5 sd either side
    assert 5 <= served["green"] <= 40 and served["blue"] + served["green"] == 200, served
    # an endpoint update moves traffic; a deployment can still be called by name
    deploy_client.update_endpoint(ENDPOINT, config={"traffic": {"blue": 100, "green": 0}})
    names = {session.post(endpoint["scoring_uri"], json=body, timeout=30).headers["azureml-model-deployment"]
             for _ in range(20)}
    assert names == {"blue"}
    direct = session.post(endpoint["scoring_uri"], json=body, timeout=30,
                          headers={"azureml-model-deployment": "green"})
    assert direct.headers["azureml-model-deployment"] == "green"


def test_blue_green_update_drops_no_request(deploy_client, diab, registry):
    endpoint = deploy_client.get_endpoint(ENDPOINT)
    old_pid = deploy_client.get_deployment("blue", ENDPOINT)["pid"]
    body = {"dataframe_split": registry.diabetes_rows.head(1).to_dict(orient="split")}
    results: list[int | str] = []
    stop = threading.Event()

    def send_every_20ms():
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {endpoint['keys']['primary_key']}",
                                "azureml-model-deployment": "blue"})
        while not stop.is_set():
            try:
                results.append(session.post(endpoint["scoring_uri"], json=body, timeout=60).status_code)
            except requests.RequestException as exc:
                results.append(repr(exc))
            time.sleep(0.02)

    sender = threading.Thread(target=send_every_20ms, daemon=True)
    sender.start()
    try:
        time.sleep(0.5)
        updated = deploy_client.update_deployment("blue", "models:/model-diabetes/2", endpoint=ENDPOINT)
        time.sleep(1.0)
    finally:
        stop.set()
        sender.join(60)
    failures = [r for r in results if r != 200]
    assert len(results) > 20 and failures == [], (len(results), failures[:5])
    assert updated["model"]["version"] == "2" and updated["pid"] != old_pid
    expected = pyfunc_predict(registry, "models:/model-diabetes/2", registry.diabetes_rows)
    got = deploy_client.predict("blue", registry.diabetes_rows, endpoint=ENDPOINT)
    np.testing.assert_allclose(got.get_predictions("ndarray"), expected)
    deadline = time.monotonic() + 45
    while processes.start_time(old_pid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes.start_time(old_pid) is None, "the replaced server is still running"


def test_crashed_server_is_restarted(deploy_client, diab, deploy_ws):
    import signal

    before = deploy_client.get_deployment("blue", ENDPOINT)
    os.kill(before["pid"], signal.SIGKILL)
    # the request waits for the restart instead of failing
    response = deploy_client.predict("blue", deploy_ws.diabetes_rows.head(2), endpoint=ENDPOINT)
    assert len(response["predictions"]) == 2
    after = deploy_client.get_deployment("blue", ENDPOINT)
    assert after["state"] == "Healthy" and after["restarts"] >= before["restarts"] + 1
    assert after["pid"] != before["pid"] and processes.start_time(after["pid"]) is not None
    assert "restarting" in open(deploy_client.get_endpoint(ENDPOINT)["log"]).read()


def test_delete_deployment_then_endpoint_frees_ports_and_processes(deploy_client, diab):
    green = deploy_client.get_deployment("green", ENDPOINT)
    deploy_client.delete_deployment("green", endpoint=ENDPOINT)
    deploy_client.delete_deployment("green", endpoint=ENDPOINT)  # idempotent
    assert processes.start_time(green["pid"]) is None and not os.path.exists(green["socket"])
    assert deploy_client.get_endpoint(ENDPOINT)["traffic"] == {"blue": 100}
    with pytest.raises(DeploymentError, match="does not exist"):
        deploy_client.get_deployment("green", ENDPOINT)

    endpoint = deploy_client.get_endpoint(ENDPOINT)
    blue = deploy_client.get_deployment("blue", ENDPOINT)
    deploy_client.delete_endpoint(ENDPOINT)
    deploy_client.delete_endpoint(ENDPOINT)
    for pid in (endpoint["pid"], blue["pid"]):
        assert processes.start_time(pid) is None
    assert not processes.port_in_use(endpoint["port"]) and not os.path.exists(blue["socket"])
    assert not os.path.exists(os.path.dirname(blue["socket"]))  # the private socket folder is gone too
    assert ENDPOINT not in [e["name"] for e in deploy_client.list_endpoints()]
