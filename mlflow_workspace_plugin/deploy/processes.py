"""Process, port and state-file helpers (no MLflow: the endpoint front process imports this module).
Process identity is (pid, start time) and stopping is the shared :mod:`mlflow_workspace_plugin.process_tree`."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.compute.sealed_secrets import is_secret
from mlflow_workspace_plugin.ports import LOOPBACK, free_port  # noqa: F401 - free_port: used as processes.free_port


def public_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without secrets, by the same name rule as Ray jobs
    (:func:`~mlflow_workspace_plugin.compute.sealed_secrets.is_secret`: ``*TOKEN*``, ``*PASSWORD*``,
    ``*SECRET*``, ``*KEY*``, ``*CLIENT_CERT*``). Endpoint and model server processes only need the
    model folder, never a credential."""
    return {k: v for k, v in (os.environ if env is None else env).items() if not is_secret(k)}


def start_time(pid: int) -> str | None:
    """The start time of a live, non-zombie ``pid`` (guards against recycled pids), else None."""
    identity = process_tree.identity(pid)
    return identity.split(":", 1)[1] if identity else None


def alive(pid: int | None, started: str | None) -> bool:
    """True iff ``pid`` runs and is the same process that started at ``started``."""
    return bool(pid) and start_time(pid) is not None and (started is None or start_time(pid) == started)


group_members = process_tree.group_members


def stop_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM process group ``pgid`` (and its leader's descendants), SIGKILL what is left after ``timeout``."""
    process_tree.stop_group(pgid, timeout)


def die_with_parent() -> None:
    """``preexec_fn``: SIGTERM this child when its parent dies (no orphan servers after a killed
    endpoint process)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(argv: list[str], env_overrides: dict[str, str], log_path: Path, banner: str,
          tie_to_parent: bool = True) -> subprocess.Popen:
    """Start ``argv`` in its own process group, output appended to ``log_path``, secrets removed
    from its environment."""
    env = public_environment()
    env.update(env_overrides)
    env["PYTHONUNBUFFERED"] = "1"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {banner}\n".encode())
        log.flush()
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                preexec_fn=die_with_parent if tie_to_parent else None)


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ping_unix(socket_path: str, timeout: float = 2.0) -> bool:
    """True when the HTTP server on Unix socket ``socket_path`` answers ``GET /ping`` with 200."""
    connection = _UnixHTTPConnection(socket_path, timeout)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON state file, or None when it does not exist (ValueError when it is corrupt)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    """Write atomically (temp file + rename) so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
