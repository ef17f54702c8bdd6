"""The ``mlflow-workspace`` command: info, uri, ui on the local workspace."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import mlflow
import pytest
import requests
from helpers import free_port, write_json

CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_info_and_uri_local_default(isolated_workspace):
    result = cli("info")
    assert result.returncode == 0, result.stderr
    assert f"tracking URI: azureml-local://{isolated_workspace}" in result.stdout
    assert cli("uri").stdout.strip() == f"azureml-local://{isolated_workspace}"


def test_info_cloud_config_lists_compute(tmp_path):
    config = write_json(tmp_path / "config.json", {
        "subscription_id": "s1", "resource_group": "rg", "workspace_name": "ws", "region": "eastus",
        "compute": {"cpu-cluster": {"type": "ray"}}})
    result = cli("info", "--config", str(config))
    assert "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/s1/" in result.stdout
    assert "cpu-cluster (ray)" in result.stdout
    bad = cli("uri", "--config", str(tmp_path / "missing.json"))
    assert bad.returncode != 0 and "missing.json" in bad.stderr


def test_ui_serves_the_local_workspace(local_tracking):
    mlflow.set_experiment("seen-in-ui")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # lighter server start
    proc = subprocess.Popen([*CLI, "ui", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    response = None
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                response = requests.post(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                                         json={"max_results": 10}, timeout=10)
                if response.ok:
                    break
            except requests.RequestException:  # not listening yet, or still starting up
                pass
            time.sleep(0.5)
        assert response is not None and response.ok, "the UI did not answer within 180 s"
        names = [e["name"] for e in response.json()["experiments"]]
        assert "seen-in-ui" in names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def _descendants(pid: int) -> set[int]:
    """Pids of every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok
    except requests.RequestException:
        return False


def test_ui_says_ready_when_serving_and_sigterm_stops_every_server_process(local_tracking):
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # lighter server start
    wrapper = subprocess.Popen([*CLI, "ui", "--port", str(port), "--workers", "1"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in wrapper.stdout], daemon=True).start()
    server_pids: set[int] = set()
    try:
        try:
            line = lines.get(timeout=180)
        except queue.Empty:
            line = "(nothing within 180 s)"
        assert line.strip() == f"ready at http://127.0.0.1:{port}", line
        assert _answers(port)  # ready means answering, not merely started
        server_pids = _descendants(wrapper.pid)
        assert server_pids, "the UI server runs as a child of the wrapper"
        os.kill(wrapper.pid, signal.SIGTERM)  # only the wrapper: it must stop the rest
        assert wrapper.wait(30) == 128 + signal.SIGTERM
        assert not _answers(port)
        assert [pid for pid in server_pids if _alive(pid)] == []
    finally:  # whatever happened: nothing of this test may keep running
        server_pids |= _descendants(wrapper.pid)
        if wrapper.poll() is None:
            wrapper.terminate()
            try:
                wrapper.wait(30)
            except subprocess.TimeoutExpired:
                wrapper.kill()
                wrapper.wait(10)
        for pid in server_pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


pytestmark = pytest.mark.slow  # its tests start processes (runs, CLI subprocesses, servers)
