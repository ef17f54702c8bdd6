"""What both plugin modules share: ``run_local`` and the help text."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mlflow_workspace_plugin.deploy import config as config_module
from mlflow_workspace_plugin.deploy import local_servers, model_source
from mlflow_workspace_plugin.deploy.errors import DeploymentError
from mlflow_workspace_plugin.deploy.processes import LOOPBACK, port_in_use
from mlflow_workspace_plugin.deploy.targets import resolve_target
from mlflow_workspace_plugin.workspace import Workspace

DEFAULT_LOCAL_PORT = 5000
_RUN_LOCAL_KEYS = ("port", "env_manager", "instance_count", "timeout")


def run_local(name, model_uri, flavor=None, config=None, *, target_uri: str | None = None) -> None:
    """Serve ``model_uri`` in the foreground on 127.0.0.1 (``port``, default 5000) until Ctrl-C.

    MLflow calls it as ``run_local(name, model_uri, flavor, config)``: the model is resolved in the
    discovered workspace (``Workspace.from_config()``). Nothing is recorded: it is not an endpoint.
    """
    if flavor not in (None, "python_function"):
        raise DeploymentError(f"flavor {flavor!r} is not supported: run_local serves 'python_function'")
    config = dict(config or {})
    unknown = sorted(set(config) - set(_RUN_LOCAL_KEYS))
    if unknown:
        raise DeploymentError(f"run_local config key {unknown[0]!r} is not recognised; "
                              f"allowed: {', '.join(_RUN_LOCAL_KEYS)}")
    port = config_module.positive_int("port", config.pop("port", DEFAULT_LOCAL_PORT), upper=65535)
    cfg = config_module.deployment_config(config)
    if cfg.env_manager != "local":
        local_servers.check_env_manager(cfg.env_manager)
    if port_in_use(port):
        raise DeploymentError(f"run_local: port {port} on {LOOPBACK} is in use; pass -C port=<free port>")
    tracking_uri = resolve_target(target_uri or Workspace.from_config().get_mlflow_tracking_uri()).tracking_uri
    source = model_source.resolve(model_uri, tracking_uri)
    folder = Path(tempfile.mkdtemp(prefix=f"mlflow-run-local-{name}-"))
    try:
        model_dir = model_source.materialize(source, folder / "model", tracking_uri)
        log_path = folder / "server.log"
        process = local_servers.spawn(model_dir, port, log_path, cfg.env_manager, cfg.instance_count,
                                      tie_to_parent=True)
        try:
            local_servers.wait_ready(process, port, log_path, cfg.timeout)
            print(f"Serving {model_uri} ({name}) at http://{LOOPBACK}:{port}/invocations — Ctrl-C stops it",
                  flush=True)
            _follow(process, log_path)
        finally:
            _stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _follow(process: subprocess.Popen, log_path: Path) -> None:
    """Echo the server log until it exits or Ctrl-C / SIGTERM."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with open(log_path, errors="replace") as log:
            while process.poll() is None:
                line = log.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    process_wait(process, 0.2)
        if process.returncode:
            raise DeploymentError(f"The scoring server exited with code {process.returncode}")
    except KeyboardInterrupt:
        print("Stopping the scoring server", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)


def process_wait(process: subprocess.Popen, seconds: float) -> None:
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        pass


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen) -> None:
    from mlflow_workspace_plugin.deploy.processes import stop_group

    stop_group(process.pid, timeout=10.0)
    process_wait(process, 5)


def help_text(scheme: str, uri_shape: str) -> str:
    return f"""\
Target {scheme!r}: deploy models of the workspace as online endpoints (mlflow-workspace-plugin).

Target URI: {uri_shape} — the workspace's tracking URI (ws.get_mlflow_tracking_uri(), or
`mlflow-workspace uri`); just '{scheme}' means the discovered workspace. Models are looked up in that
workspace's registry: models:/<name>/<version>, models:/<name>@<alias>, models:/<name>/latest,
runs:/<run id>/<path>; a registered model with framework/framework_version tags and a joblib/pickle
file (no MLmodel) is served through a generated pyfunc wrapper.

An endpoint is a stable scoring URI (POST /invocations with MLflow's scoring-server JSON, header
'Authorization: Bearer <key>') holding deployments that share its traffic. create_deployment without
an endpoint creates one of the same name. Locally (compute 'local', default) each endpoint is a front
process on 127.0.0.1 and each deployment an MLflow scoring server; on a 'ray' compute target each
endpoint is a Ray Serve application. State and logs: <workspace>/deployments/<endpoint>/ (local
workspace) or $MLFLOW_WORKSPACE_HOME/deployments/ (cloud workspace).

{config_module.describe_keys()}

run_local(name, model_uri, flavor, config): serve in the foreground on 127.0.0.1 until Ctrl-C;
config keys: port (default {DEFAULT_LOCAL_PORT}), env_manager, instance_count, timeout.
Docker is not used: no image is built.
"""
