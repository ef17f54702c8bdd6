"""MLflow scoring server processes on loopback: the command, the environment, start and readiness.

With ``env_manager="local"`` (default) a deployment runs exactly the command ``mlflow models serve``
execs for a local env (:func:`mlflow.pyfunc.scoring_server.get_cmd`: uvicorn with
``mlflow.pyfunc.scoring_server.app:app``) with this interpreter; with ``virtualenv``, ``uv`` or
``conda`` it runs ``mlflow models serve --env-manager <it>``, which builds the model's environment
first. Servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from mlflow_workspace_plugin.deploy.errors import DeploymentError
from mlflow_workspace_plugin.deploy.processes import LOOPBACK, log_tail

# Never hand credentials to a model server: it only needs the model folder.
_SECRET_ENV = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME",
               "AZURE_CLIENT_SECRET", "AZURE_PASSWORD")


def check_env_manager(env_manager: str) -> None:
    """Fail early when the tool an env manager needs is missing (no Docker/conda here is common)."""
    needs = {"conda": ("conda",), "uv": ("uv",), "virtualenv": ("virtualenv",)}.get(env_manager, ())
    missing = [tool for tool in needs if shutil.which(tool) is None and not _module_available(tool)]
    if missing:
        raise DeploymentError(f"env_manager {env_manager!r} needs {', '.join(missing)}, which is not installed on "
                              "this machine; use env_manager 'local' (this Python environment) or install it")


def _module_available(name: str) -> bool:
    import importlib.util

    return name in ("uv", "virtualenv") and importlib.util.find_spec(name) is not None


def server_command(model_path: Path, port: int, env_manager: str = "local",
                   workers: int = 1) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a scoring server for ``model_path`` on ``127.0.0.1:port``."""
    from mlflow.pyfunc import scoring_server

    if env_manager == "local":
        command, env = scoring_server.get_cmd(str(model_path), port=port, host=LOOPBACK, nworkers=workers)
        argv = shlex.split(command)
        if argv[0] != "uvicorn":
            raise DeploymentError(f"Unexpected scoring server command from MLflow: {command}")
        argv = [sys.executable, "-m", *argv]
    else:
        argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_path), "-h", LOOPBACK,
                "-p", str(port), "-w", str(workers), "--env-manager", env_manager]
        env = os.environ.copy()
    for name in _SECRET_ENV:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return argv, env


def die_with_parent() -> None:
    """``preexec_fn``: SIGTERM this child when its parent (the endpoint process) dies, so a killed
    endpoint process leaves no orphan server behind."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(model_path: Path, port: int, log_path: Path, env_manager: str = "local", workers: int = 1,
          *, tie_to_parent: bool = True) -> subprocess.Popen:
    """Start a scoring server in its own process group, output appended to ``log_path``."""
    argv, env = server_command(model_path, port, env_manager, workers)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting scoring server on {LOOPBACK}:{port} "
                  f"for {model_path} (env_manager {env_manager})\n".encode())
        log.flush()
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                preexec_fn=die_with_parent if tie_to_parent else None)


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
