"""Proxied artifact access (``mlflow-artifacts:``) through a workspace, with its bearer token.

Reuses MLflow's ``HttpArtifactRepository`` (listing, delete, single-file download) with the
resolved URL and the per-request host credentials; uploads and downloads of files and folders go
through :mod:`.transfers` (parallel, pooled keep-alive connections, retried file by file, progress,
errors naming each failed file; large files via MLflow's multipart upload where offered). Every
byte goes through the workspace endpoint (presigned URLs only if the workspace hands them out).
"""

from __future__ import annotations

import functools
import ntpath
import posixpath
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from mlflow.entities import FileInfo
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.utils.rest_utils import MlflowHostCreds, augmented_raise_for_status, http_request
from mlflow.utils.uri import validate_path_is_safe

from mlflow_workspace_plugin import auth, mlflow_compat
from mlflow_workspace_plugin.store.session import is_workspace_url
from mlflow_workspace_plugin.uri import WorkspaceScope, parse_workspace_uri, redact

API_ROOT = "/api/2.0"
ARTIFACTS_ENDPOINT = "/mlflow-artifacts/artifacts"
_F = TypeVar("_F", bound=Callable[..., Any])


def _auth_errors(method: _F) -> _F:
    """On 401 refresh the token once and try again; 401/403 after that is one clear
    :class:`auth.WorkspaceAuthError` (:func:`auth.refreshing`, shared with REST calls and the sender)."""

    @functools.wraps(method)
    def wrapper(self: WorkspaceArtifactRepository, *args: Any, **kwargs: Any) -> Any:
        return auth.refreshing(self.scope, lambda: method(self, *args, **kwargs))

    return wrapper  # type: ignore[return-value]


def check_artifact_path(path: str | None) -> str | None:
    """Reject (client-side, before any request) artifact paths that are absolute or climb out of
    the run's artifact folder with ``..``; returns ``path`` unchanged otherwise."""
    if path is None or path == "":
        return path
    if not isinstance(path, str):
        raise MlflowException(f"Artifact path must be a string, got {type(path).__name__}",
                              INVALID_PARAMETER_VALUE)
    unified = path.replace("\\", "/")
    parts = unified.split("/")
    if (unified.startswith("/") or posixpath.isabs(unified) or ntpath.isabs(path) or ntpath.splitdrive(path)[0]
            or ".." in parts or "\x00" in path):
        raise MlflowException(
            f"Artifact path {path!r} is not allowed: artifact paths are relative to the run's artifact "
            "folder and must not be absolute or contain '..' (e.g. 'plots' or 'models/final').",
            INVALID_PARAMETER_VALUE,
        )
    return path


def resolve_artifact_url(artifact_uri: str, scope: WorkspaceScope) -> str:
    """``mlflow-artifacts:/<path>`` -> ``<REST base>/api/2.0/mlflow-artifacts/artifacts/<path>``;
    an ``http(s)`` URL on the workspace's own origin is used as it is."""
    parsed = urlsplit(artifact_uri)
    if parsed.scheme in ("http", "https") and is_workspace_url(scope, artifact_uri):
        return artifact_uri
    if parsed.scheme != "mlflow-artifacts":
        raise MlflowException(f"Not an mlflow-artifacts URI: {redact(artifact_uri)!r}", INVALID_PARAMETER_VALUE)
    if parsed.netloc and parsed.netloc != scope.host:
        raise MlflowException(
            f"Artifact URI {redact(artifact_uri)!r} names host {redact(parsed.netloc)!r}, but the tracking URI's "
            f"workspace is served by {scope.host!r}; refusing to send workspace credentials to "
            "another host. Use 'mlflow-artifacts:/<path>' URIs with an azureml:// tracking URI.",
            INVALID_PARAMETER_VALUE,
        )
    if ".." in unquote(parsed.path).replace("\\", "/").split("/"):
        raise MlflowException(
            f"Artifact URI {redact(artifact_uri)!r} is not allowed: artifact paths are relative to the run's "
            "artifact folder and must not be absolute or contain '..'.", INVALID_PARAMETER_VALUE)
    path = parsed.path.strip("/")
    service_prefix = (API_ROOT + ARTIFACTS_ENDPOINT).strip("/")
    if path == service_prefix or path.startswith(service_prefix + "/"):
        path = path[len(service_prefix):].strip("/")
    base = f"{scope.rest_base_url}{API_ROOT}{ARTIFACTS_ENDPOINT}"
    return f"{base}/{path}" if path else base


class WorkspaceArtifactRepository(mlflow_compat.CredentialedHttpArtifactRepository):
    """``mlflow-artifacts:`` repository whose tracking URI is an ``azureml://`` workspace."""

    def __init__(self, artifact_uri: str, tracking_uri: str, registry_uri: str | None = None) -> None:
        self.scope = parse_workspace_uri(tracking_uri)
        self.source_uri = artifact_uri
        super().__init__(resolve_artifact_url(artifact_uri, self.scope),
                         tracking_uri=tracking_uri, registry_uri=registry_uri)

    def request_creds(self) -> MlflowHostCreds:
        return auth.host_creds(self.scope, host=self.artifact_uri)

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        from mlflow_workspace_plugin.store import transfers

        transfers.upload_file(self, local_file, check_artifact_path(artifact_path))

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        from mlflow_workspace_plugin.store import transfers

        transfers.upload_tree(self, local_dir, check_artifact_path(artifact_path))

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        from mlflow_workspace_plugin.store import transfers

        return transfers.download_tree(self, check_artifact_path(artifact_path), dst_path)

    @_auth_errors
    def download_one(self, remote_file_path: str, local_path: str) -> None:
        super().download_one(remote_file_path, local_path)

    @_auth_errors
    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        super().delete_artifacts(check_artifact_path(artifact_path))

    @_auth_errors
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """List one directory level (``[]`` when ``path`` names a single file, like MLflow)."""
        check_artifact_path(path)
        api_base = f"{self.scope.rest_base_url}{API_ROOT}"
        root = self.artifact_uri[len(api_base + ARTIFACTS_ENDPOINT):].strip("/")
        query = posixpath.join(root, path) if path else root
        resp = http_request(auth.host_creds(self.scope, host=api_base), ARTIFACTS_ENDPOINT, "GET",
                            params={"path": query})
        augmented_raise_for_status(resp)
        infos = []
        for entry in resp.json().get("files", []):
            rel = validate_path_is_safe(entry["path"])
            size = int(entry["file_size"]) if "file_size" in entry else None
            infos.append(FileInfo(posixpath.join(path, rel) if path else rel, entry["is_dir"], size))
        if (path is not None and len(infos) == 1 and not infos[0].is_dir
                and infos[0].path == posixpath.join(path, posixpath.basename(path))):
            return []
        return sorted(infos, key=lambda info: info.path)
