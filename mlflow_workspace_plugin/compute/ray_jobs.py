"""Compute type ``ray``: run launches as Ray Jobs (``ray.job_submission``, imported lazily).

Compute target settings (``"compute": {"<name>": {"type": "ray", ...}}`` in the workspace config):

``address``
    ``http(s)://<head>:<dashboard port>`` of the cluster's job API (the dashboard), e.g.
    ``http://127.0.0.1:8265``.
``address_env``
    name of an environment variable holding that address, read at submit time. When neither
    ``address`` nor ``address_env`` is given, ``$RAY_ADDRESS`` is used.
``environment``
    ``"pip"`` (default): the project's conda.yaml / python_env.yaml dependencies become the job's
    Ray ``pip`` runtime env (a virtualenv on top of the cluster's Python, cached per requirement
    set by Ray); ``"inherit"``: run in the cluster's own Python environment as it is (fastest).
``python``
    interpreter that runs the job (default ``python``, i.e. the pip env's, else whatever was on
    the head's PATH when it started). It must be able to import this plugin.
``extra_pip``
    list of additional pip requirements (e.g. this plugin for a cluster that lacks it); pip only.
``setup_timeout_s``
    how long Ray may take to build the job's runtime env (default 600).
``instance_types``
    the machine shapes an Azure job file's ``resources.instance_type`` names, e.g.
    ``{"Standard_NC6s_v3": {"cpus": 6, "gpus": 1, "memory_gb": 112}}`` (keys: :mod:`.resources`); a job
    then reserves that shape per instance (Ray's entrypoint resources) and starts on a node that has it free.
``default_instance_type``
    the ``instance_types`` entry of jobs and projects runs that name none (default: they reserve nothing).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import re
import reprlib
from urllib.parse import urlsplit

import requests
from mlflow.exceptions import ExecutionException

from mlflow_workspace_plugin.compute.environment import EnvironmentSpec
from mlflow_workspace_plugin.compute.job_api import JobInfo, JobSpec, JobState, first_lines
from mlflow_workspace_plugin.compute.remote import RemoteExecutor
from mlflow_workspace_plugin.compute.resources import ResourceShape, unplaceable
from mlflow_workspace_plugin.errors import WorkspaceConfigError

_logger = logging.getLogger("mlflow.projects.azureml")
_SHORT = reprlib.Repr()  # a value named in an error, cut when huge
_SHORT.maxstring = 100
DEFAULT_ADDRESS_ENV = "RAY_ADDRESS"
ENVIRONMENTS = ("pip", "inherit")
DEFAULT_ENVIRONMENT = "pip"
DEFAULT_SETUP_TIMEOUT_S = 600
CREDENTIAL_MODES = ("forward", "cluster")
REACHABILITY_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 30.0
UPLOAD_TIMEOUT_S = 600.0
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOCAL_STORES = ("", "file", "sqlite", "azureml-local")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class RayJobsAdapter(RemoteExecutor):
    """Submits runs to a Ray cluster's job API."""

    type_name = "ray"
    allowed_settings = {
        "address": "http(s)://<head>:<dashboard port>",
        "address_env": "name of an env var holding the address; default RAY_ADDRESS",
        "environment": "'pip' (default) or 'inherit'",
        "python": "interpreter path or name, default 'python'",
        "extra_pip": "list of pip requirement strings",
        "setup_timeout_s": f"positive number of seconds, default {DEFAULT_SETUP_TIMEOUT_S}",
        "credential": "'forward' (default: your workspace credentials travel sealed) or 'cluster' "
                      "(the job uses the cluster's own identity)",
        "instance_types": "object of instance type name -> {cpus, gpus, memory_gb, resources}",
        "default_instance_type": "a name of instance_types",
    }

    # ------------------------------------------------------------ settings
    def validate_settings(self) -> None:
        settings = self.target.settings
        if "address" in settings and "address_env" in settings:
            raise self.config_error("address_env", "cannot be combined with 'address': give one of them")
        if "address" in settings:
            problem = address_problem(settings["address"])
            if problem:
                raise self.config_error("address", f"= {settings['address']!r} {problem}")
        env_name = settings.get("address_env", DEFAULT_ADDRESS_ENV)
        if not isinstance(env_name, str) or not _ENV_NAME_RE.match(env_name):
            raise self.config_error("address_env", f"= {env_name!r} is not an environment variable name")
        if self.environment not in ENVIRONMENTS:
            raise self.config_error("environment", f"= {settings['environment']!r} is not allowed: use "
                                                   f"{' or '.join(repr(e) for e in ENVIRONMENTS)}")
        python = settings.get("python", "python")
        if not isinstance(python, str) or not python.strip():
            raise self.config_error("python", f"= {python!r} must be a non-empty string (interpreter path or name)")
        extra = settings.get("extra_pip", [])
        if not isinstance(extra, list) or not all(isinstance(item, str) and item.strip() for item in extra):
            raise self.config_error("extra_pip", f"= {extra!r} must be a list of pip requirement strings")
        if extra and self.environment != "pip":
            raise self.config_error("extra_pip", "needs \"environment\": \"pip\"")
        if settings.get("credential", "forward") not in CREDENTIAL_MODES:
            raise self.config_error("credential", f"= {settings['credential']!r} is not allowed: use "
                                                  f"{' or '.join(repr(m) for m in CREDENTIAL_MODES)}")
        timeout = settings.get("setup_timeout_s", DEFAULT_SETUP_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise self.config_error("setup_timeout_s", f"= {timeout!r} must be a positive number of seconds")
        self.instance_types = self._instance_types(settings)

    def _instance_types(self, settings: dict) -> dict[str, ResourceShape]:
        raw = settings.get("instance_types", {})
        if not isinstance(raw, dict):
            raise self.config_error("instance_types", f"= {raw!r} must be an object of name -> "
                                                      "{\"cpus\": 4, \"gpus\": 1, \"memory_gb\": 16}")
        types = {str(name): ResourceShape.parse(shape, f"instance_types.{name}",
                                                lambda why: self.config_error("instance_types", f": {why}"))
                 for name, shape in raw.items()}
        default = settings.get("default_instance_type")
        if default is not None and default not in types:
            raise self.config_error("default_instance_type", f"= {default!r} is not a name of instance_types "
                                                             f"({', '.join(sorted(types)) or 'none defined'})")
        return types

    # ------------------------------------------------------------ resources
    def resource_shape(self, instance_type: str | None, asked: ResourceShape | None) -> ResourceShape | None:
        name = instance_type or self.target.settings.get("default_instance_type")
        base = None
        if name is not None and self.instance_types:
            base = self.instance_types.get(name)
            if base is None:
                raise ExecutionException(
                    f"Instance type {_SHORT.repr(name)} is not defined for compute target {self.target.name!r}; "
                    f"defined: "
                    f"{', '.join(sorted(self.instance_types))} (setting 'compute.{self.target.name}.instance_types'"
                    f"{self._where()})")
        shape = asked.over(base) if asked is not None else base
        return None if shape is None or shape.is_empty else shape

    def ignored_resources(self, instance_type: str | None, asked: ResourceShape | None) -> str | None:
        if instance_type is None or self.instance_types:
            return None
        example = json.dumps({"instance_types": {instance_type[:100]: {"cpus": 4}}})[1:-1]
        return f"compute target {self.target.name!r} defines no instance types (add {example} to it)"

    def check_resources(self, shape: ResourceShape) -> None:
        try:
            nodes = [node.resources_total for node in _list_nodes(self.address)]
        except Exception as exc:  # an older or locked-down dashboard: Ray itself keeps the job pending
            _logger.warning("mlflow-workspace: could not list the nodes of %s to check %s: %s",
                            self.describe(), shape.describe(), first_lines(exc, 300))
            return
        problem = unplaceable(shape, nodes)
        if problem:
            raise ExecutionException(f"Compute target {self.target.name!r} ({self.describe()}) cannot run the "
                                     f"job: {problem}")

    @property
    def environment(self) -> str:
        return self.target.settings.get("environment", DEFAULT_ENVIRONMENT)

    @property
    def address_env(self) -> str:
        return self.target.settings.get("address_env", DEFAULT_ADDRESS_ENV)

    @functools.cached_property
    def address(self) -> str:
        """The job API address: the ``address`` setting, else the environment variable."""
        if "address" in self.target.settings:
            return self.target.settings["address"].rstrip("/")
        value = os.environ.get(self.address_env, "").strip()
        if not value:
            raise WorkspaceConfigError(
                f"Compute target {self.target.name!r} (type 'ray') has no \"address\" setting and "
                f"${self.address_env} is not set: set \"address\": \"http://<head>:8265\" on the target "
                f"or export {self.address_env}=http://<head>:8265"
            )
        problem = address_problem(value)
        if problem:
            raise WorkspaceConfigError(
                f"Compute target {self.target.name!r}: ${self.address_env}={value!r} {problem}"
            )
        return value.rstrip("/")

    def describe(self) -> str:
        try:
            return f"Ray cluster at {self.address}"
        except WorkspaceConfigError:
            return f"Ray cluster at ${self.address_env} (unset)"

    def environment_kind(self) -> str:
        return self.environment

    def python_command(self) -> str:
        return self.target.settings.get("python", "python")

    def credential_mode(self) -> str:
        return self.target.settings.get("credential", "forward")

    def job_tags(self, job_id: str) -> dict[str, str]:
        return {"ray.job_id": job_id}

    def requirements(self, environment: EnvironmentSpec) -> list[str] | None:
        if self.environment == "inherit":
            return None
        found = list(environment.requirements) + list(self.target.settings.get("extra_pip", []))
        return found or None

    # ------------------------------------------------------------ reachability
    def check_reachable(self) -> None:
        try:
            importlib.import_module("ray.job_submission")
        except ImportError as exc:
            raise ExecutionException(
                f"Compute target {self.target.name!r} has type 'ray', which needs Ray's job client: "
                f"pip install 'mlflow-workspace-plugin[ray]' (ray[default]) — {exc}"
            ) from None
        address = self.address
        try:
            response = requests.get(f"{address}/api/version", timeout=REACHABILITY_TIMEOUT_S)
        except requests.RequestException as exc:
            raise ExecutionException(
                f"The Ray cluster of compute target {self.target.name!r} is not reachable at {address} "
                f"({_reason(exc)}). Start the Ray head (see README, 'Remote compute on Ray') or fix the "
                f"target's address{self._where()}."
            ) from None
        if not response.ok or "ray_version" not in _json_or_empty(response):
            raise ExecutionException(
                f"{address} (compute target {self.target.name!r}) does not answer like a Ray job API: "
                f"GET /api/version gave HTTP {response.status_code}. Use the dashboard address "
                f"(port 8265 by default){self._where()}."
            )

    def check_tracking_uri(self, tracking_uri: str) -> None:
        host = urlsplit(self.address).hostname or ""
        if urlsplit(tracking_uri).scheme in _LOCAL_STORES and host not in _LOOPBACK_HOSTS:
            _logger.warning(
                "mlflow-workspace: tracking URI %s is a local store; a job on %s can only log to it if "
                "the cluster shares this filesystem. Use a workspace (azureml://) or server URI.",
                tracking_uri, self.describe())

    def _where(self) -> str:
        path = getattr(self.workspace, "config_path", None)
        return f" in {path}" if path else ""

    # ------------------------------------------------------------ jobs
    @functools.cached_property
    def client(self):
        try:
            return _client_class()(self.address)
        except Exception as exc:
            raise ExecutionException(f"Cannot connect to {self.describe()}: {first_lines(exc)}") from None

    def start_job(self, spec: JobSpec) -> None:
        runtime_env: dict = {
            "working_dir": str(spec.source_zip),
            "env_vars": dict(spec.env_vars),
            "config": {"setup_timeout_seconds": int(self.target.settings.get("setup_timeout_s",
                                                                             DEFAULT_SETUP_TIMEOUT_S))},
        }
        if spec.requirements:
            runtime_env["pip"] = {"packages": list(spec.requirements), "pip_check": False}
        try:
            reserved = spec.resources.ray_entrypoint_options() if spec.resources is not None else {}
            self.client.submit_job(entrypoint=self.runner_entrypoint(spec.command), submission_id=spec.job_id,
                                   runtime_env=runtime_env, metadata=dict(spec.metadata), **reserved)
        except ExecutionException:
            raise
        except Exception as exc:
            raise ExecutionException(
                f"{self.describe()} rejected job {spec.job_id} for run {spec.run_id}: "
                f"{redact(error_summary(exc), spec.env_vars)}"
            ) from None

    def status(self, job_id: str) -> JobInfo:
        details = self.client.get_job_info(job_id)
        error_type = getattr(details.error_type, "value", details.error_type)
        state = JobState(getattr(details.status, "value", details.status))
        return JobInfo(
            state=state,
            exit_code=details.driver_exit_code,
            message=details.message or "",
            error_type=str(error_type) if error_type else None,
            cause=self._dead_node(details.driver_node_id) if state is JobState.FAILED else None,
        )

    def _dead_node(self, node_id: str | None) -> str | None:
        """'the node that ran it ... died' when the failed job's node is dead (a lost machine)."""
        if not node_id:
            return None
        try:
            nodes = _list_nodes(self.address, [("node_id", "=", node_id)])
        except Exception:  # the job API's own message still says what Ray knows
            return None
        dead = [node for node in nodes if str(getattr(node.state, "value", node.state)) == "DEAD"]
        if not dead:
            return None
        node = dead[0]
        name = f"{node.node_name} " if node.node_name and node.node_name != node.node_ip else ""
        reason = f": {first_lines(node.state_message, 300)}" if node.state_message else ""
        return f"the node that ran it ({name}{node.node_ip}, node id {node_id}) died{reason}"

    def logs(self, job_id: str) -> str:
        return self.client.get_job_logs(job_id)

    def request_stop(self, job_id: str) -> None:
        self.client.stop_job(job_id)


def address_problem(value) -> str | None:
    """Why ``value`` is not a usable job API address (None if it is)."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string like 'http://127.0.0.1:8265'"
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = " (ray:// is Ray Client, not the job API)" if parts.scheme == "ray" else ""
        return (f"is not allowed: use the http(s)://<head>:<dashboard port> address of the Ray job API, "
                f"e.g. 'http://127.0.0.1:8265'{hint}")
    try:
        _ = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        return "has an invalid port"
    return None


def error_summary(exc: BaseException) -> str:
    """One line from a job API error: its status line and the server's last error line (the
    SDK's message is a whole server-side traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip(" .")]
    if len(lines) <= 2:
        return first_lines(" ".join(lines))
    return first_lines(f"{lines[0].split(': Traceback')[0]}: {lines[-1]}")


def redact(text: str, env_vars: dict[str, str]) -> str:
    """Hide secret values (tokens, passwords) that an error message might echo."""
    for key, value in env_vars.items():
        if value and any(word in key for word in ("TOKEN", "PASSWORD", "SECRET")):
            text = text.replace(value, "***")
    return text


@functools.cache
def _client_class():
    """``JobSubmissionClient`` whose every request has a timeout (the SDK sets none)."""
    from mlflow_workspace_plugin import mlflow_compat

    return mlflow_compat.job_submission_client_class(_request_timeout)


def _list_nodes(address: str, filters: list | None = None) -> list:
    """The cluster's nodes matching ``filters`` (default: the alive ones), from Ray's state API over the
    job API address."""
    from ray.util.state import list_nodes

    return list_nodes(address=address, filters=filters or [("state", "=", "ALIVE")],
                      timeout=int(REQUEST_TIMEOUT_S), raise_on_missing_output=False)


def _request_timeout(endpoint: str) -> float:
    return UPLOAD_TIMEOUT_S if endpoint.startswith("/api/packages") else REQUEST_TIMEOUT_S


def _json_or_empty(response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused: nothing is listening there"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {REACHABILITY_TIMEOUT_S:.0f} s"
    return first_lines(text, 300)
