"""``mlflow run --backend azureml`` from the real CLI: streams, waits, exit codes, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import as_from_a_terminal, write_project
from mlflow import MlflowClient

from mlflow_workspace_plugin import Workspace

MLFLOW_CLI = [sys.executable, "-m", "mlflow"]


def mlflow_run(project, *extra, timeout=300, **popen):
    command = [*MLFLOW_CLI, "run", str(project), "--backend", "azureml", "--env-manager", "local",
               "--backend-config", json.dumps({"USE_CONDA": False}), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **popen)


def workspace_client() -> MlflowClient:
    return MlflowClient(Workspace.local(os.environ["MLFLOW_WORKSPACE_HOME"]).get_mlflow_tracking_uri())


def test_cli_streams_waits_and_lands_in_local_workspace(tmp_path):
    project = write_project(tmp_path / "proj", "import mlflow\nprint('cli-output-line')\nmlflow.log_metric('m', 2.0)\n")
    result = mlflow_run(project, "--experiment-name", "cli-exp")
    assert result.returncode == 0, result.stderr
    assert "cli-output-line" in result.stdout
    client = workspace_client()
    experiment = client.get_experiment_by_name("cli-exp")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics == {"m": 2.0}
    assert not (tmp_path / "mlruns").exists()
    # MLflow resolved --experiment-name in its default store (./mlflow.db) first: nothing stays behind
    assert not os.path.exists("mlflow.db") and not os.path.exists("mlruns")


def test_cli_failure_exits_nonzero_with_error_tail(tmp_path):
    project = write_project(tmp_path / "proj", "import sys\nsys.exit('fatal: bad data shape')\n")
    result = mlflow_run(project)
    assert result.returncode == 1
    assert "fatal: bad data shape" in result.stderr and "exit code 1" in result.stderr
    assert result.stderr.count("failed with exit code 1") == 1  # the error block is printed once
    (run,) = workspace_client().search_runs(["0"])
    assert run.info.status == "FAILED"
    assert f"run {run.info.run_id} FAILED; to look at it, run `mlflow-workspace ui`" in result.stderr


def test_cli_exits_with_the_entry_points_exit_code(tmp_path):
    result = mlflow_run(write_project(tmp_path / "proj", "import sys\nsys.exit(3)\n"))
    assert result.returncode == 3, result.stderr


def test_cli_success_ends_with_one_line_naming_status_run_and_where_to_look(tmp_path):
    result = mlflow_run(write_project(tmp_path / "proj", "print('ok')\n"))
    assert result.returncode == 0, result.stderr
    (run,) = workspace_client().search_runs(["0"])
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"mlflow-workspace: run {run.info.run_id} FINISHED; to look at it, run `mlflow-workspace ui`, "
                    f"then open http://127.0.0.1:5000/#/experiments/0/runs/{run.info.run_id}")


def test_cli_bad_backend_config_exits_nonzero_before_run(tmp_path):
    project = write_project(tmp_path / "proj", "print('x')")
    command = [*MLFLOW_CLI, "run", str(project), "--backend", "azureml", "--backend-config", '{"USE_CONDA": "maybe"}']
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "USE_CONDA='maybe' is not allowed" in result.stderr
    assert "Traceback" not in result.stderr  # one clear line, not a traceback wall
    assert not workspace_client().search_runs(["0"])


def test_cli_unknown_compute_target_is_one_line_before_any_run(tmp_path):
    project = write_project(tmp_path / "proj", "print('x')")
    command = [*MLFLOW_CLI, "run", str(project), "--backend", "azureml", "--backend-config", '{"COMPUTE": "gpu"}']
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Unknown compute target 'gpu'" in result.stderr and "Traceback" not in result.stderr
    assert not workspace_client().search_runs(["0"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_interrupt_kills_run(tmp_path, sig):
    script = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"
    project = write_project(tmp_path / "proj", script)
    command = [*MLFLOW_CLI, "run", str(project), "--backend", "azureml", "--env-manager", "local",
               "--backend-config", '{"USE_CONDA": false}']
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=as_from_a_terminal)
    try:
        deadline = time.time() + 90
        for line in proc.stdout:
            if "started" in line or time.time() > deadline:
                break
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    (run,) = workspace_client().search_runs(["0"])
    assert run.info.status == "KILLED"


pytestmark = pytest.mark.slow  # its tests start processes (runs, CLI subprocesses, servers)
