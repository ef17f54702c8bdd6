"""``mlflow run --backend azureml`` from the real CLI: streams, waits, exit codes, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import write_project
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


def test_cli_failure_exits_nonzero_with_error_tail(tmp_path):
    project = write_project(tmp_path / "proj", "import sys\nsys.exit('fatal: bad data shape')\n")
    result = mlflow_run(project)
    assert result.returncode == 1
    assert "fatal: bad data shape" in result.stderr and "exit code 1" in result.stderr
    (run,) = workspace_client().search_runs(["0"])
    assert run.info.status == "FAILED"


def test_cli_bad_backend_config_exits_nonzero_before_run(tmp_path):
    project = write_project(tmp_path / "proj", "print('x')")
    command = [*MLFLOW_CLI, "run", str(project), "--backend", "azureml", "--backend-config", '{"USE_CONDA": "maybe"}']
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "USE_CONDA='maybe' is not allowed" in result.stderr
    assert not workspace_client().search_runs(["0"])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_interrupt_kills_run(tmp_path, sig):
    script = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"
    project = write_project(tmp_path / "proj", script)
    command = [*MLFLOW_CLI, "run", str(project), "--backend", "azureml", "--env-manager", "local",
               "--backend-config", '{"USE_CONDA": false}']
    # a shell may start test processes with SIGINT ignored; a terminal user's `mlflow run` has it
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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
    assert proc.returncode != 0
    (run,) = workspace_client().search_runs(["0"])
    assert run.info.status == "KILLED"
