"""Bad input: clear errors before anything starts, nothing half-made, no orphan processes."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest
from mlflow.deployments import get_deploy_client
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.deploy import azureml_local_plugin, azureml_plugin, processes
from mlflow_workspace_plugin.deploy.errors import DeploymentError


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment mentions ``text`` (our own processes only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob and processes.start_time(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def test_plugin_modules_follow_mlflows_contract():
    for module in (azureml_local_plugin, azureml_plugin):
        assert "deploy-config-file" in module.target_help()
        assert callable(module.run_local)
    from mlflow.deployments.interface import plugin_store

    assert plugin_store["azureml-local"] is azureml_local_plugin
    assert plugin_store["azureml"] is azureml_plugin


@pytest.mark.parametrize("model_uri, message", [
    ("models:/nope/1", "no registered model named 'nope'"),
    ("models:/model-diabetes/9", "has no version '9'; versions: 1, 2; aliases: champion"),
    ("models:/model-diabetes@gold", "has no alias 'gold'"),
    ("runs:/0123456789abcdef0123456789abcdef/model", "does not exist"),
    ("s3://bucket/model", "is not supported: use one of"),
])
def test_unknown_models_are_refused_before_anything_starts(deploy_client, model_uri, message):
    with pytest.raises(MlflowException, match=message):
        deploy_client.create_deployment("bad-model", model_uri)
    assert "bad-model" not in [e["name"] for e in deploy_client.list_endpoints()]


@pytest.mark.slow  # starts an endpoint process
def test_a_model_with_neither_pyfunc_nor_framework_tags_is_refused(deploy_client, deploy_ws):
    with pytest.raises(DeploymentError, match=r"no MLmodel file \(found: notes.txt\) and no .framework. tag"):
        deploy_client.create_deployment("no-flavor", "models:/no-flavor/1")
    assert not deploy_client.store.endpoint_dir("no-flavor").exists()
    assert processes_mentioning(str(deploy_client.store.endpoint_dir("no-flavor"))) == []


@pytest.mark.parametrize("config, message", [
    ({"traffic": {"x": 50, "y": 40}}, "sums to 90"),
    ({"traffic": '{"other": 100}'}, "names deployment 'other', which endpoint 'x' does not have"),
    ({"traffic": "not json"}, "is not JSON"),
    ({"colour": "blue"}, "'colour' is not recognised; allowed keys: deploy-config-file, compute"),
    ({"instance_count": "0"}, "must be an integer >= 1"),
    ({"env_manager": "docker"}, "use one of local, virtualenv, uv, conda"),
    ({"compute": "gpu-cluster"}, "Compute target 'gpu-cluster' is unknown"),
])
def test_bad_deployment_config_is_refused(deploy_client, config, message):
    with pytest.raises(DeploymentError, match=message):
        deploy_client.create_deployment("x", "models:/model-diabetes/1", config=config)
    assert not deploy_client.store.endpoint_dir("x").exists()


def test_managed_service_yaml_keys(deploy_client, tmp_path):
    bad = tmp_path / "deploy.yml"
    bad.write_text("model: azureml:foo:1\ninstance_count: 1\n", encoding="utf-8")
    with pytest.raises(DeploymentError, match="'model' .* is not used with MLflow deployments"):
        deploy_client.create_deployment("y", "models:/model-diabetes/1", config={"deploy-config-file": str(bad)})
    with pytest.raises(DeploymentError, match="cannot read"):
        deploy_client.create_deployment("y", "models:/model-diabetes/1",
                                        config={"deploy-config-file": str(tmp_path / "missing.json")})
    with pytest.raises(DeploymentError, match="flavor 'sklearn' is not supported"):
        deploy_client.create_deployment("y", "models:/model-diabetes/1", flavor="sklearn")


def test_bad_targets_and_names():
    with pytest.raises(MlflowException, match="is not a workspace URI"):
        azureml_local_plugin.WorkspaceDeploymentClient("http://127.0.0.1:5000")
    with pytest.raises(MlflowException, match="Invalid local workspace URI"):
        get_deploy_client("azureml-local://relative/folder")


def test_endpoint_errors(deploy_client):
    with pytest.raises(DeploymentError, match="name '1st' is not allowed"):
        deploy_client.create_endpoint("1st")
    with pytest.raises(DeploymentError, match="'aml_token' needs a cloud workspace"):
        deploy_client.create_endpoint("tok", config={"auth_mode": "aml_token"})
    with pytest.raises(DeploymentError, match="no deployments yet"):
        deploy_client.create_endpoint("tr", config={"traffic": {"a": 100}})
    with pytest.raises(MlflowException, match="Endpoint 'ghost' does not exist"):
        deploy_client.get_endpoint("ghost")
    with pytest.raises(MlflowException, match="Endpoint 'ghost' does not exist"):
        deploy_client.predict(endpoint="ghost", inputs=[[1]])
    deploy_client.delete_endpoint("ghost")  # idempotent
    deploy_client.delete_deployment("ghost")


def test_port_in_use_fails_cleanly(deploy_client):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(DeploymentError, match=f"port {port} .* is in use"):
            deploy_client.create_endpoint("busy", config={"port": port})
    assert not deploy_client.store.endpoint_dir("busy").exists()


@pytest.mark.slow  # starts an endpoint process
def test_empty_endpoint_traffic_and_name_checks(deploy_client):
    created = deploy_client.create_endpoint("empty")
    try:
        assert created["state"] == "Unhealthy" and created["deployments"] == []  # up, nothing to serve
        with pytest.raises(DeploymentError, match="already exists"):
            deploy_client.create_endpoint("empty")
        with pytest.raises(DeploymentError, match="names deployment 'blue', which endpoint 'empty' does not have"):
            deploy_client.update_endpoint("empty", config={"traffic": {"blue": 100}})
        with pytest.raises(DeploymentError, match="HTTP 503: .*routes no traffic"):
            deploy_client.predict(endpoint="empty", inputs=[[1.0]])
    finally:
        deploy_client.delete_endpoint("empty")
    assert processes.start_time(created["pid"]) is None


@pytest.mark.slow
def test_a_server_that_fails_to_start_leaves_nothing(deploy_client, tmp_path):
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "MLmodel").write_text(textwrap.dedent("""\
        flavors:
          python_function:
            loader_module: deploy_test_no_such_loader_module
            python_version: 3.11.0
        """), encoding="utf-8")
    with pytest.raises(DeploymentError, match="failed to start.*(No module named|exited)") as info:
        deploy_client.create_deployment("broken", str(model), config={"timeout": 120})
    assert "deploy_test_no_such_loader_module" in str(info.value)  # the server's log tail
    folder = deploy_client.store.endpoint_dir("broken")
    assert not folder.exists()
    assert processes_mentioning(str(folder)) == []
