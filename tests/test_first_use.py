"""What a new user hit, README in hand: `ui` on a taken port, `job list` with sweeps, noise, the UI's view."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
import time

import pytest
from helpers import free_port
from mlflow import MlflowClient

CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def busy_port(tmp_path):
    """A real HTTP server on a free loopback port: it answers any readiness probe."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_ui_on_a_taken_port_says_so_and_fails(busy_port):
    result = cli("ui", "--port", str(busy_port))
    assert result.returncode != 0
    assert "ready at" not in result.stdout
    assert f"port {busy_port} on 127.0.0.1 is already in use" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_local_workspace_is_announced_once_per_workspace(isolated_workspace):
    first, second = cli("uri"), cli("uri")
    assert "using the local workspace at" in first.stderr
    assert "using the local workspace" not in second.stderr
    assert second.stdout.strip() == f"azureml-local://{isolated_workspace}"


def _job_runs(client: MlflowClient) -> None:
    """An older command job, then a sweep whose 3 trials are the newest runs (the store, as jobs leave it)."""
    experiment = client.create_experiment("listing")
    now = int(time.time() * 1000)
    client.create_run(experiment, start_time=now - 10_000, tags={"azureml.job.name": "solo"})
    parent = client.create_run(experiment, start_time=now - 5_000,
                               tags={"azureml.job.name": "sweepy", "azureml.job.type": "sweep"})
    for index in range(3):
        client.create_run(experiment, start_time=now + index, tags={
            "azureml.job.name": f"sweepy_{index}", "azureml.sweep.trial_index": str(index),
            "mlflow.parentRunId": parent.info.run_id})


def test_job_list_limit_counts_jobs_not_trials(local_tracking):
    _job_runs(MlflowClient(local_tracking))
    result = cli("job", "list", "--max-results", "2")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert names == ["sweepy", "solo"]  # trials: `job show -n sweepy`


def test_job_download_without_a_terminal_has_no_progress_bars(local_tracking, tmp_path):
    client = MlflowClient(local_tracking)
    experiment = client.create_experiment("downloads")
    run = client.create_run(experiment, tags={"azureml.job.name": "quiet"})
    for index in range(3):
        source = tmp_path / f"part{index}.txt"
        source.write_text("x" * 1000)
        client.log_artifact(run.info.run_id, str(source), "outputs")
    result = cli("job", "download", "-n", "quiet", "--download-path", str(tmp_path / "down"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "down" / "quiet" / "outputs" / "part2.txt").is_file()
    assert "Downloading artifacts" not in result.stderr and "%|" not in result.stderr


def test_experiments_created_for_jobs_open_on_the_training_view(local_tracking, tmp_path):
    from mlflow_workspace_plugin.jobs.loader import load_job
    from mlflow_workspace_plugin.jobs.submit import submit_job

    job_file = tmp_path / "job.yml"
    job_file.write_text("command: echo ok\nexperiment_name: brand-new\n")
    handle = submit_job(load_job(job_file))
    assert handle.wait()
    experiment = MlflowClient(local_tracking).get_experiment_by_name("brand-new")
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
