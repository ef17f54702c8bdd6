"""Credentials never leave the workspace: secrets in URIs are redacted from every message, and
the workspace token only goes to the workspace's own host (issue 13, items 2 and 3)."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from ws_servers import SCOPE_PATH

from mlflow_workspace_plugin import Workspace
from mlflow_workspace_plugin.uri import redact

SECRET = "S3cret-pw-4711"


@pytest.mark.parametrize(("text", "expected"), [
    (f"azureml://user:{SECRET}@127.0.0.1:5000/mlflow", "azureml://***@127.0.0.1:5000/mlflow"),
    (f"user:{SECRET}@127.0.0.1:5000", "***@127.0.0.1:5000"),
    (f"https://acct.blob.core.windows.net/c/x?sv=2024&sig={SECRET}&se=2030",
     "https://acct.blob.core.windows.net/c/x?sv=2024&sig=***&se=2030"),
    (f"see http://u:{SECRET}@h/x and https://h2/y?token={SECRET}&api_key={SECRET}",
     "see http://***@h/x and https://h2/y?token=***&api_key=***"),
    ("file:///tmp/artifacts", "file:///tmp/artifacts"),
    ("/plain/path", "/plain/path"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_password_in_tracking_uri_is_never_echoed(workspace, capfd):
    host = f"user:{SECRET}@127.0.0.1:{workspace.door.port}"
    bad = f"azureml://{host}/mlflow/v1.0/{SCOPE_PATH}"
    mlflow.set_tracking_uri(bad)
    messages = []
    for call in (mlflow.search_experiments, lambda: mlflow.MlflowClient(bad).search_registered_models(),
                 lambda: mlflow.set_experiment("never")):
        with pytest.raises(MlflowException) as info:
            call()
        messages.append(str(info.value))
    assert all("***@127.0.0.1" in m and "no user name or password" in m for m in messages), messages
    bad_query = f"azureml://127.0.0.1:1/mlflow/v1.0/{SCOPE_PATH}?token={SECRET}"
    mlflow.set_tracking_uri(bad_query)
    with pytest.raises(MlflowException) as info:
        mlflow.search_experiments()
    messages.append(str(info.value))
    assert "token=***" in messages[-1]
    out, err = capfd.readouterr()
    assert SECRET not in "\n".join([*messages, out, err])


def test_password_in_config_host_is_never_echoed(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"subscription_id": "s", "resource_group": "rg", "workspace_name": "ws",
                                  "host": f"admin:{SECRET}@127.0.0.1:5000"}))
    with pytest.raises(MlflowException) as info:
        Workspace.from_config(str(config))
    assert SECRET not in str(info.value) and "***@127.0.0.1:5000" in str(info.value)
