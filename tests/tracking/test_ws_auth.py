"""Auth through the front door: wrong/missing tokens, registered credentials and refresh."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import mlflow
import pytest
from azure.core.credentials import AccessToken
from mlflow import MlflowClient
from ws_front_door import Reply
from ws_servers import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE

from mlflow_workspace_plugin import Workspace, auth
from mlflow_workspace_plugin.auth import ARM_SCOPE, REFRESH_MARGIN_SECONDS, WorkspaceAuthError

_AZURE_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
              "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
              "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT")


class RotatingCredential:
    """azure-core style credential: hands out ``<prefix>-1``, ``<prefix>-2``... with a set lifetime."""

    def __init__(self, prefix: str, lifetimes: list[float]) -> None:
        self.prefix, self.lifetimes = prefix, lifetimes
        self.calls: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        with self.lock:
            self.calls.append(scopes)
            n = len(self.calls)
            lifetime = self.lifetimes[min(n, len(self.lifetimes)) - 1]
        return AccessToken(f"{self.prefix}-{n}", int(time.time() + lifetime))


def _single_clear_error(exc: BaseException) -> None:
    assert exc.__cause__ is None and exc.__suppress_context__, "error must not chain library noise"


def test_wrong_token_is_one_clear_error_without_the_token(workspace, monkeypatch):
    wrong = "wrong-" + "x" * 30
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", wrong)
    with pytest.raises(WorkspaceAuthError) as info:
        mlflow.search_experiments()
    message = str(info.value)
    assert "401" in message and "MLFLOW_TRACKING_TOKEN" in message and WORKSPACE in message
    assert wrong not in message and workspace.token not in message
    _single_clear_error(info.value)


def test_artifact_upload_with_revoked_token_is_a_clear_error(workspace, monkeypatch, tmp_path):
    mlflow.set_experiment("auth-artifacts")
    run = MlflowClient().create_run(mlflow.get_experiment_by_name("auth-artifacts").experiment_id)
    payload = tmp_path / "payload.txt"
    payload.write_text("data")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "revoked-token-value")
    with pytest.raises(WorkspaceAuthError) as info:
        MlflowClient().log_artifact(run.info.run_id, str(payload))
    assert "MLFLOW_TRACKING_TOKEN" in str(info.value) and "revoked-token-value" not in str(info.value)


def test_gateway_403_with_azure_style_body(workspace):
    body = json.dumps({"error": {"code": "AuthorizationFailed", "message": "no access"}}).encode()
    workspace.door.faults.rules.append(lambda request: Reply(403, body, {"Content-Type": "application/json"}))
    with pytest.raises(WorkspaceAuthError) as info:
        mlflow.search_experiments()
    assert "403" in str(info.value) and "MLFLOW_TRACKING_TOKEN" in str(info.value)


def test_no_token_and_no_credential_fails_fast_with_one_error(workspace, monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    for name in _AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    # Developer credentials only (no managed-identity probe off the machine), none installed/signed in.
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    caplog.set_level(logging.DEBUG)
    rejected_before = workspace.door.stats["unauthorised"]
    started = time.monotonic()
    with pytest.raises(WorkspaceAuthError) as info:
        mlflow.search_experiments()
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert message.startswith("No credential for workspace")
    assert "MLFLOW_TRACKING_TOKEN is not set" in message and "DefaultAzureCredential" in message
    assert "az login" in message and "Traceback" not in message
    _single_clear_error(info.value)
    assert not [r for r in caplog.records if r.name.startswith("azure.identity") and r.levelno >= logging.WARNING]
    assert workspace.door.stats["unauthorised"] == rejected_before  # nothing was sent without a token


def test_registered_credential_is_used_and_refreshed_near_expiry(workspace, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    credential = RotatingCredential("cred-token", [REFRESH_MARGIN_SECONDS + 1.5, 3600])
    workspace.door.tokens.update({"cred-token-1", "cred-token-2"})
    try:
        ws = Workspace(workspace_name=WORKSPACE, subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP,
                       host=f"127.0.0.1:{workspace.door.port}", credential=credential)
        uri = ws.get_mlflow_tracking_uri()
        assert uri == workspace.uri
        mlflow.set_tracking_uri(uri)

        mlflow.search_experiments()
        mlflow.search_experiments()
        assert len(credential.calls) == 1 and credential.calls[0] == (ARM_SCOPE,)  # cached
        assert workspace.door.seen_tokens["cred-token-1"] >= 2

        time.sleep(1.6)  # now within the refresh margin of token 1's expiry
        mlflow.search_experiments()
        mlflow.search_experiments()
        assert len(credential.calls) == 2
        assert workspace.door.seen_tokens["cred-token-2"] >= 2
        assert auth.child_environment(uri) == {"MLFLOW_TRACKING_TOKEN": "cred-token-2"}
    finally:
        workspace.door.tokens.difference_update({"cred-token-1", "cred-token-2"})


def test_rejected_registered_credential_names_its_class(workspace, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    auth.register_credential(workspace.uri, RotatingCredential("not-accepted", [3600]))
    with pytest.raises(WorkspaceAuthError) as info:
        mlflow.search_experiments()
    assert "RotatingCredential" in str(info.value) and "not-accepted" not in str(info.value)


def test_env_token_wins_over_registered_credential(workspace):
    credential = RotatingCredential("unused", [3600])
    auth.register_credential(workspace.uri, credential)
    mlflow.search_experiments()
    assert credential.calls == []


def test_failing_credential_is_one_clear_error(workspace, monkeypatch):
    class BrokenCredential:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            raise RuntimeError("tenant not found\nlots of\nnoise")

    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    auth.register_credential(workspace.uri, BrokenCredential())
    with pytest.raises(WorkspaceAuthError) as info:
        mlflow.search_experiments()
    assert "BrokenCredential" in str(info.value) and "tenant not found" in str(info.value)
    assert "noise" not in str(info.value)
    _single_clear_error(info.value)


def test_tokens_are_not_logged(workspace, caplog, tmp_path: Path):
    caplog.set_level(logging.DEBUG)
    mlflow.set_experiment("auth-logging")
    with mlflow.start_run():
        mlflow.log_param("p", 1)
    assert workspace.token not in caplog.text
