"""Endpoints on a ``ray`` compute target: one Ray Serve application per endpoint, through Serve's
REST API on the cluster's dashboard (``GET``/``PUT {address}/api/serve/applications/``).

``PUT`` replaces the whole list of declaratively deployed applications, so every change is
GET -> merge (the cluster's other applications are kept as deployed) -> PUT, under a per-cluster
file lock on this machine. The application (``ray_app:build``) serves ``/<endpoint>/invocations``
on Serve's HTTP proxy; keys are checked there by their SHA-256 digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from mlflow_workspace_plugin import file_lock
from mlflow_workspace_plugin.deploy.config import DEFAULT_SERVE_PORT
from mlflow_workspace_plugin.deploy.errors import DeploymentError
from mlflow_workspace_plugin.deploy.state import EndpointRecord, StateStore
from mlflow_workspace_plugin.deploy.targets import DeployTarget

APPLICATIONS = "/api/serve/applications/"
IMPORT_PATH = "mlflow_workspace_plugin.deploy.ray_app:build"
MODEL_PREFIX = "model-"  # as ray_app.MODEL_PREFIX (not imported: that module needs ray on this side)
REQUEST_TIMEOUT_S = 30.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_STATES = {"RUNNING": "Healthy", "DEPLOYING": "Creating", "UNHEALTHY": "Unhealthy", "DEPLOY_FAILED": "Failed",
           "DELETING": "Deleting", "NOT_STARTED": "Creating"}


class RayServeEndpoints:
    """The ``ray`` backend of :mod:`.client`: endpoints as Serve applications on the target's cluster."""

    def __init__(self, store: StateStore, target: DeployTarget) -> None:
        self.store = store
        self.target = target

    # ------------------------------------------------------------------ backend interface
    def scoring_uri(self, record: EndpointRecord) -> str:
        ray = record.ray or {}
        return f"http://{ray.get('serve_host')}:{ray.get('serve_port')}/{record.name}/invocations"

    def open(self, record: EndpointRecord) -> None:
        if record.auth_mode != "key":
            raise DeploymentError(f"Endpoint {record.name!r}: a Ray Serve endpoint supports auth_mode 'key' only")
        address = self._address(record.compute)
        details = self._details(address)
        running = details.get("http_options") if details.get("controller_info") else None  # Serve is up
        host = urlsplit(address).hostname or "127.0.0.1"
        http_host = (running or {}).get("host") or ("127.0.0.1" if host in _LOOPBACK else "0.0.0.0")
        port = (running or {}).get("port") or record.ray.get("serve_port") or DEFAULT_SERVE_PORT
        if running and record.ray.get("serve_port") not in (None, port):
            raise DeploymentError(f"Ray Serve already runs on {address} with HTTP port {port}; "
                                  f"'serve_http_port' {record.ray['serve_port']} cannot change it")
        record.ray = {"address": address, "http_host": http_host, "serve_port": int(port),
                      "serve_host": record.ray.get("serve_host") or (host if http_host == "0.0.0.0" else http_host)}

    def apply(self, record: EndpointRecord) -> None:
        address = record.ray["address"]
        with _cluster_lock(address):
            details = self._details(address)
            apps = [app["deployed_app_config"] for name, app in (details.get("applications") or {}).items()
                    if name != record.name and app.get("deployed_app_config")]
            if record.deployments:
                apps.append(self._app_config(record))
            http = {"host": record.ray["http_host"], "port": record.ray["serve_port"]}
            if details.get("controller_info") and details.get("http_options"):  # Serve keeps its options
                http = {k: details["http_options"][k] for k in ("host", "port") if k in details["http_options"]}
            response = _request("PUT", address, json={"http_options": http, "applications": apps})
            if response.status_code != 200:
                raise DeploymentError(f"Ray Serve on {address} refused the application of endpoint {record.name!r}: "
                                      f"HTTP {response.status_code} {response.text[:2000]}")

    def wait(self, record: EndpointRecord, timeout: float) -> dict[str, Any]:
        """Until the application runs our generation (or failed); then until its route answers."""
        deadline = time.monotonic() + timeout
        while True:
            status = self._status(record)
            if status["applied"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not status["applied"]:
            raise DeploymentError(f"Ray Serve application {record.name!r} on {record.ray['address']} did not become "
                                  f"ready within {timeout:.0f} s: {status.get('message') or status['state']}")
        if status["state"] == "Healthy" and record.deployments:
            ping = self.scoring_uri(record).replace("/invocations", "/ping")
            while time.monotonic() < deadline:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(ping, timeout=5).status_code in (200, 503):
                        break
                time.sleep(0.3)
        return status

    def close(self, record: EndpointRecord) -> None:
        if not (record.ray or {}).get("address"):
            return
        kept = EndpointRecord.from_dict({**record.to_dict(), "deployments": {}})
        self.apply(kept)
        deadline = time.monotonic() + 60
        while record.name in (self._details(record.ray["address"]).get("applications") or {}):
            if time.monotonic() > deadline:
                raise DeploymentError(f"Ray Serve application {record.name!r} was not deleted within 60 s")
            time.sleep(0.5)

    def health(self, record: EndpointRecord) -> dict[str, Any]:
        status = self._status(record)
        return {"state": status["state"] if record.deployments else "Healthy", "deployments": status["deployments"],
                "log": None, "pid": None}

    # ------------------------------------------------------------------ internals
    def _address(self, compute: str) -> str:
        """The cluster's dashboard address, validated and reachable (the compute target's own checks)."""
        from mlflow_workspace_plugin.execution.plan import cluster_address

        _, workspace = self.target.compute_target(compute)
        return cluster_address(compute, workspace)

    def _details(self, address: str) -> dict[str, Any]:
        response = _request("GET", address)
        if response.status_code == 501:
            raise DeploymentError(f"The Ray cluster at {address} has no Serve: install ray[serve] there "
                                  "(pip install 'mlflow-workspace-plugin[serve]')")
        if response.status_code != 200:
            raise DeploymentError(f"GET {address}{APPLICATIONS} gave HTTP {response.status_code}: "
                                  f"{response.text[:500]}")
        return response.json()

    def _app_config(self, record: EndpointRecord) -> dict[str, Any]:
        keys = self.store.read_keys(record.name)
        digests = [hashlib.sha256(v.encode()).hexdigest() for v in keys.values() if v]
        args = {
            "endpoint": record.name, "generation": record.generation, "tracking_uri": self.target.tracking_uri,
            "key_sha256": digests, "traffic": dict(record.traffic),
            "deployments": {name: {"model_uri": d.model_uri, "num_replicas": d.instance_count,
                                   "num_cpus": d.cpus_per_instance, "generation": d.generation}
                            for name, d in record.deployments.items()},
        }
        return {"name": record.name, "route_prefix": f"/{record.name}", "import_path": IMPORT_PATH, "args": args,
                "runtime_env": self._runtime_env(record)}

    def _runtime_env(self, record: EndpointRecord) -> dict[str, Any]:
        env: dict[str, Any] = {}
        if not self.target.is_local:  # the replicas read the model from the cloud workspace
            from mlflow_workspace_plugin import auth

            env["env_vars"] = auth.child_environment(self.target.tracking_uri)
        target, _ = self.target.compute_target(record.compute)
        if target.settings.get("environment", "pip") == "pip":
            packages = sorted({line.strip() for d in record.deployments.values()
                               for line in _requirements(Path(d.model_path)) if line.strip()}
                              | set(target.settings.get("extra_pip", [])))
            if packages:
                env["pip"] = {"packages": packages, "pip_check": False}
        return env

    def _status(self, record: EndpointRecord) -> dict[str, Any]:
        app = (self._details(record.ray["address"]).get("applications") or {}).get(record.name)
        if app is None:
            return {"state": "NotRunning", "applied": not record.deployments, "deployments": {}, "message": None}
        config = app.get("deployed_app_config") or {}
        args = config.get("args") or {}
        state = _STATES.get(app.get("status"), app.get("status", "Unknown"))
        applied = args.get("generation") == record.generation and state in ("Healthy", "Failed", "Unhealthy")
        deployments = {}
        for name, spec in (args.get("deployments") or {}).items():
            serve_state = (app.get("deployments") or {}).get(f"{MODEL_PREFIX}{name}", {})
            replicas = serve_state.get("replicas") or []
            healthy = serve_state.get("status") == "HEALTHY"
            failed = state == "Failed" and not healthy
            deployments[name] = {
                "state": "Healthy" if healthy else ("Failed" if failed else state),
                "generation": spec.get("generation") if healthy else None,
                "failed_generation": spec.get("generation") if failed else None,
                "error": (serve_state.get("message") or app.get("message")) if not healthy else None,
                "pid": None, "port": None, "restarts": 0,
                "replica_pids": [r.get("pid") for r in replicas], "serve_status": serve_state.get("status"),
                "log": None,
            }
        return {"state": state, "applied": applied, "deployments": deployments, "message": app.get("message")}


def _requirements(model_path: Path) -> list[str]:
    try:
        lines = (model_path / "requirements.txt").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip() and not line.startswith(("#", "-"))]


def _request(method: str, address: str, **kwargs) -> requests.Response:
    try:
        return requests.request(method, f"{address}{APPLICATIONS}", timeout=REQUEST_TIMEOUT_S, **kwargs)
    except requests.RequestException as exc:
        raise DeploymentError(f"Ray dashboard at {address} did not answer {method} {APPLICATIONS}: {exc}") from None


@contextlib.contextmanager
def _cluster_lock(address: str) -> Iterator[None]:
    """One writer per cluster on this machine (the PUT replaces every declarative application)."""
    digest = hashlib.sha256(address.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mlflow-workspace-serve-{digest}.lock"
    with file_lock.held(path):
        yield
