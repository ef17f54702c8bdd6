"""Malformed ``azureml://`` tracking URIs fail on first use with the expected shape in the error."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.errors import WorkspaceUriError
from mlflow_workspace_plugin.uri import EXPECTED_SHAPE

SCOPE = "subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
BAD_URIS = [
    "azureml:///mlflow/v1.0/" + SCOPE,  # no host
    "azureml://127.0.0.1:5000/mlflow/v1.0/subscriptions/sub/resourceGroups/rg",  # truncated scope
    "azureml://127.0.0.1:5000/some/other/path",
    "azureml://127.0.0.1:5000/mlflow/v1.0/" + SCOPE.replace("Microsoft.MachineLearningServices", "Other.Provider"),
    "azureml://127.0.0.1:99999/mlflow/v1.0/" + SCOPE,  # bad port
    "azureml://127.0.0.1:5000/mlflow/v1.0/" + SCOPE + "?x=1",  # query string
    "azureml://127.0.0.1:5000/mlflow/v1.0/" + SCOPE.replace("/rg/", "/r g/"),  # bad name
]


@pytest.mark.parametrize("uri", BAD_URIS)
def test_malformed_tracking_uri_error_shows_expected_shape(uri):
    mlflow.set_tracking_uri(uri)
    with pytest.raises(WorkspaceUriError) as info:
        mlflow.search_experiments()
    assert EXPECTED_SHAPE in str(info.value)
    with pytest.raises(WorkspaceUriError):
        MlflowClient(uri).search_registered_models()


def test_unknown_workspace_is_not_found_not_an_auth_error(workspace):
    other = workspace.uri.replace("/workspaces/ws-tests", "/workspaces/some-other-ws")
    mlflow.set_tracking_uri(other)
    with pytest.raises(MlflowException) as info:
        mlflow.search_experiments()
    assert "404" in str(info.value) and workspace.token not in str(info.value)
