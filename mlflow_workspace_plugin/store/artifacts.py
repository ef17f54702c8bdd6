"""Artifact repository factories: ``mlflow-artifacts:`` through the workspace, and the guard that
keeps workspace credentials (and workspace artifacts) inside the workspace.

A tracking server started with ``--serve-artifacts`` hands out ``mlflow-artifacts:/<path>``
artifact URIs, which the client resolves against the *tracking URI's* host. MLflow's own
``MlflowArtifactsRepository`` only accepts ``http(s)`` tracking URIs, so this factory routes:

* tracking URI ``azureml://...``  -> :class:`~.artifact_repo.WorkspaceArtifactRepository`
  (``<workspace REST base>/api/2.0/mlflow-artifacts/artifacts/<path>`` with the workspace token);
* anything else                   -> MLflow's ``MlflowArtifactsRepository``, unchanged.

Every path that ends in an ``mlflow-artifacts:`` URI (``runs:/``, ``models:/``, logged models,
model versions, ``mlflow.artifacts.download_artifacts``) goes through this one hook.

:func:`install_guard` (called when a workspace store is built) wraps MLflow's repositories for
``http``, ``https``, ``file`` and bare paths. With an ``azureml://`` tracking URI, an ``http(s)``
URI on the workspace's own origin gets the workspace repository (with its token); any other
``http(s)`` host never gets the workspace's credentials; and a location outside the workspace that
the workspace handed out is refused unless allowed (:mod:`.artifact_locations`). Other tracking
URIs get MLflow's repositories unchanged.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mlflow.entities import FileInfo
from mlflow.utils.rest_utils import MlflowHostCreds, augmented_raise_for_status, http_request
from mlflow.utils.uri import validate_path_is_safe

from mlflow_workspace_plugin import mlflow_compat

SCHEME = "mlflow-artifacts"
GUARDED_SCHEMES = ("", "file", "http", "https")


def _workspace_tracking_uri(tracking_uri: str | None) -> str | None:
    import mlflow

    from mlflow_workspace_plugin.uri import SCHEME as WORKSPACE_SCHEME

    effective = tracking_uri or mlflow.get_tracking_uri()
    if isinstance(effective, str) and urlsplit(effective).scheme == WORKSPACE_SCHEME:
        return effective
    return None


def mlflow_artifacts_repository(
    artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
) -> Any:
    """Artifact repository for an ``mlflow-artifacts:`` URI, resolved for the tracking URI."""
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

    workspace = _workspace_tracking_uri(tracking_uri)
    if workspace is not None:
        from mlflow_workspace_plugin.store.artifact_repo import WorkspaceArtifactRepository

        return WorkspaceArtifactRepository(artifact_uri, tracking_uri=workspace, registry_uri=registry_uri)
    return MlflowArtifactsRepository(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    def factory(artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> Any:
        workspace = _workspace_tracking_uri(tracking_uri)
        if workspace is None:
            return original(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)
        from mlflow_workspace_plugin.store import artifact_locations
        from mlflow_workspace_plugin.uri import parse_workspace_uri

        scope = parse_workspace_uri(workspace)
        web = urlsplit(artifact_uri).scheme.lower() in ("http", "https")
        if web and artifact_locations.is_inside(scope, artifact_uri):
            from mlflow_workspace_plugin.store.artifact_repo import WorkspaceArtifactRepository

            return WorkspaceArtifactRepository(artifact_uri, tracking_uri=workspace, registry_uri=registry_uri)
        artifact_locations.check(scope, artifact_uri, lambda experiment_id: _experiment_name(workspace, experiment_id))
        if web:
            return _AnonymousHttpArtifactRepository(artifact_uri, tracking_uri=tracking_uri,
                                                    registry_uri=registry_uri)
        return original(artifact_uri, tracking_uri=tracking_uri, registry_uri=registry_uri)

    factory.workspace_guard = True  # type: ignore[attr-defined]
    return factory


def _experiment_name(tracking_uri: str, experiment_id: str) -> str | None:
    from mlflow import MlflowClient

    try:
        return MlflowClient(tracking_uri).get_experiment(experiment_id).name
    except Exception:  # only used to word an error message
        return None


def install_guard() -> None:
    """Wrap MLflow's ``http``/``https``/``file``/bare-path repositories (once per process)."""
    from mlflow.store.artifact import artifact_repository_registry as registry

    repositories = registry.get_registered_artifact_repositories()
    for scheme in GUARDED_SCHEMES:
        current = repositories.get(scheme)
        if current is not None and not getattr(current, "workspace_guard", False):
            mlflow_compat.register_artifact_repository(scheme, _guarded(current))


class _AnonymousHttpArtifactRepository(mlflow_compat.CredentialedHttpArtifactRepository):
    """MLflow's HTTP repository for a host outside the workspace, sending no token, user or
    password: MLflow's own would send ``MLFLOW_TRACKING_TOKEN`` (the workspace's token) anywhere."""

    def request_creds(self) -> MlflowHostCreds:
        return _anonymous_creds(self.artifact_uri)

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """MLflow's listing, with :meth:`request_creds` instead of the tracking credentials."""
        endpoint = "/mlflow-artifacts/artifacts"
        if endpoint not in self.artifact_uri:
            return []
        url, tail = self.artifact_uri.split(endpoint, maxsplit=1)
        root = tail.lstrip("/")
        response = http_request(_anonymous_creds(url), endpoint, "GET",
                                params={"path": posixpath.join(root, path) if path else root})
        augmented_raise_for_status(response)
        infos = [FileInfo(posixpath.join(path, rel) if path else rel, f["is_dir"],
                          int(f["file_size"]) if "file_size" in f else None)
                 for f in response.json().get("files", []) for rel in [validate_path_is_safe(f["path"])]]
        if (path is not None and len(infos) == 1 and not infos[0].is_dir
                and infos[0].path == posixpath.join(path, posixpath.basename(path))):
            return []
        return sorted(infos, key=lambda info: info.path)


def _anonymous_creds(url: str) -> MlflowHostCreds:
    from mlflow.environment_variables import (
        MLFLOW_TRACKING_CLIENT_CERT_PATH,
        MLFLOW_TRACKING_INSECURE_TLS,
        MLFLOW_TRACKING_SERVER_CERT_PATH,
    )

    return MlflowHostCreds(url, ignore_tls_verification=MLFLOW_TRACKING_INSECURE_TLS.get(),
                           client_cert_path=MLFLOW_TRACKING_CLIENT_CERT_PATH.get(),
                           server_cert_path=MLFLOW_TRACKING_SERVER_CERT_PATH.get())
