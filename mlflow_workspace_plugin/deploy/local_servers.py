"""MLflow scoring server commands on loopback, and readiness checks.

With ``env_manager="local"`` (default) a deployment runs exactly the command ``mlflow models serve``
execs for a local env (:func:`mlflow.pyfunc.scoring_server.get_cmd`: uvicorn with
``mlflow.pyfunc.scoring_server.app:app``) with this interpreter; with ``virtualenv``, ``uv`` or
``conda`` it runs ``mlflow models serve --env-manager <it>``, which builds the model's environment
first. An endpoint's servers listen on a Unix socket only (uvicorn ``--uds``; ``mlflow models serve``
gets ``UVICORN_UDS`` from the front, which uvicorn prefers to its host and port), ``run_local``'s on
127.0.0.1. Commands are computed here (where MLflow is imported) and stored with the deployment,
with ``{socket}`` / ``{port}`` placeholders the endpoint's front process fills in.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

from mlflow_workspace_plugin.deploy import processes
from mlflow_workspace_plugin.deploy.errors import DeploymentError
from mlflow_workspace_plugin.deploy.processes import LOOPBACK, log_tail

PORT_PLACEHOLDER = "{port}"
SOCKET_PLACEHOLDER = "{socket}"  # as in supervisor.py
_MODEL_PATH_ENV = "__pyfunc_model_path__"  # mlflow.pyfunc.scoring_server._SERVER_MODEL_PATH


def check_env_manager(env_manager: str) -> None:
    """Fail early when the tool an env manager needs is missing (no conda here is common)."""
    needs = {"conda": ("conda",), "uv": ("uv",), "virtualenv": ("virtualenv",)}.get(env_manager, ())
    missing = [tool for tool in needs if shutil.which(tool) is None and not _module_available(tool)]
    if missing:
        raise DeploymentError(f"env_manager {env_manager!r} needs {', '.join(missing)}, which is not installed on "
                              "this machine; use env_manager 'local' (this Python environment) or install it")


def _module_available(name: str) -> bool:
    return name in ("uv", "virtualenv") and importlib.util.find_spec(name) is not None


def server_command(model_path: Path, env_manager: str = "local", workers: int = 1,
                   port: int | str = PORT_PLACEHOLDER) -> tuple[list[str], dict[str, str]]:
    """argv and extra environment of a scoring server for ``model_path`` on ``127.0.0.1:port`` (a
    real port: ``run_local``), else on the endpoint's Unix socket ``{socket}``."""
    from mlflow.pyfunc import scoring_server

    if env_manager == "local":
        command, env = scoring_server.get_cmd(str(model_path), port=port, host=LOOPBACK, nworkers=workers)
        argv = shlex.split(command)
        if argv[0] != "uvicorn" or "--host" not in argv or "--port" not in argv:
            raise DeploymentError(f"Unexpected scoring server command from MLflow: {command}")
        if port == PORT_PLACEHOLDER:  # an endpoint's server: its Unix socket instead of host and port
            for option in ("--host", "--port"):
                at = argv.index(option)
                del argv[at:at + 2]
            argv[1:1] = ["--uds", SOCKET_PLACEHOLDER]
        extra = {name: env[name] for name in (_MODEL_PATH_ENV, "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT") if name in env}
        return [sys.executable, "-m", *argv], extra
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_path), "-h", LOOPBACK,
            "-p", str(port), "-w", str(workers), "--env-manager", env_manager], {}


def spawn(model_path: Path, port: int, log_path: Path, env_manager: str = "local", workers: int = 1,
          *, tie_to_parent: bool = True) -> subprocess.Popen:
    """Start a scoring server now (``run_local``); endpoints start theirs from the stored command."""
    argv, env = server_command(model_path, env_manager, workers, port)
    return processes.spawn(argv, env, log_path, f"scoring server on {LOOPBACK}:{port} for {model_path}",
                           tie_to_parent=tie_to_parent)


def wait_ready(process: subprocess.Popen, port: int, log_path: Path, timeout: float) -> None:
    """Block until ``GET /ping`` answers 200; on exit or timeout raise with the server's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeploymentError(f"The scoring server exited with code {process.returncode} before it answered. "
                                  f"Log {log_path}:\n{log_tail(log_path)}")
        try:
            if requests.get(f"http://{LOOPBACK}:{port}/ping", timeout=1.0).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise DeploymentError(f"The scoring server did not answer /ping within {timeout:.0f} s. "
                          f"Log {log_path}:\n{log_tail(log_path)}")
