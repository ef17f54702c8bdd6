"""Azure ML's own job files, as written for Azure ML (CLI v2 YAML, see JOBS.md), run unchanged here.

Each test reproduces what a user arriving with a folder of Azure ML job files hit: compute names,
``./outputs`` missing when the command starts, pipeline files, ignored fields, warnings per trial.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import mlflow
import pytest
from helpers import read_artifact, write_project
from mlflow import MlflowClient

CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]

# azureml-examples cli/jobs/basics/hello-world-output.yml, as Microsoft wrote it
HELLO_WORLD_OUTPUT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "hello world" > ./outputs/helloworld.txt
environment:
  image: library/python:latest
compute: azureml:cpu-cluster
"""


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.slow
def test_hello_world_output_runs_unchanged_after_init(tmp_path, isolated_workspace):
    project = tmp_path / "project"
    job_file = write(project / "jobs" / "hello-world-output.yml", HELLO_WORLD_OUTPUT)
    stopped = cli("job", "create", "-f", str(job_file), "--stream", cwd=project)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    message = stopped.stderr.strip().splitlines()[-1]
    assert "Unknown compute target 'cpu-cluster'" in message
    assert '"cpu-cluster": {"type": "local"}' in message and "--set compute=local" in message
    assert "mlflow-workspace init --from" in message

    assert cli("init", "--from", "jobs", cwd=project).returncode == 0
    result = cli("job", "create", "-f", str(job_file), "--stream", cwd=project)
    assert result.returncode == 0, result.stderr
    client = MlflowClient(f"azureml-local://{isolated_workspace}")
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    assert run.data.tags["azureml.compute"] == "cpu-cluster"
    assert read_artifact(client, run.info.run_id, "outputs/helloworld.txt") == "hello world\n"


def test_projects_run_finds_outputs_and_logs(local_tracking, tmp_path):
    project = write_project(tmp_path / "proj", """
        import os
        assert os.path.isdir("outputs") and os.path.isdir("logs"), os.listdir(".")
        open("logs/progress.txt", "w").write("step 1")
        open("outputs/model.txt", "w").write("weights")
    """)
    submitted = mlflow.projects.run(str(project), backend="azureml", backend_config={"USE_CONDA": False},
                                    env_manager="local")
    assert submitted.wait()
    client = MlflowClient()
    assert read_artifact(client, submitted.run_id, "outputs/model.txt") == "weights"
    assert read_artifact(client, submitted.run_id, "logs/progress.txt") == "step 1"


@pytest.mark.slow
def test_hello_world_output_on_ray(ray_workspace, tmp_path):
    from mlflow_workspace_plugin.jobs.loader import load_job
    from mlflow_workspace_plugin.jobs.submit import submit_job

    job_file = write(tmp_path / "hello-world-output.yml", HELLO_WORLD_OUTPUT)
    handle = submit_job(load_job(job_file, ["compute=azureml:fast-cluster"]))
    assert handle.wait(), handle.failure_message()
    assert read_artifact(MlflowClient(ray_workspace), handle.run_id, "outputs/helloworld.txt") == "hello world\n"


# azureml-examples cli/jobs/pipelines/... : a pipeline job (a different job type)
PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
display_name: hello_pipeline
settings:
  default_compute: azureml:cpu-cluster
jobs:
  hello_job:
    command: echo "hello"
    environment: azureml:AzureML-sklearn-1.5@latest
  world_job:
    command: echo "world"
    environment: azureml:AzureML-sklearn-1.5@latest
"""

# a command job using every accepted-but-ignored field of Azure's command job schema
WITH_IGNORED = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo ok
environment:
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
  os_type: linux
resources:
  instance_count: 1
  instance_type: Standard_DS3_v2
services:
  my_jupyter:
    type: jupyter_lab
identity:
  type: user_identity
queue_settings:
  job_tier: standard
"""

SWEEP = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: echo ${{search_space.x}}
  environment: azureml:AzureML-sklearn-1.5@latest
  services:
    my_ssh:
      type: ssh
sampling_algorithm: grid
search_space:
  x:
    type: choice
    values: [1, 2, 3, 4]
objective:
  goal: maximize
  primary_metric: accuracy
limits:
  max_total_trials: 4
  max_concurrent_trials: 2
compute: azureml:cpu-cluster
"""


def test_pipeline_job_says_it_is_a_different_job_type(tmp_path):
    from mlflow_workspace_plugin.jobs.errors import JobSpecError
    from mlflow_workspace_plugin.jobs.loader import load_job

    job_file = write(tmp_path / "pipeline.yml", PIPELINE)
    with pytest.raises(JobSpecError) as caught:
        load_job(job_file)
    assert "unknown key" not in caught.value.message
    assert "a pipeline job" in caught.value.message and "different job type" in caught.value.message
    assert "mlflow-workspace job create -f` runs it" in caught.value.message
    spark = write(tmp_path / "spark.yml", "type: spark\ncode: ./src\nentry: {file: main.py}\n")
    with pytest.raises(JobSpecError, match="'spark': spark jobs .* are a different job type, which is not supported"):
        load_job(spark)


def test_ignored_fields_are_named_in_one_warning(tmp_path, caplog):
    from mlflow_workspace_plugin.jobs.loader import load_job

    job_file = write(tmp_path / "job.yml", WITH_IGNORED)
    with caplog.at_level("WARNING", logger="mlflow.projects.azureml"):
        job = load_job(job_file)
    assert job.ignored_fields == ("services", "identity", "queue_settings", "environment.os_type")
    warnings = [record.getMessage() for record in caplog.records if "ignored here" in record.getMessage()]
    assert len(warnings) == 1, warnings
    for field in job.ignored_fields:
        assert field in warnings[0]


@pytest.mark.slow
def test_a_sweep_warns_once_not_once_per_trial(tmp_path, isolated_workspace):
    project = tmp_path / "project"
    sweep_file = write(project / "sweep.yml", SWEEP)
    assert cli("init", "--from", ".", cwd=project).returncode == 0
    result = cli("job", "create", "-f", str(sweep_file), "--stream", "--name", "sw", cwd=project)
    assert result.returncode == 0, result.stderr
    environment = [line.split("mlflow-workspace: ", 1)[1] for line in result.stderr.splitlines()
                   if "WARNING" in line and "environment curated sklearn-1.5" in line]
    ignored = [line for line in result.stderr.splitlines() if "ignored here" in line]
    assert len(environment) == len(set(environment)), result.stderr  # each once, not once per trial
    if sys.version_info[:2] != (3, 10):  # published for 3.10: said once; its ~= pins widened once to fit this Python
        assert len(environment) == 2 and "widened to the same major release" in environment[1], result.stderr
        assert "numpy~=1.22.0" in environment[1] and "cryptography" not in environment[1]
    assert len(ignored) == 1 and "trial.services" in ignored[0], result.stderr
    # job show names the sweep's compute as it names a command job's (not azureml:cpu-cluster)
    assert cli("job", "show", "-n", "sw", "--query", "compute", cwd=project).stdout.strip() == "cpu-cluster"
    assert cli("job", "show", "-n", "sw_0", "--query", "compute", cwd=project).stdout.strip() == "cpu-cluster"
    experiment = MlflowClient(f"azureml-local://{isolated_workspace}").get_experiment_by_name("project")
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"  # the sweep created it


def private_job_folders(tmp: Path) -> list[str]:
    return sorted(path.name for path in tmp.glob("mlflow-ws-job-*"))


@pytest.mark.slow
def test_streamed_job_names_itself_first_and_leaves_no_private_folder(tmp_path, isolated_workspace):
    """The "job X starting" line comes before the command's output; the private job folder is gone after a
    success and after a failure; job show names the compute without azureml:."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    for command, code in (("echo from-the-command", 0), ("echo from-the-command && exit 3", 3)):
        job_file = write(tmp_path / "job.yml", f"command: {command}\ncompute: azureml:local\n")
        result = subprocess.run([*CLI, "job", "create", "-f", str(job_file), "--stream", "--name", f"j{code}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, env=env)
        assert result.returncode == code, result.stdout
        assert result.stdout.index(f"job j{code} starting on compute 'local'") < result.stdout.index("from-the-command")
        assert private_job_folders(temp) == [], result.stdout
    shown = cli("job", "show", "-n", "j0", "--query", "compute")
    assert shown.stdout.strip() == "local"


@pytest.mark.slow
def test_ray_missing_user_package_is_named_and_no_folder_is_left(ray_workspace, tmp_path, monkeypatch):
    from mlflow_workspace_plugin.jobs.loader import load_job
    from mlflow_workspace_plugin.jobs.submit import submit_job

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    job_file = write(tmp_path / "job.yml", """\
        command: python -c "import lightgbm_absent_for_this_test" ${{inputs.data}}
        inputs:
          data: {type: uri_file, path: ./data.csv, mode: download}
        compute: azureml:fast-cluster
    """)
    handle = submit_job(load_job(job_file))
    assert private_job_folders(temp) == []  # the job's package (with its data) is on the cluster
    assert not handle.wait()
    message = handle.failure_message()
    assert "imports 'lightgbm_absent_for_this_test', which is not installed" in message
    assert "install the plugin on the cluster" not in message
