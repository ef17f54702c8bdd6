"""The local workspace's SQLite store opened by several processes at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from mlflow_workspace_plugin.local_database import TEMPLATE_ENV, template_folder

OPEN_AND_LOG = """
import sys, time
from pathlib import Path
from mlflow import MlflowClient
go = Path(sys.argv[2])
Path(sys.argv[2] + "." + sys.argv[3]).touch()  # ready
while not go.exists():  # every process has imported MLflow: open the fresh store together
    time.sleep(0.01)
client = MlflowClient(sys.argv[1])
run = client.create_run(client.create_experiment(sys.argv[3]))
client.log_metric(run.info.run_id, "m", 1.0)
client.set_terminated(run.info.run_id)
"""


def test_processes_opening_a_fresh_workspace_at_once_all_succeed(tmp_path: Path):
    uri = f"azureml-local://{tmp_path / 'fresh-workspace'}"
    go = tmp_path / "go"
    env = {**os.environ, TEMPLATE_ENV: "0"}  # MLflow's own migrations, all at once: the lock is what holds
    ready = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LOG, uri, str(go), f"exp-{i}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.exp-{i}").exists() for i in range(3)) and time.monotonic() < deadline:
        time.sleep(0.05)  # every process has imported MLflow
    go.touch()
    results = [proc.communicate(timeout=120) for proc in ready]
    for proc, (_, err) in zip(ready, results, strict=True):
        assert proc.returncode == 0, err[-2000:]
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments() if e.name.startswith("exp-")])
    assert len(runs) == 3 and all(run.info.status == "FINISHED" for run in runs)


def _rows(database: Path) -> dict:
    with sqlite3.connect(database) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {table: connection.execute(f"SELECT * FROM {table}").fetchall() for table in sorted(tables)}
    connection.close()
    rows["experiments"] = [row[:3] for row in rows["experiments"]]  # id, name, artifact location (not times)
    return rows


def test_a_new_workspace_is_seeded_with_what_mlflow_itself_creates(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(TEMPLATE_ENV, "0")
    MlflowClient(f"azureml-local://{tmp_path / 'by-mlflow'}").search_experiments()
    monkeypatch.setenv(TEMPLATE_ENV, "1")
    seeded = tmp_path / "seeded"
    MlflowClient(f"azureml-local://{seeded}").search_experiments()  # builds the template, then copies it
    template = next(template_folder().glob("mlflow-*.db"))
    built_at = template.stat().st_mtime_ns
    again = tmp_path / "again"
    client = MlflowClient(f"azureml-local://{again}")
    run = client.create_run("0")
    client.log_metric(run.info.run_id, "m", 1.0)
    assert template.stat().st_mtime_ns == built_at  # reused, not rebuilt

    by_mlflow = _rows(tmp_path / "by-mlflow" / "mlflow.db")
    for folder in (seeded, again):
        rows = _rows(folder / "mlflow.db")
        expected = {**by_mlflow, "experiments": [(0, "Default", f"{folder / 'artifacts'}/0")]}
        for table in ("runs", "metrics", "latest_metrics", "tags"):
            rows.pop(table), expected.pop(table)
        assert rows == expected
    assert by_mlflow["experiments"] == [(0, "Default", f"{tmp_path / 'by-mlflow' / 'artifacts'}/0")]
    assert client.get_run(run.info.run_id).info.artifact_uri.startswith(str(again / "artifacts" / "0"))
