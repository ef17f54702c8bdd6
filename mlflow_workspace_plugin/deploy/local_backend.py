"""Client side of local endpoints: start, signal, wait for and stop an endpoint's front process.

:class:`LocalEndpoints` is the ``compute: local`` backend of :mod:`.client`.

The front process (:mod:`.endpoint_proxy`) is started detached (new session, output to
``logs/endpoint.log``), so endpoints and their scoring servers outlive the Python process that
created them. Clients change ``endpoint.json`` under the state lock, bump its ``generation``, send
``SIGHUP`` and poll ``status.json`` until the front process reports that generation applied.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin.deploy import processes
from mlflow_workspace_plugin.deploy.errors import DeploymentError
from mlflow_workspace_plugin.deploy.state import EndpointRecord, StateStore

PROXY_MODULE = "mlflow_workspace_plugin.deploy.endpoint_proxy"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 45.0
_children: dict[int, subprocess.Popen] = {}  # front processes this process started (reaped on stop)


def proxy_alive(record: EndpointRecord) -> bool:
    process = record.process or {}
    return processes.alive(process.get("pid"), process.get("start_time"))


def start_proxy(store: StateStore, record: EndpointRecord) -> None:
    """Start the endpoint's front process and wait until it listens (port in use -> clear error)."""
    log_path = store.log_dir(record.name) / "endpoint.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    clear_leftovers(store.read_status(record.name))  # of a front that was killed
    (store.endpoint_dir(record.name) / "status.json").unlink(missing_ok=True)
    env = processes.public_environment()
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", PROXY_MODULE, str(store.endpoint_dir(record.name))],
                                 cwd=store.endpoint_dir(record.name), env=env, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    _children[child.pid] = child
    record.process = {"pid": child.pid, "start_time": processes.start_time(child.pid)}
    store.save(record)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        status = store.read_status(record.name)
        if status.get("pid") == child.pid:
            if status.get("listening"):
                return
            break
        if child.poll() is not None:
            break
        time.sleep(0.05)
    status = store.read_status(record.name)
    stop_proxy(store, record)
    reason = status.get("error") or f"it did not start within {START_TIMEOUT_S:.0f} s"
    if "in use" in str(reason).lower():
        reason += " (port in use: choose another 'port' or leave it out for a free one)"
    raise DeploymentError(f"Endpoint {record.name!r}: the front process failed: {reason}. "
                          f"Log {log_path}:\n{processes.log_tail(log_path, 15)}")


def notify(store: StateStore, record: EndpointRecord) -> None:
    """Make the front process apply ``endpoint.json`` (starting it again if it is not running)."""
    if proxy_alive(record):
        os.kill(record.process["pid"], signal.SIGHUP)
    else:
        start_proxy(store, record)


def wait_applied(store: StateStore, record: EndpointRecord, timeout: float) -> dict[str, Any]:
    """Poll ``status.json`` until the front process applied ``record.generation``; return the status."""
    deadline = time.monotonic() + timeout + 5
    while time.monotonic() < deadline:
        status = store.read_status(record.name)
        if status.get("pid") == (record.process or {}).get("pid") and \
                int(status.get("applied_generation", -1)) >= record.generation:
            return status
        if not proxy_alive(record):
            log_path = store.log_dir(record.name) / "endpoint.log"
            raise DeploymentError(f"Endpoint {record.name!r}: its front process exited. Log {log_path}:\n"
                                  f"{processes.log_tail(log_path, 15)}")
        time.sleep(0.05)
    raise DeploymentError(f"Endpoint {record.name!r} did not apply the change within {timeout:.0f} s; see "
                          f"{store.log_dir(record.name)}")


def stop_proxy(store: StateStore, record: EndpointRecord) -> None:
    """Stop the front process (it stops its scoring servers), then make sure nothing is left."""
    status = store.read_status(record.name)
    process = record.process or {}
    pid = process.get("pid")
    if pid and processes.alive(pid, process.get("start_time")):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while processes.alive(pid, process.get("start_time")) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if processes.alive(pid, process.get("start_time")):
            processes.stop_group(pid, timeout=1.0)
    if pid:
        _reap(pid)
    clear_leftovers(status)
    record.process = None


def clear_leftovers(status: dict[str, Any]) -> None:
    """Scoring servers and the private socket folder a killed front process left behind."""
    for deployment in status.get("deployments", {}).values():
        if deployment.get("pid"):
            processes.stop_group(deployment["pid"], timeout=5.0)
    folder = Path(status.get("sockets") or "")
    if folder.name.startswith("mlflow-ep-") and folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)


class LocalEndpoints:
    """Endpoints on this machine: a front process per endpoint, a scoring server per deployment."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def scoring_uri(self, record: EndpointRecord) -> str:
        return f"http://{processes.LOOPBACK}:{record.port}/invocations"

    def open(self, record: EndpointRecord) -> None:
        if record.port is None:
            record.port = processes.free_port()
        elif processes.port_in_use(record.port):
            raise DeploymentError(f"Endpoint {record.name!r}: port {record.port} on {processes.LOOPBACK} is in use; "
                                  "choose another 'port' or leave it out for a free one")
        start_proxy(self.store, record)

    def apply(self, record: EndpointRecord) -> None:
        notify(self.store, record)

    def wait(self, record: EndpointRecord, timeout: float) -> dict[str, Any]:
        return wait_applied(self.store, record, timeout)

    def close(self, record: EndpointRecord) -> None:
        stop_proxy(self.store, record)

    def health(self, record: EndpointRecord) -> dict[str, Any]:
        """Real health: the front process is alive and ``/ping`` answers, per server too."""
        import requests

        status = self.store.read_status(record.name)
        running = proxy_alive(record) and status.get("pid") == (record.process or {}).get("pid")
        state = "NotRunning"
        if running:
            try:
                ok = requests.get(f"http://{processes.LOOPBACK}:{record.port}/ping", timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            state = "Healthy" if ok else "Unhealthy"
        deployments = {}
        for name in record.deployments:
            seen = dict(status.get("deployments", {}).get(name, {})) if running else {}
            if seen.get("state") == "Healthy" and seen.get("socket") and not processes.ping_unix(seen["socket"]):
                seen["state"] = "Unhealthy"
            seen.setdefault("state", "NotRunning")
            seen.setdefault("log", str(self.store.log_dir(record.name) / f"{name}.log"))
            deployments[name] = seen
        return {"state": state, "deployments": deployments,
                "log": str(self.store.log_dir(record.name) / "endpoint.log"),
                "pid": (record.process or {}).get("pid") if running else None}
