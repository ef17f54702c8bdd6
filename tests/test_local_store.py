"""The local workspace's SQLite store opened by several processes at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    ready = [subprocess.Popen([sys.executable, "-c", OPEN_AND_LOG, uri, str(go), f"exp-{i}"],
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


pytestmark = pytest.mark.slow  # its tests start processes (runs, CLI subprocesses, servers)
