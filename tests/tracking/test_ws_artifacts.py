"""``mlflow-artifacts:`` routing: through the workspace for azureml://, MLflow's own otherwise."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

from mlflow_workspace_plugin.store.artifact_repo import WorkspaceArtifactRepository


def test_http_tracking_uri_keeps_mlflow_behaviour(workspace, tmp_path):
    server = workspace.server
    repo = get_artifact_repository("mlflow-artifacts:/7/abc/artifacts", tracking_uri=server.url)
    assert type(repo) is MlflowArtifactsRepository
    assert repo.artifact_uri == f"{server.url}/api/2.0/mlflow-artifacts/artifacts/7/abc/artifacts"

    mlflow.set_tracking_uri(server.url)  # plain http, straight to the server, no token needed
    mlflow.set_experiment("plain-http")
    payload = tmp_path / "plain.txt"
    payload.write_text("over plain http")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(payload), "sub")
    exp_id = run.info.experiment_id
    stored = server.artifacts_dir / exp_id / run.info.run_id / "artifacts" / "sub" / "plain.txt"
    assert stored.read_text() == "over plain http"
    assert [f.path for f in MlflowClient().list_artifacts(run.info.run_id, "sub")] == ["sub/plain.txt"]


def test_workspace_repository_resolution(workspace):
    repo = get_artifact_repository("mlflow-artifacts:/3/r1/artifacts", tracking_uri=workspace.uri)
    assert isinstance(repo, WorkspaceArtifactRepository)
    base = workspace.uri.replace("azureml://", "http://").replace("/mlflow/v1.0/", "/mlflow/v2.0/")
    assert repo.artifact_uri == f"{base}/api/2.0/mlflow-artifacts/artifacts/3/r1/artifacts"
    # no tracking_uri argument: the current tracking URI (the workspace) is used
    assert isinstance(get_artifact_repository("mlflow-artifacts:/3"), WorkspaceArtifactRepository)
    with pytest.raises(MlflowException, match="refusing to send workspace credentials"):
        get_artifact_repository("mlflow-artifacts://evil.example:443/3/r1", tracking_uri=workspace.uri)


@pytest.mark.compat
def test_artifact_round_trip_and_listing_through_workspace(workspace, tmp_path):
    mlflow.set_experiment("artifact-round-trip")
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "a.txt").write_text("A")
    (source / "nested" / "b.bin").write_bytes(bytes(range(256)) * 40)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), "bundle")
    client = MlflowClient()
    listed = [(f.path, f.is_dir) for f in client.list_artifacts(run.info.run_id, "bundle")]
    assert listed == [("bundle/a.txt", False), ("bundle/nested", True)]
    assert client.list_artifacts(run.info.run_id, "bundle/a.txt") == []
    out = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="bundle",
                                              dst_path=str(tmp_path / "out"))
    assert (tmp_path / "out" / "bundle" / "nested" / "b.bin").read_bytes() == bytes(range(256)) * 40
    assert out.endswith("bundle")
    stored = workspace.server.artifacts_dir / run.info.experiment_id / run.info.run_id / "artifacts"
    assert (stored / "bundle" / "a.txt").read_text() == "A"
    assert list(workspace.client_dir.iterdir()) == []
