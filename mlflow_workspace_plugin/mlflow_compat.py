"""Every private MLflow and Ray name this package uses, in one place (ground floor: imports nothing of ours).

Why a private name at all: where MLflow offers a public extension point the package uses it (the
``mlflow.tracking_store`` / ``mlflow.model_registry_store`` / ``mlflow.artifact_repository`` /
``mlflow.project_backend`` entry points, ``MlflowClient(tracking_uri, registry_uri)``,
``mlflow.get_tracking_uri()``, request header providers through ``resolve_request_headers``).
What is left has no public equivalent:

* the REST stores' request step (``_call_endpoint``): MLflow's ``request_auth_provider`` can add a
  token, but not replace ``http_request``'s minutes of urllib3 retries and uncapped ``Retry-After``
  with the workspace's bounded policy, its one token refresh on 401, or its one clear error naming
  the credential - so the stores keep MLflow's protos and endpoints and send through
  ``WorkspaceSession`` (``store/rest.py``);
* the HTTP artifact repository's per-request credentials (``_host_creds``) and multipart switch;
* ``_artifact_repository_registry.register``: wrapping ``http``/``https``/``file`` repositories is
  only possible on the registry object (an entry point for those schemes would replace MLflow's own
  in every process, workspace or not);
* MLflow's virtualenv / python_env helpers (``_PythonEnv``, ``_create_virtualenv``...) that
  ``mlflow run`` and ``mlflow models serve`` build environments with (same cache, same names);
* Ray's ``JobSubmissionClient._do_request``: the SDK sets no timeout on its requests.

Checked against: MLflow 3.0.1, 3.1.4, 3.2.0, 3.3.2, 3.4.0, 3.5.1, 3.6.0, 3.7.0, 3.8.1, 3.9.0, 3.10.1,
3.11.1, 3.12.0, 3.13.0, 3.14.0, 3.15.2, 3.16.1, 3.17.2 (``tests/test_mlflow_compat.py`` resolves each
name on the installed version); Ray 2.40-2.60 for ``_do_request``. Where versions differ, the
function below says how. The floor the package declares (pyproject) is the oldest version the
compatibility tier passes on (README, "MLflow versions").
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import RestException
from mlflow.protos.databricks_pb2 import ENDPOINT_NOT_FOUND, ErrorCode
from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
from mlflow.store.model_registry.rest_store import RestStore as _MlflowRegistryRestStore
from mlflow.store.tracking import rest_store as _tracking_rest_store
from mlflow.store.tracking.rest_store import RestStore as _MlflowTrackingRestStore

if TYPE_CHECKING:
    from mlflow.utils.rest_utils import MlflowHostCreds


def __getattr__(name: str) -> Any:
    """``Project``: the class ``mlflow.projects.utils.load_project`` returns, whose only home is
    the private ``mlflow.projects._project_spec`` (3.0-3.17); loaded on first use (type hints)."""
    if name == "Project":
        from mlflow.projects._project_spec import Project

        return Project
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- tracking REST store
def tracking_endpoint(api: Any) -> tuple[str, str]:
    """``(endpoint, HTTP method)`` MLflow's tracking ``RestStore`` uses for request proto ``api``.

    3.8+: class attributes ``RestStore._METHOD_TO_INFO`` / ``_V3_METHOD_TO_INFO`` (for the APIs in
    ``_V3_APIS``); 3.5-3.7: ``RestStore._METHOD_TO_INFO`` only; 3.0-3.4: module-level ``_METHOD_TO_INFO``.
    """
    cls = _MlflowTrackingRestStore
    if api in getattr(cls, "_V3_APIS", ()):
        return cls._V3_METHOD_TO_INFO[api]
    table = getattr(cls, "_METHOD_TO_INFO", None)
    if table is None:
        table = _tracking_rest_store._METHOD_TO_INFO
    return table[api]


class TrackingRestStore(_MlflowTrackingRestStore):
    """MLflow's tracking ``RestStore`` whose every request goes to :meth:`send` (and whose
    ``search_runs`` pages come from :meth:`search_runs_page`).

    Overrides ``_call_endpoint`` (signature 3.0-3.9: ``api, json_body, endpoint, retry_timeout_seconds``;
    3.10+: ``response_proto`` added) and ``_search_runs`` (the hook ``AbstractStore.search_runs``
    pages through, unchanged since MLflow 1.x).
    """

    def send(self, endpoint: str, method: str, json_body: str | None, response_proto: Any,
             extra_headers: dict[str, str] | None = None) -> Any:
        """Send one request and parse the answer into ``response_proto`` (subclasses implement)."""
        raise NotImplementedError

    def search_runs_page(self, *args: Any, **kwargs: Any) -> Any:
        """One page of ``search_runs``: ``(runs, next page token)``."""
        return _MlflowTrackingRestStore._search_runs(self, *args, **kwargs)

    def _call_endpoint(self, api: Any, json_body: str | None = None, endpoint: str | None = None,
                       retry_timeout_seconds: float | None = None, response_proto: Any = None) -> Any:
        _validate_workspace_support(self)
        default_endpoint, method = tracking_endpoint(api)
        return self.send(endpoint or default_endpoint, method, json_body, response_proto or api.Response())

    def _search_runs(self, *args: Any, **kwargs: Any) -> Any:
        return self.search_runs_page(*args, **kwargs)


def _validate_workspace_support(store: Any) -> None:
    """3.10+ checks MLflow's own multi-workspace header support before a call; earlier: nothing."""
    check = getattr(store, "_validate_workspace_support_if_specified", None)
    if check is not None:
        check()


# --------------------------------------------------------------------------- registry REST store
class RegistryRestStore(_MlflowRegistryRestStore):
    """MLflow's model registry ``RestStore`` whose every request goes to :meth:`send`.

    Overrides ``_call_endpoint`` (same signature 3.0-3.17) with MLflow's own endpoint lookup
    (``_get_endpoint_from_method`` / ``_get_all_endpoints_from_method`` / ``_get_response_from_method``)
    and its fallback to the next endpoint on ``ENDPOINT_NOT_FOUND``; and ``_call_webhook_endpoint``
    (3.4+; webhooks do not exist before).
    """

    def send(self, endpoint: str, method: str, json_body: str | None, response_proto: Any,
             extra_headers: dict[str, str] | None = None) -> Any:
        """Send one request and parse the answer into ``response_proto`` (subclasses implement)."""
        raise NotImplementedError

    def _call_endpoint(self, api: Any, json_body: str | None, call_all_endpoints: bool = False,
                       extra_headers: dict[str, str] | None = None) -> Any:
        _validate_workspace_support(self)
        response_proto = self._get_response_from_method(api)
        endpoints = (self._get_all_endpoints_from_method(api) if call_all_endpoints
                     else [self._get_endpoint_from_method(api)])
        for index, (endpoint, method) in enumerate(endpoints):
            try:
                return self.send(endpoint, method, json_body, response_proto, extra_headers)
            except RestException as exc:  # older servers: try the next endpoint (as MLflow does)
                if exc.error_code != ErrorCode.Name(ENDPOINT_NOT_FOUND) or index == len(endpoints) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _call_webhook_endpoint(self, api: Any, json_body: str | None = None, webhook_id: str | None = None) -> Any:
        endpoint, method = self._get_webhook_endpoint_from_method(api)
        if webhook_id:
            endpoint = endpoint.format(webhook_id=webhook_id)
        return self.send(endpoint, method, json_body, self._get_response_from_method(api))


# --------------------------------------------------------------------------- artifact repositories
class CredentialedHttpArtifactRepository(HttpArtifactRepository):
    """MLflow's ``HttpArtifactRepository`` with the credentials of each request from
    :meth:`request_creds` (its ``_host_creds`` property, 3.0-3.17), each single-file download
    through :meth:`download_one` (``_download_file``, 3.0-3.17) and MLflow's proxied multipart
    upload off (``_is_multipart_upload_enabled``, 3.11+; before that MLflow reads
    ``MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD``, off by default): MLflow's multipart calls fetch the
    tracking credentials themselves."""

    def request_creds(self) -> MlflowHostCreds:
        """Credentials for the next request (subclasses implement)."""
        raise NotImplementedError

    def download_one(self, remote_file_path: str, local_path: str) -> None:
        """Download one file (MLflow's own single-file download)."""
        HttpArtifactRepository._download_file(self, remote_file_path, local_path)

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        self.download_one(remote_file_path, local_path)

    @property
    def _host_creds(self) -> MlflowHostCreds:
        return self.request_creds()

    def _is_multipart_upload_enabled(self) -> bool:
        return False


def download_file(repo: Any, remote_path: str, local_path: str) -> None:
    """Download one file of ``repo`` (``ArtifactRepository._download_file``, 3.0-3.17: the step
    every repository implements and ``download_artifacts`` calls per file)."""
    repo._download_file(remote_path, local_path)


def download_destination(repo: Any, remote_path: str, dst_dir: str) -> str:
    """The local path ``download_artifacts`` would write ``remote_path`` to under ``dst_dir``,
    parent folders created (``ArtifactRepository._create_download_destination``, 3.0-3.17)."""
    return repo._create_download_destination(src_artifact_path=remote_path, dst_local_dir_path=dst_dir)


def register_artifact_repository(scheme: str, factory: Callable[..., Any]) -> None:
    """Put ``factory`` in MLflow's artifact repository registry for ``scheme``
    (``artifact_repository_registry._artifact_repository_registry.register``, 3.0-3.17)."""
    from mlflow.store.artifact import artifact_repository_registry as registry

    registry._artifact_repository_registry.register(scheme, factory)


# --------------------------------------------------------------------------- tracking context
def is_tracking_uri_set() -> bool:
    """True if ``mlflow.set_tracking_uri`` or ``MLFLOW_TRACKING_URI`` chose a tracking URI
    (``mlflow.tracking._tracking_service.utils.is_tracking_uri_set``, 3.0-3.17)."""
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set as is_set

    return is_set()


def current_user() -> str:
    """The ``mlflow.user`` MLflow records for a new run
    (``mlflow.tracking.context.default_context._get_user``, 3.0-3.17)."""
    try:
        from mlflow.tracking.context.default_context import _get_user
    except ImportError:  # pragma: no cover - same rule as MLflow's
        try:
            return getpass.getuser()
        except (ImportError, KeyError, OSError):
            return "unknown"
    return _get_user()


# --------------------------------------------------------------------------- projects
def git_url_if_present(uri: str) -> str:
    """``uri`` with its git repository URL and subdirectory, if it is inside a git checkout
    (``mlflow.tracking._tracking_service.utils._get_git_url_if_present``, 3.0-3.17)."""
    from mlflow.tracking._tracking_service.utils import _get_git_url_if_present

    return _get_git_url_if_present(uri)


def expand_project_uri(uri: str) -> str:
    """A project URI as MLflow records it (``mlflow.projects.utils._expand_uri``, 3.0-3.17)."""
    from mlflow.projects.utils import _expand_uri

    return _expand_uri(uri)


def is_local_project_uri(uri: str) -> bool:
    """True for a project on the local file system (``mlflow.projects.utils._is_local_uri``, 3.0-3.17)."""
    from mlflow.projects.utils import _is_local_uri

    return _is_local_uri(uri)


def is_valid_branch_name(work_dir: str, version: str | None) -> bool:
    """True if ``version`` names a branch of the checkout in ``work_dir``
    (``mlflow.projects.utils._is_valid_branch_name``, 3.0-3.17)."""
    from mlflow.projects.utils import _is_valid_branch_name

    return _is_valid_branch_name(work_dir, version)


def docker_command(**kwargs: Any) -> list[str]:
    """``docker run ...`` for a projects run (``mlflow.projects.backend.local._get_docker_command``,
    3.0-3.17: ``image, active_run, docker_args, volumes, user_env_vars``)."""
    from mlflow.projects.backend.local import _get_docker_command

    return _get_docker_command(**kwargs)


# --------------------------------------------------------------------------- transfers
def guess_mime_type(file_name: str) -> str:
    """The ``Content-Type`` MLflow sends for an artifact (``mlflow.utils.mime_type_utils._guess_mime_type``)."""
    from mlflow.utils.mime_type_utils import _guess_mime_type

    return _guess_mime_type(file_name)


def unsupported_multipart_message() -> str:
    """The text a tracking server answers when it does not offer multipart uploads
    (``mlflow.exceptions._UnsupportedMultipartUploadException.MESSAGE``, 3.0-3.17)."""
    from mlflow.exceptions import _UnsupportedMultipartUploadException

    return _UnsupportedMultipartUploadException.MESSAGE


# --------------------------------------------------------------------------- python environments
def python_env_from_conda_yaml(path: str | Path) -> Any:
    """MLflow's python_env from a conda file (``mlflow.utils.environment._PythonEnv.from_conda_yaml``)."""
    from mlflow.utils.environment import _PythonEnv

    return _PythonEnv.from_conda_yaml(str(path))


def python_env_from_yaml(path: str | Path | None) -> Any:
    """MLflow's python_env from a ``python_env.yaml`` (``_PythonEnv.from_yaml``), or the default
    one (this Python, no dependencies) for ``None``."""
    from mlflow.utils.environment import _PythonEnv

    return _PythonEnv.from_yaml(str(path)) if path else _PythonEnv()


def python_env_dependencies(path: str | Path) -> list[str]:
    """The pip requirements of a ``python_env.yaml`` (``_PythonEnv.from_yaml(...).dependencies``)."""
    return list(python_env_from_yaml(path).dependencies or [])


def create_virtualenv(python_env: Any, work_dir: Path, env_manager: str) -> str:
    """Build (or reuse) MLflow's cached virtualenv for ``python_env``; returns its activate command.

    ``mlflow.utils.virtualenv``: ``_get_mlflow_virtualenv_root``, ``_get_virtualenv_name``,
    ``_create_virtualenv`` (keyword ``pyenv_root_dir`` up to 3.3, ``python_install_dir`` from 3.4;
    neither is passed here).
    """
    from mlflow.utils.virtualenv import _create_virtualenv, _get_mlflow_virtualenv_root, _get_virtualenv_name

    env_dir = Path(_get_mlflow_virtualenv_root()) / _get_virtualenv_name(python_env, Path(work_dir))
    return _create_virtualenv(local_model_path=Path(work_dir), python_env=python_env, env_dir=env_dir,
                              env_manager=env_manager)


# --------------------------------------------------------------------------- Ray
def job_submission_client_class(timeout_for: Callable[[str], float]) -> type:
    """Ray's ``JobSubmissionClient`` with a timeout on every request: ``timeout_for(endpoint)``
    seconds unless the caller gives one (the SDK sets none). Overrides
    ``JobSubmissionClient._do_request(method, endpoint, **kwargs)`` (Ray 2.40-2.60), the one
    method every SDK call sends through."""
    from ray.job_submission import JobSubmissionClient

    class TimeoutJobSubmissionClient(JobSubmissionClient):
        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout_for(endpoint))
            return super()._do_request(method, endpoint, **kwargs)

    return TimeoutJobSubmissionClient


def start_ray_worker_node(**params: Any) -> Any:
    """Start a Ray worker node in this process through Ray's node API (``ray._private.node.Node`` with
    ``ray._private.parameter.RayParams(**params)``, ``head=False``), as ``ray.cluster_utils.Cluster`` does
    (Ray 2.60): ``ray start --address`` refuses a loopback worker while single-node mode keeps
    everything on 127.0.0.1. Returns the node (``kill_all_processes`` stops it)."""
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    return Node(RayParams(**params), head=False, shutdown_at_exit=True, spawn_reaper=True)
