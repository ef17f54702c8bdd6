"""Credentials never leave the workspace: secrets in URIs are redacted from every message, and
the workspace token only goes to the workspace's own host (issue 13, items 2 and 3)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import pytest
from azure.core.credentials import AccessToken
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ws_servers import SCOPE_PATH

from mlflow_workspace_plugin import Workspace, auth
from mlflow_workspace_plugin.store.artifact_locations import ForeignArtifactLocation
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


class _RotatingCredential:
    def __init__(self, prefix: str) -> None:
        self.prefix, self.issued = prefix, 0

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.issued += 1
        return AccessToken(f"{self.prefix}-{self.issued}", int(time.time() + 3600))


def test_artifact_transfers_refresh_a_rejected_token_once(workspace, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    credential = _RotatingCredential("art")
    auth.register_credential(workspace.uri, credential)
    workspace.door.tokens.add("art-1")
    try:
        mlflow.set_experiment("artifact-refresh")
        payload = tmp_path / "refreshed.txt"
        payload.write_text("refreshed")
        with mlflow.start_run() as run:
            workspace.door.tokens.discard("art-1")  # the gateway revokes token 1 early
            workspace.door.tokens.add("art-2")
            mlflow.log_artifact(str(payload), "sub")
            assert credential.issued == 2
            workspace.door.tokens.discard("art-2")
            workspace.door.tokens.add("art-3")
            listed = [f.path for f in MlflowClient().list_artifacts(run.info.run_id, "sub")]
            assert listed == ["sub/refreshed.txt"] and credential.issued == 3
        stored = workspace.server.artifacts_dir / run.info.experiment_id / run.info.run_id / "artifacts"
        assert (stored / "sub" / "refreshed.txt").read_text() == "refreshed"
    finally:
        workspace.door.tokens.difference_update({"art-1", "art-2", "art-3"})


class _Recorder:
    """A plain HTTP server on 127.0.0.1 playing "another host": records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append((self.command, self.path, self.headers.get("Authorization")))
                body = b'{"files": []}' if self.command == "GET" else b""
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    server = _Recorder()
    yield server
    server.stop()


def _serve_location_elsewhere(workspace, experiment: str, location: str) -> str:
    """The workspace answers with ``location`` as the experiment's artifact location (what a
    compromised server, or a writer allowed to set any location, produces)."""
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    ours = f"mlflow-artifacts:/{experiment_id}".encode()
    workspace.door.faults.rewrite(lambda body: body.replace(ours + b'"', location.encode() + b'"')
                                  .replace(ours + b"/", location.encode() + b"/"))
    return experiment_id


def test_foreign_http_artifact_location_never_gets_the_workspace_token(workspace, recorder, monkeypatch, tmp_path):
    location = f"http://127.0.0.1:{recorder.port}/api/2.0/mlflow-artifacts/artifacts/elsewhere"
    _serve_location_elsewhere(workspace, "foreign-http", location)
    payload = tmp_path / "model.txt"
    payload.write_text("weights")
    with mlflow.start_run() as run:
        assert run.info.artifact_uri.startswith(location)
        with pytest.raises(ForeignArtifactLocation) as info:
            mlflow.log_artifact(str(payload))
        message = str(info.value)
        assert "'foreign-http'" in message and location in message and "another host" in message
        assert "MLFLOW_WORKSPACE_ALLOW_FOREIGN_ARTIFACTS=true" in message
        assert recorder.requests == []  # refused before anything was sent

        monkeypatch.setenv("MLFLOW_WORKSPACE_ALLOW_FOREIGN_ARTIFACTS", "true")
        mlflow.log_artifact(str(payload), "sub")
        MlflowClient().list_artifacts(run.info.run_id, "sub")
    methods = [method for method, _, _ in recorder.requests]
    assert "PUT" in methods and "GET" in methods
    assert all(auth_header is None for _, _, auth_header in recorder.requests), recorder.requests
    assert any(path.endswith("/sub/model.txt") for _, path, _ in recorder.requests)


@pytest.mark.parametrize("form", ["bare path", "file URI"])
def test_local_folder_artifact_location_is_refused_unless_allowed(workspace, monkeypatch, tmp_path, form):
    elsewhere = tmp_path / "client-disk"
    location = str(elsewhere) if form == "bare path" else elsewhere.as_uri()
    _serve_location_elsewhere(workspace, "foreign-local", location)
    payload = tmp_path / "model.txt"
    payload.write_text("weights")
    with mlflow.start_run() as run:
        with pytest.raises(ForeignArtifactLocation) as info:
            mlflow.log_artifact(str(payload))
        assert "'foreign-local'" in str(info.value) and "a folder on this machine" in str(info.value)
        assert not elsewhere.exists()
        monkeypatch.setenv("MLFLOW_WORKSPACE_ALLOW_FOREIGN_ARTIFACTS", "true")
        mlflow.log_artifact(str(payload))
    assert (elsewhere / run.info.run_id / "artifacts" / "model.txt").read_text() == "weights"


def test_local_paths_of_the_user_still_work_with_a_workspace_uri(workspace, tmp_path):
    source = tmp_path / "my-model"
    source.mkdir()
    (source / "MLmodel").write_text("flavors: {}\n")
    out = mlflow.artifacts.download_artifacts(artifact_uri=str(source), dst_path=str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "my-model" / "MLmodel").exists() or (tmp_path / "copy" / "MLmodel").exists(), out
