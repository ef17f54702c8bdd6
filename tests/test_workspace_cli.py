"""The ``mlflow-workspace`` command: info, uri, ui on the local workspace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import mlflow
import requests
from helpers import write_json

CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    proc = subprocess.Popen([*CLI, "ui", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                response = requests.post(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                                         json={"max_results": 10}, timeout=10)
                if response.ok:
                    break
            except requests.RequestException:  # not listening yet, or still starting up
                pass
            time.sleep(0.5)
        names = [e["name"] for e in response.json()["experiments"]]
        assert "seen-in-ui" in names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
