"""``WorkspaceDeploymentClient``: MLflow's deployments API over the workspace's endpoints.

``get_deploy_client(ws.get_mlflow_tracking_uri())`` returns it for ``azureml-local://`` and
``azureml://`` targets. Models are resolved in the target workspace's registry; endpoint state
lives in the target's state folder (see :mod:`.targets`, :mod:`.state`); each endpoint runs on a
backend chosen by its compute target: :class:`.local_backend.LocalEndpoints` (default) or
:class:`.ray_serve.RayServeEndpoints` (a ``ray`` compute target).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
import time
from typing import Any

from mlflow.deployments import BaseDeploymentClient, PredictionsResponse

from mlflow_workspace_plugin.deploy import model_source, processes
from mlflow_workspace_plugin.deploy.config import check_traffic_names, deployment_config, endpoint_config
from mlflow_workspace_plugin.deploy.errors import DeploymentError, already_exists, not_found, one_line_in_cli
from mlflow_workspace_plugin.deploy.local_backend import LocalEndpoints
from mlflow_workspace_plugin.deploy.local_servers import check_env_manager, server_command
from mlflow_workspace_plugin.deploy.state import DeploymentRecord, EndpointRecord, StateStore, check_name
from mlflow_workspace_plugin.deploy.targets import DeployTarget, resolve_target

_logger = logging.getLogger(__name__)
FLAVOR = "python_function"
DEPLOYMENT_HEADER = "azureml-model-deployment"
_INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
STOP_WAIT_S = 45.0


class WorkspaceDeploymentClient(BaseDeploymentClient):
    """Endpoints (stable scoring URI + keys) holding deployments (model versions) that share traffic."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)
        self.target: DeployTarget = resolve_target(target_uri)
        self.store = StateStore(self.target.state_root)

    # ================================================================== endpoints
    def create_endpoint(self, name, config=None) -> dict[str, Any]:
        check_name("Endpoint", name)
        cfg = endpoint_config(config)
        if cfg.traffic:
            raise DeploymentError(f"Endpoint {name!r} has no deployments yet: set 'traffic' after creating them")
        if cfg.regenerate_key:
            raise DeploymentError("config 'regenerate_key' only applies to update_endpoint")
        with self.store.lock():
            if self.store.load(name) is not None:
                raise already_exists(f"Endpoint {name!r} already exists in {self.target.tracking_uri}")
            record = self._new_endpoint(name, cfg.compute or "local", cfg.auth_mode, cfg.port, auto_created=False,
                                        serve_port=cfg.serve_http_port, serve_host=cfg.serve_http_host)
            record.description = cfg.description
        return self.get_endpoint(name)

    def update_endpoint(self, endpoint, config=None) -> dict[str, Any]:
        cfg = endpoint_config(config)
        fixed = sorted(cfg.given & {"compute", "port", "serve_http_port", "serve_http_host"})
        if fixed:
            raise DeploymentError(f"config {fixed[0]!r} cannot change on an existing endpoint; create a new one")
        with self.store.lock():
            record = self._endpoint(endpoint)
            if cfg.traffic is not None:
                check_traffic_names(cfg.traffic, set(record.deployments), endpoint)
                record.traffic = dict(cfg.traffic)
            if cfg.regenerate_key:
                keys = self.store.read_keys(endpoint)
                keys[f"{cfg.regenerate_key}_key"] = _new_key()
                self.store.write_keys(endpoint, keys)
            if "auth_mode" in cfg.given:
                self._set_auth(record, cfg.auth_mode)
            if cfg.description is not None:
                record.description = cfg.description
            record.generation += 1
            self.store.save(record)
            backend = self._backend(record)
            backend.apply(record)
        backend.wait(record, timeout=60)
        return self.get_endpoint(endpoint)

    def delete_endpoint(self, endpoint) -> None:
        with self.store.lock():
            record = self.store.load(endpoint)
            if record is None:
                return
            self._close(record)

    def stop_endpoint(self, endpoint: str) -> None:
        """Stop a local endpoint's processes but keep its definition and keys (``start_endpoint``, or any
        change to it, starts it again)."""
        with self.store.lock():
            record = self._endpoint(endpoint)
            if record.compute != "local":
                raise DeploymentError(f"Endpoint {endpoint!r} runs on {record.compute!r}: only local endpoints stop; "
                                      "delete_endpoint removes it")
            health = self._backend(record).health(record)
            self._backend(record).close(record)
            self.store.save(record)
        for pid in [d.get("pid") for d in health["deployments"].values()] + [health.get("pid")]:
            _wait_gone(pid)

    def start_endpoint(self, endpoint: str, timeout: float = 300.0) -> dict[str, Any]:
        """Start a stopped local endpoint again (all its deployments), waiting until they answer."""
        with self.store.lock():
            record = self._endpoint(endpoint)
            backend = self._backend(record)
            if record.compute == "local" and not backend.health(record)["pid"]:
                backend.open(record)
                self.store.save(record)
        backend.wait(record, timeout)
        return self.get_endpoint(endpoint)

    def list_endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint, without its keys (``get_endpoint`` shows them)."""
        return [self.get_endpoint(name, keys=False) for name in self.store.endpoint_names()]

    def get_endpoint(self, endpoint, keys: bool = True) -> dict[str, Any]:
        record = self._endpoint(endpoint)
        health = self._backend(record).health(record)
        info: dict[str, Any] = {
            "name": record.name, "scoring_uri": self._backend(record).scoring_uri(record),
            "state": health["state"], "auth_mode": record.auth_mode, "compute": record.compute,
            "traffic": dict(record.traffic), "deployments": sorted(record.deployments), "port": record.port,
            "pid": health.get("pid"), "log": health.get("log"), "state_dir": str(self.store.endpoint_dir(record.name)),
            "description": record.description, "created_at": record.created_at, "updated_at": record.updated_at,
        }
        if record.auth_mode == "key" and keys:
            stored = self.store.read_keys(record.name)
            info["keys"] = {"primary_key": stored.get("primary_key"), "secondary_key": stored.get("secondary_key")}
        return info

    # ================================================================== deployments
    def create_deployment(self, name, model_uri, flavor=None, config=None, endpoint=None) -> dict[str, Any]:
        check_name("Deployment", name)
        endpoint = check_name("Endpoint", endpoint) if endpoint is not None else name
        _check_flavor(flavor)
        cfg = deployment_config(config)
        if cfg.env_manager != "local":
            check_env_manager(cfg.env_manager)
        source = model_source.resolve(model_uri, self.target.tracking_uri)
        with self.store.lock():
            record = self.store.load(endpoint)
            if record is not None and name in record.deployments:
                raise already_exists(f"Deployment {name!r} already exists in endpoint {endpoint!r}; use "
                                     "update_deployment to serve another model")
            if record is not None and cfg.compute and cfg.compute != record.compute:
                raise DeploymentError(f"Endpoint {endpoint!r} runs on compute {record.compute!r}, not "
                                      f"{cfg.compute!r}: create the deployment in another endpoint")
            if cfg.traffic is not None:
                check_traffic_names(cfg.traffic, set(record.deployments if record else ()) | {name}, endpoint)
            auto_created = record is None
            model_dir = None
            try:
                if record is None:
                    record = self._new_endpoint(endpoint, cfg.compute or "local", "key", None, auto_created=True,
                                                serve_port=cfg.serve_http_port, serve_host=cfg.serve_http_host)
                generation = record.generation + 1
                model_dir = self.store.model_dir(endpoint, name, generation)
                model_source.materialize(source, model_dir, self.target.tracking_uri)
                command, command_env = server_command(model_dir, cfg.env_manager, cfg.instance_count)
                record.deployments[name] = DeploymentRecord(
                    name=name, endpoint=endpoint, model_uri=model_uri, model=source.to_dict(),
                    model_path=str(model_dir), env_manager=cfg.env_manager, command=command, command_env=command_env,
                    timeout=cfg.timeout, instance_count=cfg.instance_count, cpus_per_instance=cfg.cpus_per_instance,
                    generation=generation)
                if cfg.traffic is not None:
                    record.traffic = dict(cfg.traffic)
                elif not any(record.traffic.values()):
                    record.traffic = {name: 100}  # the first deployment of an endpoint takes all traffic
                record.generation = generation
                self.store.save(record)
                backend = self._backend(record)
                backend.apply(record)
            except BaseException:
                if model_dir is not None:
                    shutil.rmtree(model_dir, ignore_errors=True)
                if auto_created and record is not None:
                    self._close(record)
                raise
        if not cfg.is_async:
            self._await_deployment(record, name, generation, cfg.timeout, on_failure=self._undo_create)
        return self.get_deployment(name, endpoint)

    def update_deployment(self, name, model_uri=None, flavor=None, config=None, endpoint=None) -> dict[str, Any]:
        _check_flavor(flavor)
        cfg = deployment_config(config)
        if "compute" in cfg.given:
            raise DeploymentError("config 'compute' cannot change on an existing deployment; create a new one")
        if cfg.env_manager != "local":
            check_env_manager(cfg.env_manager)
        source = model_source.resolve(model_uri, self.target.tracking_uri) if model_uri else None
        with self.store.lock():
            record, deployment = self._deployment(name, endpoint)
            previous = DeploymentRecord(**vars(deployment))
            restart = source is not None or bool(cfg.given & {"env_manager", "instance_count", "cpus_per_instance"})
            if cfg.traffic is not None:
                check_traffic_names(cfg.traffic, set(record.deployments), record.name)
                record.traffic = dict(cfg.traffic)
            generation = record.generation + 1
            if restart:
                model_dir = self.store.model_dir(record.name, name, generation)
                if source is not None:
                    model_source.materialize(source, model_dir, self.target.tracking_uri)
                    deployment.model_uri, deployment.model = model_uri, source.to_dict()
                else:
                    shutil.copytree(deployment.model_path, model_dir)
                deployment.model_path = str(model_dir)
                for key in ("env_manager", "instance_count", "cpus_per_instance", "timeout"):
                    if key in cfg.given:
                        setattr(deployment, key, getattr(cfg, key))
                deployment.command, deployment.command_env = server_command(
                    model_dir, deployment.env_manager, deployment.instance_count)
                deployment.generation = generation
                deployment.updated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            record.generation = generation
            self.store.save(record)
            backend = self._backend(record)
            backend.apply(record)
        if cfg.is_async:
            return self.get_deployment(name, record.name)
        if restart:
            self._await_deployment(record, name, generation, cfg.timeout,
                                   on_failure=lambda r, n, g: self._undo_update(r, n, g, previous))
            self._drop_old_models(record.name, name, keep=generation)
        else:
            backend.wait(record, cfg.timeout)
        return self.get_deployment(name, record.name)

    def delete_deployment(self, name, config=None, endpoint=None) -> None:
        deployment_config(config)  # validates (no keys are needed to delete)
        with self.store.lock():
            found = self.store.find_deployment(name, endpoint)
            if found is None:
                return
            record, _ = found
            old_pid = self._backend(record).health(record)["deployments"].get(name, {}).get("pid")
            record.deployments.pop(name)
            record.traffic = _without(record.traffic, name, set(record.deployments))
            if record.auto_created and not record.deployments and record.name == name:
                self._close(record)
                return
            record.generation += 1
            self.store.save(record)
            backend = self._backend(record)
            backend.apply(record)
            backend.wait(record, timeout=60)
            for path in (self.store.endpoint_dir(record.name) / "models").glob(f"{name}-*"):
                shutil.rmtree(path, ignore_errors=True)
        _wait_gone(old_pid)

    def list_deployments(self, endpoint=None) -> list[dict[str, Any]]:
        names = [endpoint] if endpoint is not None else self.store.endpoint_names()
        result = []
        for endpoint_name in names:
            record = self._endpoint(endpoint_name)
            health = self._backend(record).health(record)
            result += [self._describe(record, d, health) for d in record.deployments.values()]
        return result

    def get_deployment(self, name, endpoint=None) -> dict[str, Any]:
        record, deployment = self._deployment(name, endpoint)
        return self._describe(record, deployment, self._backend(record).health(record))

    # ================================================================== predict
    def predict(self, deployment_name=None, inputs=None, endpoint=None) -> PredictionsResponse:
        import requests

        if deployment_name is None and endpoint is None:
            raise DeploymentError("predict needs deployment_name=, endpoint= or both")
        if endpoint is None:
            record, _ = self._deployment(deployment_name, None)
        else:
            record = self._endpoint(endpoint)
            if deployment_name is not None and deployment_name not in record.deployments:
                raise not_found(f"Endpoint {endpoint!r} has no deployment {deployment_name!r}; deployments: "
                                f"{', '.join(sorted(record.deployments)) or 'none'}")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self._credential(record)}"}
        if deployment_name is not None:
            headers[DEPLOYMENT_HEADER] = deployment_name
        url = self._backend(record).scoring_uri(record)
        try:
            response = requests.post(url, data=_payload(inputs), headers=headers, timeout=300)
        except requests.RequestException as exc:
            raise DeploymentError(f"Endpoint {record.name!r} at {url} did not answer: {exc}") from None
        if response.status_code != 200:
            raise DeploymentError(f"Endpoint {record.name!r} answered HTTP {response.status_code}: "
                                  f"{_server_message(response.text)}")
        return PredictionsResponse.from_json(response.text)

    # ================================================================== internals
    def _backend(self, record: EndpointRecord):
        if record.compute == "local":
            return LocalEndpoints(self.store)
        from mlflow_workspace_plugin.deploy.ray_serve import RayServeEndpoints

        return RayServeEndpoints(self.store, self.target)

    def _new_endpoint(self, name: str, compute: str, auth_mode: str, port: int | None, *, auto_created: bool,
                      serve_port: int | None, serve_host: str | None) -> EndpointRecord:
        """Create and start an endpoint (caller holds the lock); nothing is left behind on failure."""
        target, _ = self.target.compute_target(compute)
        if target.type not in ("local", "ray"):
            raise DeploymentError(f"Compute target {compute!r} has type {target.type!r}; deployments run on "
                                  "'local' or a 'ray' target")
        if target.type == "local" and (serve_port or serve_host):
            raise DeploymentError("config 'serve_http_port' / 'serve_http_host' only apply to a 'ray' compute target")
        if target.type == "ray" and port is not None:
            raise DeploymentError("config 'port' only applies to compute 'local'; on Ray use 'serve_http_port'")
        record = EndpointRecord(name=name, compute=compute, port=port, generation=1, auto_created=auto_created)
        if target.type == "ray":
            record.ray = {"serve_port": serve_port, "serve_host": serve_host}
        self._set_auth(record, auth_mode)
        self.store.endpoint_dir(name).mkdir(parents=True, exist_ok=True)
        self.store.write_keys(name, {"primary_key": _new_key(), "secondary_key": _new_key()})
        try:
            self.store.save(record)
            self._backend(record).open(record)
            self.store.save(record)
        except BaseException:
            with contextlib.suppress(Exception):
                self._backend(record).close(record)
            self.store.remove(name)
            raise
        return record

    def _set_auth(self, record: EndpointRecord, auth_mode: str) -> None:
        if auth_mode == "aml_token":
            if self.target.is_local:
                raise DeploymentError(f"auth_mode 'aml_token' needs a cloud workspace (azureml://) whose tokens the "
                                      f"endpoint can check; {self.target.tracking_uri} is local: use auth_mode 'key'")
            from mlflow_workspace_plugin.uri import parse_workspace_uri

            scope = parse_workspace_uri(self.target.tracking_uri)
            record.token_check_url = f"{scope.rest_base_url}/api/2.0/mlflow/experiments/search?max_results=1"
        record.auth_mode = auth_mode

    def _credential(self, record: EndpointRecord) -> str:
        if record.auth_mode == "key":
            key = self.store.read_keys(record.name).get("primary_key")
            if not key:
                raise DeploymentError(f"Endpoint {record.name!r} has no keys in {self.store.endpoint_dir(record.name)}")
            return key
        from mlflow_workspace_plugin import auth
        from mlflow_workspace_plugin.uri import parse_workspace_uri

        return auth.get_token(parse_workspace_uri(self.target.tracking_uri))

    def _close(self, record: EndpointRecord) -> None:
        """Stop an endpoint and everything it runs, then forget it (caller holds the lock)."""
        health = self._backend(record).health(record)
        pids = [d.get("pid") for d in health["deployments"].values()] + [health.get("pid")]
        self._backend(record).close(record)
        self.store.remove(record.name)
        for pid in pids:
            _wait_gone(pid)

    def _endpoint(self, name: str) -> EndpointRecord:
        record = self.store.load(name) if isinstance(name, str) and name else None
        if record is None:
            known = ", ".join(self.store.endpoint_names()) or "none"
            raise not_found(f"Endpoint {name!r} does not exist in {self.target.tracking_uri}; endpoints: {known}")
        return record

    def _deployment(self, name: str, endpoint: str | None) -> tuple[EndpointRecord, DeploymentRecord]:
        found = self.store.find_deployment(name, endpoint)
        if found is None:
            where = f"endpoint {endpoint!r}" if endpoint else self.target.tracking_uri
            raise not_found(f"Deployment {name!r} does not exist in {where}")
        return found

    def _await_deployment(self, record: EndpointRecord, name: str, generation: int, timeout: float,
                          on_failure) -> None:
        backend = self._backend(record)
        try:
            status = backend.wait(record, timeout)
            seen = status.get("deployments", {}).get(name, {})
            if seen.get("failed_generation") == generation or seen.get("state") == "Failed":
                raise DeploymentError(f"Deployment {name!r} (endpoint {record.name!r}) failed to start: "
                                      f"{seen.get('error') or 'no details'}")
            if seen.get("generation") != generation:
                raise DeploymentError(f"Deployment {name!r} (endpoint {record.name!r}) is not serving generation "
                                      f"{generation}: {seen}")
        except DeploymentError:
            with contextlib.suppress(Exception):
                on_failure(record, name, generation)
            raise

    def _undo_create(self, record: EndpointRecord, name: str, generation: int) -> None:
        with self.store.lock():
            current = self.store.load(record.name)
            if current is None or name not in current.deployments:
                return
            current.deployments.pop(name)
            current.traffic = _without(current.traffic, name, set(current.deployments))
            if current.auto_created and not current.deployments:
                self._close(current)
                return
            current.generation += 1
            self.store.save(current)
            self._backend(current).apply(current)
            for path in (self.store.endpoint_dir(current.name) / "models").glob(f"{name}-*"):
                shutil.rmtree(path, ignore_errors=True)

    def _undo_update(self, record: EndpointRecord, name: str, generation: int, previous: DeploymentRecord) -> None:
        with self.store.lock():
            current = self.store.load(record.name)
            if current is None or name not in current.deployments:
                return
            current.deployments[name] = previous
            current.generation += 1
            self.store.save(current)
            self._backend(current).apply(current)
            shutil.rmtree(self.store.model_dir(current.name, name, generation), ignore_errors=True)

    def _drop_old_models(self, endpoint: str, name: str, keep: int) -> None:
        with self.store.lock():
            record = self.store.load(endpoint)
            if record is None or name not in record.deployments:
                return
            keep_path = record.deployments[name].model_path
            for path in (self.store.endpoint_dir(endpoint) / "models").glob(f"{name}-*"):
                if str(path) != keep_path and path.name.rsplit("-", 1)[-1].isdigit():
                    shutil.rmtree(path, ignore_errors=True)

    def _describe(self, record: EndpointRecord, deployment: DeploymentRecord, health: dict[str, Any]) -> dict:
        seen = health["deployments"].get(deployment.name, {})
        return {
            "name": deployment.name, "endpoint": record.name, "flavor": FLAVOR,
            "model_uri": deployment.model_uri, "model": {k: v for k, v in deployment.model.items() if k != "tags"},
            "state": seen.get("state", "NotRunning"), "error": seen.get("error"),
            "scoring_uri": self._backend(record).scoring_uri(record),
            "traffic": record.traffic.get(deployment.name, 0), "compute": record.compute,
            "env_manager": deployment.env_manager, "instance_count": deployment.instance_count,
            "pid": seen.get("pid"), "socket": seen.get("socket"), "restarts": seen.get("restarts", 0),
            "log": seen.get("log"), "model_path": deployment.model_path, "generation": deployment.generation,
            "created_at": deployment.created_at, "updated_at": deployment.updated_at,
        }


for _method in ("create_endpoint", "update_endpoint", "delete_endpoint", "list_endpoints", "get_endpoint",
                "create_deployment", "update_deployment", "delete_deployment", "list_deployments", "get_deployment",
                "predict"):
    setattr(WorkspaceDeploymentClient, _method, one_line_in_cli(getattr(WorkspaceDeploymentClient, _method)))


# ---------------------------------------------------------------------- helpers
def _check_flavor(flavor: str | None) -> None:
    if flavor not in (None, FLAVOR):
        raise DeploymentError(f"flavor {flavor!r} is not supported: deployments serve the {FLAVOR!r} flavor")


def _new_key() -> str:
    return secrets.token_urlsafe(32)


def _without(traffic: dict[str, int], name: str, remaining: set[str]) -> dict[str, int]:
    """Traffic after removing ``name``: the others scaled back to 100 (a lone survivor gets 100)."""
    rest = {n: w for n, w in traffic.items() if n != name and n in remaining}
    total = sum(rest.values())
    if total == 100 or not remaining:
        return rest
    if total == 0:
        return {next(iter(sorted(remaining))): 100} if len(remaining) == 1 else rest
    scaled = {n: w * 100 // total for n, w in rest.items()}
    top = max(scaled, key=scaled.get)
    scaled[top] += 100 - sum(scaled.values())
    return scaled


def _payload(inputs: Any) -> str:
    """The scoring server's JSON body for a DataFrame, dict, list, ndarray or ready JSON text."""
    import numpy as np
    import pandas as pd
    from mlflow.utils.proto_json_utils import NumpyEncoder

    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, pd.DataFrame):
        body: Any = {"dataframe_split": json.loads(inputs.to_json(orient="split", index=False))}
    elif isinstance(inputs, dict) and any(key in inputs for key in _INPUT_KEYS):
        body = inputs
    elif isinstance(inputs, dict):
        body = {"dataframe_split": json.loads(pd.DataFrame(inputs).to_json(orient="split", index=False))}
    elif isinstance(inputs, (list, tuple, np.ndarray)):
        body = {"inputs": np.asarray(inputs).tolist() if isinstance(inputs, np.ndarray) else list(inputs)}
    else:
        raise DeploymentError(f"predict inputs of type {type(inputs).__name__} are not supported: pass a pandas "
                              "DataFrame, a dict (columns, or a scoring payload), a list or a numpy array")
    return json.dumps(body, cls=NumpyEncoder)


def _server_message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:2000]
    return str(data.get("message", data))[:2000] if isinstance(data, dict) else text[:2000]


def _wait_gone(pid: int | None, timeout: float = STOP_WAIT_S) -> None:
    if not pid:
        return
    deadline = time.monotonic() + timeout
    while processes.start_time(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
