"""Start/stop a real ``mlflow server`` (and optionally the front door as a process) on 127.0.0.1.

Shared by the tracking tests (``tests/tracking/conftest.py``) and the benchmarks.
Test and benchmark infrastructure only: nothing in the package imports it. Every process is started
in its own session (process group) and stopped by that group id only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from mlflow_workspace_plugin.ports import free_port

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "rg-tests"
WORKSPACE = "ws-tests"
SCOPE_PATH = (f"subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
              f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group a test created for ``proc`` (``start_new_session=True``);
    SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def workspace_uri(port: int, scope_path: str = SCOPE_PATH) -> str:
    return f"azureml://127.0.0.1:{port}/mlflow/v1.0/{scope_path}"


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_REGISTRY_", "MLFLOW_EXPERIMENT_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class MlflowServer:
    """A running ``mlflow server`` (SQLite backend, proxied artifacts in ``artifacts_dir``)."""

    process: subprocess.Popen
    port: int
    root: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    def stop(self) -> None:
        stop_process(self.process)

    def restart(self, down_seconds: float = 0.0, timeout: float = 90.0) -> None:
        """Stop the server (SIGTERM to its process group), stay down ``down_seconds``, and start
        it again on the same port with the same database and artifacts."""
        self.stop()
        time.sleep(down_seconds)
        self.start(timeout)

    def start(self, timeout: float = 90.0) -> None:
        """(Re)start the stopped server on its port and wait until ``/health`` answers."""
        self.process = _launch(self.root, self.port, self.log_path)
        _wait_healthy(self, timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_mlflow_server(root: Path, timeout: float = 90.0) -> MlflowServer:
    """Start ``python -m mlflow server`` under ``root`` and wait until ``/health`` answers.

    The server's background job runner (huey consumers for GenAI jobs) is switched off: it is not
    needed here and its start-up competes for the two cores with the code under test.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "artifacts").mkdir(exist_ok=True)
    port = free_port()
    log_path = root / "server.log"
    server = MlflowServer(_launch(root, port, log_path), port, root, log_path)
    _wait_healthy(server, timeout)
    return server


def _launch(root: Path, port: int, log_path: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
    ]
    env = _child_env()
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)


def _wait_healthy(server: MlflowServer, timeout: float) -> None:
    proc = server.process
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if requests.get(f"{server.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"mlflow server not ready after {timeout:.0f}s:\n{server.log_tail()}")
    except BaseException:
        server.stop()
        raise


def session_cpu_seconds(session_id: int) -> float:
    """CPU time (user+system) of all live processes in session ``session_id`` (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # fields after "(comm)": state ppid pgrp session ...
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wait_until_idle(process: subprocess.Popen, timeout: float = 60.0, busy: float = 0.05) -> None:
    """Wait until the session started for ``process`` uses < ``busy`` CPU-seconds per second."""
    deadline = time.monotonic() + timeout
    last = session_cpu_seconds(process.pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = session_cpu_seconds(process.pid)
        if now - last < busy:
            return
        last = now


@dataclass
class FrontDoorProcess:
    """The front door running as its own process (used by the benchmark)."""

    process: subprocess.Popen
    port: int

    def stop(self) -> None:
        stop_process(self.process)


def start_front_door_process(upstream: str, token: str | None, timeout: float = 30.0,
                             latency_ms: float = 0.0) -> FrontDoorProcess:
    """Run :mod:`.front_door` as a process; the token is passed in its env, never on argv.
    ``token=None``: a plain proxy (no workspace prefix, no token); ``latency_ms``: each request
    waits that long before it is forwarded (one round trip of a remote link)."""
    env = _child_env()
    cmd = [sys.executable, "-m", "mlflow_workspace_plugin.testing.front_door", "--upstream", upstream,
           "--latency-ms", str(latency_ms)]
    if token is None:
        cmd.append("--plain")
    else:
        env["WS_FRONT_DOOR_TOKEN"] = token
        cmd += ["--scope", SCOPE_PATH, "--token-env", "WS_FRONT_DOOR_TOKEN"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True, text=True)
    door = FrontDoorProcess(proc, 0)
    deadline = time.monotonic() + timeout
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"front door did not start (exit code {proc.poll()})")
        door.port = int(line.split()[1])
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{door.port}/", timeout=2)
                return door
            except requests.RequestException:
                time.sleep(0.1)
        raise TimeoutError("front door not reachable")
    except BaseException:
        door.stop()
        raise


@contextlib.contextmanager
def server_behind_front_door(root: Path, token: str) -> Iterator[tuple[MlflowServer, FrontDoorProcess]]:
    """A started, idle ``mlflow server`` and a front door process checking ``token``; both are
    stopped on exit (what the benchmarks share)."""
    server = start_mlflow_server(root)
    door = None
    try:
        door = start_front_door_process(server.url, token)
        wait_until_idle(server.process)
        yield server, door
    finally:
        if door is not None:
            door.stop()
        server.stop()
