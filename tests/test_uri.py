"""azureml:// URI parsing: mapping to the REST base and errors showing the expected shape."""

from __future__ import annotations

import pytest

from mlflow_workspace_plugin.errors import WorkspaceUriError
from mlflow_workspace_plugin.uri import EXPECTED_SHAPE, parse_workspace_uri

SCOPE = "subscriptions/sub-1/resourceGroups/rg_1/providers/Microsoft.MachineLearningServices/workspaces/ws.1"


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("eastus.api.azureml.ms", "https://eastus.api.azureml.ms/mlflow/v2.0/"),
        ("127.0.0.1:5000", "http://127.0.0.1:5000/mlflow/v2.0/"),
        ("127.8.9.1:80", "http://127.8.9.1:80/mlflow/v2.0/"),
        ("localhost:8080", "http://localhost:8080/mlflow/v2.0/"),
        ("[::1]:8080", "http://[::1]:8080/mlflow/v2.0/"),
        ("10.0.0.5:5000", "https://10.0.0.5:5000/mlflow/v2.0/"),
    ],
)
def test_rest_base(host, base):
    scope = parse_workspace_uri(f"azureml://{host}/mlflow/v1.0/{SCOPE}")
    assert scope.rest_base_url == base + SCOPE
    assert scope.workspace_name == "ws.1" and scope.resource_group == "rg_1"


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        (f"azureml:///mlflow/v1.0/{SCOPE}", "host is missing"),
        (f"azureml://h:0/mlflow/v1.0/{SCOPE}", "port"),
        (f"azureml://h:abc/mlflow/v1.0/{SCOPE}", "port"),
        (f"azureml://h/mlflow/v1.0/{SCOPE}?api-version=1", "query strings"),
        ("azureml://h/mlflow/v1.0/subscriptions/s/resourceGroups/r/providers/Other.Provider/workspaces/w", "provider"),
        ("azureml://h/mlflow/v1.0/subscriptions//resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w", "shape"),
        ("azureml://h/mlflow/v1.0/subscriptions/s/resourceGroups/r", "shape"),
        (f"http://h/mlflow/v1.0/{SCOPE}", "scheme"),
        ("azureml://h/mlflow/v1.0/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/-w", "workspace_name"),
    ],
)
def test_malformed_uris_show_expected_shape(uri, why):
    with pytest.raises(WorkspaceUriError) as err:
        parse_workspace_uri(uri)
    message = str(err.value)
    assert why in message and EXPECTED_SHAPE in message
