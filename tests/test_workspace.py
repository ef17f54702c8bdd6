"""Workspace.from_config: config discovery, the embedded local default, validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from helpers import write_json

from mlflow_workspace_plugin import Workspace
from mlflow_workspace_plugin.errors import WorkspaceConfigError
from mlflow_workspace_plugin.uri import parse_workspace_uri

CLOUD = {"subscription_id": "0000-1111", "resource_group": "rg-ml", "workspace_name": "ws-ml", "region": "westeurope"}
EXPECTED_URI = (
    "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/0000-1111/resourceGroups/rg-ml"
    "/providers/Microsoft.MachineLearningServices/workspaces/ws-ml"
)


def test_no_config_gives_local_workspace_in_home(isolated_workspace, capsys):
    ws = Workspace.from_config()
    assert ws.is_local and ws.local_path == isolated_workspace
    assert "using the local workspace at" in capsys.readouterr().err
    uri = ws.get_mlflow_tracking_uri()
    assert uri == f"azureml-local://{isolated_workspace.as_posix()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("exp-a")
    with mlflow.start_run() as run:
        mlflow.log_metric("loss", 0.25)
        mlflow.log_text("hello", "note.txt")
    stored = mlflow.get_run(run.info.run_id)
    assert stored.data.metrics == {"loss": 0.25}
    # artifacts land in the workspace folder, not the current directory
    assert (isolated_workspace / "mlflow.db").is_file()
    assert stored.info.artifact_uri.startswith(str(isolated_workspace / "artifacts"))
    assert not Path("mlruns").exists() and not Path("mlflow.db").exists()


def test_local_workspace_announced_once(capsys):
    Workspace.from_config()
    Workspace.from_config()
    assert capsys.readouterr().err.count("using the local workspace") == 1


def test_cloud_config_in_cwd_gives_azureml_uri(tmp_path, monkeypatch):
    write_json(tmp_path / "config.json", CLOUD)
    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    assert not ws.is_local
    assert ws.get_mlflow_tracking_uri() == EXPECTED_URI
    assert parse_workspace_uri(EXPECTED_URI).rest_base_url.startswith("https://westeurope.api.azureml.ms/mlflow/v2.0/")


def test_config_found_walking_up_in_dot_azureml(tmp_path, monkeypatch):
    (tmp_path / ".azureml").mkdir()
    write_json(tmp_path / ".azureml" / "config.json", CLOUD)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert Workspace.from_config().config_path == tmp_path / ".azureml" / "config.json"


def test_explicit_path_env_var_and_folder(tmp_path, monkeypatch):
    config = write_json(tmp_path / "my-ws.json", {**CLOUD, "host": "127.0.0.1:5123"})
    ws = Workspace.from_config(config)
    assert ws.get_mlflow_tracking_uri().startswith("azureml://127.0.0.1:5123/mlflow/v1.0/")
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    assert Workspace.from_config().config_path == config
    folder = tmp_path / "folder"
    folder.mkdir()
    write_json(folder / "config.json", CLOUD)
    assert Workspace.from_config(folder).workspace_name == "ws-ml"


def test_local_path_config_and_compute_targets(tmp_path):
    config = write_json(tmp_path / "config.json", {
        "workspace_name": "laptop", "local_path": "ws-data",
        "compute": {"cpu-cluster": {"type": "ray", "address": "http://127.0.0.1:8265"}},
    })
    ws = Workspace.from_config(config)
    assert ws.is_local and ws.local_path == tmp_path / "ws-data"
    assert ws.get_compute_target("cpu-cluster").settings == {"address": "http://127.0.0.1:8265"}
    assert ws.get_compute_target("local").type == "local"
    with pytest.raises(WorkspaceConfigError) as err:
        ws.get_compute_target("gpu-cluster")
    assert "'gpu-cluster'" in str(err.value) and "'cpu-cluster'" in str(err.value) and "'local'" in str(err.value)


def test_unrelated_config_json_is_not_claimed(tmp_path, monkeypatch):
    write_json(tmp_path / "config.json", {"learning_rate": 0.1})
    monkeypatch.chdir(tmp_path)
    assert Workspace.from_config().is_local


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({**CLOUD, "subscription_id": 42}), "'subscription_id' must be a string"),
        (json.dumps({k: v for k, v in CLOUD.items() if k != "resource_group"}), "'resource_group' is missing"),
        (json.dumps({k: v for k, v in CLOUD.items() if k != "region"}), "'region' is missing"),
        (json.dumps({**CLOUD, "region": "West Europe"}), "not an Azure region name"),
        (json.dumps({**CLOUD, "workspace_name": "bad/name"}), "'workspace_name' is invalid"),
        (json.dumps({**CLOUD, "host": "h:99999"}), "'host' is invalid"),
        (json.dumps({**CLOUD, "colour": "blue"}), "'colour' is not recognised"),
        (json.dumps({**CLOUD, "compute": []}), "'compute' must be an object"),
        (json.dumps({**CLOUD, "compute": {"c1": {"address": "x"}}}), "'compute.c1.type' must be a non-empty string"),
        (json.dumps({**CLOUD, "compute": {"local": {"type": "ray"}}}), "reserved name 'local'"),
        (json.dumps({"local_path": "x", "subscription_id": "s"}), "cannot be combined with cloud field"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, content, expected):
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(WorkspaceConfigError) as err:
        Workspace.from_config(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_missing_explicit_config_file(tmp_path, monkeypatch):
    with pytest.raises(WorkspaceConfigError, match="does not exist"):
        Workspace.from_config(tmp_path / "nope.json")
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(tmp_path / "gone.json"))
    with pytest.raises(WorkspaceConfigError, match=r"gone\.json .*MLFLOW_WORKSPACE_CONFIG"):
        Workspace.from_config()
