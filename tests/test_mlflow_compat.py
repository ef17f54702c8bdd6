"""Every private MLflow / Ray name :mod:`mlflow_workspace_plugin.mlflow_compat` relies on resolves on the
installed versions (run on the newest release and, in the compatibility tier, on the declared floor).

An override whose MLflow hook was renamed would silently stop being called (requests would go
through MLflow's own retries and credentials), so each overridden hook must exist in MLflow.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mlflow
import pytest
from mlflow.protos.model_registry_pb2 import GetRegisteredModel
from mlflow.protos.service_pb2 import GetRun, LogBatch, UpdateRun
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
from mlflow.store.model_registry.rest_store import RestStore as MlflowRegistryRestStore
from mlflow.store.tracking.rest_store import RestStore as MlflowTrackingRestStore

from mlflow_workspace_plugin import mlflow_compat

pytestmark = pytest.mark.compat  # resolving the names is the first check of the tier

# hooks MLflow only has from some version on; before it the override is simply not called
OPTIONAL_HOOKS = {"_call_webhook_endpoint": "webhooks exist from MLflow 3.4",
                  "_is_multipart_upload_enabled": "a method from MLflow 3.11 (an env var before)"}


@pytest.mark.parametrize("ours, theirs", [
    (mlflow_compat.TrackingRestStore, MlflowTrackingRestStore),
    (mlflow_compat.RegistryRestStore, MlflowRegistryRestStore),
    (mlflow_compat.CredentialedHttpArtifactRepository, HttpArtifactRepository),
])
def test_every_overridden_hook_exists_in_mlflow(ours, theirs):
    hooks = [name for name in vars(ours) if name.startswith("_") and not name.startswith("__")
             and name != "_abc_impl"]
    assert hooks
    missing = [name for name in hooks if not hasattr(theirs, name) and name not in OPTIONAL_HOOKS]
    assert missing == [], f"MLflow {mlflow.__version__} has no {missing} on {theirs.__name__}"


def test_tracking_endpoints_resolve():
    assert mlflow_compat.tracking_endpoint(LogBatch) == ("/api/2.0/mlflow/runs/log-batch", "POST")
    assert mlflow_compat.tracking_endpoint(UpdateRun) == ("/api/2.0/mlflow/runs/update", "POST")
    assert mlflow_compat.tracking_endpoint(GetRun) == ("/api/2.0/mlflow/runs/get", "GET")


def test_registry_store_sends_through_send():
    sent = []

    class Recording(mlflow_compat.RegistryRestStore):
        def send(self, endpoint, method, json_body, response_proto, extra_headers=None):
            sent.append((endpoint, method))
            response_proto.registered_model.name = "m"
            return response_proto

    store = Recording(lambda: None)
    assert store.get_registered_model("m").name == "m"
    assert sent == [("/api/2.0/mlflow/registered-models/get", "GET")]
    assert GetRegisteredModel is not None


def test_tracking_store_sends_through_send_and_pages_through_search_runs_page():
    sent, pages = [], []

    class Recording(mlflow_compat.TrackingRestStore):
        def send(self, endpoint, method, json_body, response_proto, extra_headers=None):
            sent.append((endpoint, method))
            return response_proto

        def search_runs_page(self, *args, **kwargs):
            pages.append(args)
            return super().search_runs_page(*args, **kwargs)

    store = Recording(lambda: None)
    assert list(store.search_runs(["1"], "", 1)) == []
    assert sent == [("/api/2.0/mlflow/runs/search", "POST")] and len(pages) == 1


def test_artifact_repository_takes_its_credentials_from_request_creds(tmp_path):
    from mlflow.utils.rest_utils import MlflowHostCreds

    class Repo(mlflow_compat.CredentialedHttpArtifactRepository):
        def request_creds(self):
            return MlflowHostCreds("http://127.0.0.1:9", token="t")

    repo = Repo("http://127.0.0.1:9/api/2.0/mlflow-artifacts/artifacts/x")
    assert repo._host_creds.token == "t"
    assert repo._is_multipart_upload_enabled() is False
    dst = mlflow_compat.download_destination(repo, "a/b.txt", str(tmp_path))
    assert Path(dst) == tmp_path / "a" / "b.txt" and (tmp_path / "a").is_dir()


def test_register_artifact_repository(tmp_path):
    made = []

    def factory(artifact_uri, tracking_uri=None, registry_uri=None):
        made.append(artifact_uri)
        return object()

    mlflow_compat.register_artifact_repository("compat-test", factory)
    get_artifact_repository("compat-test://x")
    assert made == ["compat-test://x"]


def test_tracking_context_and_project_helpers(tmp_path):
    assert mlflow_compat.is_tracking_uri_set() is False
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'm.db'}")
    assert mlflow_compat.is_tracking_uri_set() is True
    assert mlflow_compat.current_user()
    assert mlflow_compat.is_local_project_uri(str(tmp_path)) is True
    assert mlflow_compat.is_local_project_uri("https://github.com/a/b") is False
    assert mlflow_compat.expand_project_uri(str(tmp_path)) == str(tmp_path)
    assert mlflow_compat.git_url_if_present(str(tmp_path)) == str(tmp_path)  # not a git checkout
    assert mlflow_compat.is_valid_branch_name(str(tmp_path), None) is False
    assert mlflow_compat.Project.__name__ == "Project"
    assert callable(mlflow_compat.docker_command)


def test_transfer_helpers():
    assert mlflow_compat.guess_mime_type("a.png") == "image/png"
    assert mlflow_compat.unsupported_multipart_message()


def test_python_env_helpers(tmp_path):
    python_env = tmp_path / "python_env.yaml"
    python_env.write_text("python: '3.11'\ndependencies:\n  - pandas==2.2\n", encoding="utf-8")
    assert mlflow_compat.python_env_dependencies(python_env) == ["pandas==2.2"]
    conda = tmp_path / "conda.yaml"
    conda.write_text("dependencies:\n  - python=3.11\n  - pip:\n    - scipy\n", encoding="utf-8")
    assert "scipy" in mlflow_compat.python_env_from_conda_yaml(conda).dependencies
    assert mlflow_compat.python_env_from_yaml(None).dependencies in (None, [])


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_job_client_gets_a_timeout_on_every_request():
    from ray.job_submission import JobSubmissionClient

    assert hasattr(JobSubmissionClient, "_do_request")
    cls = mlflow_compat.job_submission_client_class(lambda endpoint: 7.0)
    assert issubclass(cls, JobSubmissionClient) and "_do_request" in vars(cls)
