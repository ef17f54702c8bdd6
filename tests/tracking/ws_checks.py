"""Read what the real server stored (plain http at its own port, and its SQLite file), and run
client scripts in subprocesses against the workspace."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import requests
from ws_servers import MlflowServer

REPO = Path(__file__).resolve().parents[2]


def history(server: MlflowServer, run_id: str, key: str) -> list[dict]:
    """Every point of metric ``key`` as the server returns it (GetMetricHistory over http)."""
    reply = requests.get(f"{server.url}/api/2.0/mlflow/metrics/get-history",
                         params={"run_id": run_id, "metric_key": key}, timeout=60)
    reply.raise_for_status()
    return reply.json().get("metrics", [])


def run_data(server: MlflowServer, run_id: str) -> dict:
    reply = requests.get(f"{server.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=60)
    reply.raise_for_status()
    return reply.json()["run"]


def stored_rows(server: MlflowServer, run_id: str, key: str) -> tuple[int, int]:
    """(rows, distinct steps) of metric ``key`` in the server's database."""
    with sqlite3.connect(server.root / "mlflow.db") as conn:
        rows, steps = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT step) FROM metrics WHERE run_uuid = ? AND key = ?",
            (run_id, key)).fetchone()
    return rows, steps


def assert_exactly(server: MlflowServer, run_id: str, key: str, count: int) -> None:
    """The server holds ``count`` points of ``key`` at steps 0..count-1, each exactly once."""
    points = history(server, run_id, key)
    assert sorted(int(p.get("step", 0)) for p in points) == list(range(count)), (
        f"{len(points)} points for {key!r}, expected steps 0..{count - 1} once each")
    assert stored_rows(server, run_id, key) == (count, count)


def journal_files(home: Path) -> list[Path]:
    return sorted((home / "journal").rglob("*.db")) if (home / "journal").exists() else []


def client_env(uri: str, token: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_TOKEN": token,
                "MLFLOW_WORKSPACE_HOME": str(home), "PYTHONUNBUFFERED": "1",
                # no detached sender unless a test asks for one (it would outlive the test)
                "MLFLOW_WORKSPACE_BACKGROUND_SENDER": "false"})
    env.update(extra)
    return env


def start_script(code: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """``python -c code`` in its own session (so only it is ever signalled)."""
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def mlflow_workspace_cli(*args: str, env: dict[str, str], cwd: Path,
                         timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlflow_workspace_plugin.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
