"""``mlflow-workspace init --from <folder>``: a starter config from a folder of Azure ML job files.

The job files are written in Azure ML's documented CLI v2 YAML (command, sweep and pipeline jobs naming
``azureml:cpu-cluster`` / ``gpu-cluster``); the folder also holds hostile entries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]

COMMAND_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "hello world" > ./outputs/helloworld.txt
environment: azureml:AzureML-sklearn-1.5@latest
compute: azureml:cpu-cluster
"""

PREVIEW_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python -c "print(1)"
compute:
  target: azureml:preview-cluster
  instance_count: 1
"""

SWEEP_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: python -c "print(${{search_space.lr}})"
  environment: azureml:AzureML-sklearn-1.5@latest
compute: azureml:gpu-cluster
sampling_algorithm: random
search_space:
  lr:
    type: uniform
    min_value: 0.01
    max_value: 0.9
objective:
  goal: minimize
  primary_metric: loss
limits:
  max_total_trials: 2
"""

PIPELINE_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
settings:
  default_compute: azureml:cpu-cluster
jobs:
  prep:
    type: command
    command: echo prep
  train:
    type: command
    command: echo train
    compute: azureml:gpu-big
  score:
    type: command
    command: echo score
    compute: ${{parent.inputs.where}}
"""


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def job_folder(tmp_path) -> Path:
    folder = tmp_path / "azure-jobs"
    (folder / "single-step" / "hello").mkdir(parents=True)
    (folder / "single-step" / "hello" / "hello-world-output.yml").write_text(COMMAND_JOB)
    (folder / "preview.yaml").write_text(PREVIEW_JOB)
    (folder / "sweep.yml").write_text(SWEEP_JOB)
    (folder / "pipelines").mkdir()
    (folder / "pipelines" / "pipeline.yml").write_text(PIPELINE_JOB)
    (folder / "conda.yml").write_text("name: env\ndependencies:\n  - python=3.11\n")  # not a job: no compute
    return folder


@pytest.fixture
def hostile(job_folder, tmp_path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yml").write_text("compute: azureml:from-outside\n")
    os.symlink(outside / "secret.yml", job_folder / "link-out.yml")
    os.symlink(outside, job_folder / "dir-out")
    (job_folder / "broken.yml").write_text("compute: [unclosed\n")
    (job_folder / "huge.yml").write_text("compute: azureml:huge-cluster\n" + "# padding\n" * 200_000)
    (job_folder / "quote.yml").write_text("command: echo\ncompute: \"azureml:it's\"\n")
    (job_folder / "subst.yml").write_text("command: echo\ncompute: azureml:$(touch pwned)\n")
    (job_folder / "list.yml").write_text("- not\n- a job\n")
    return job_folder


def test_init_maps_every_compute_name_to_this_machine(job_folder, tmp_path, isolated_workspace):
    config = tmp_path / "project" / "config.json"
    result = cli("init", "--from", str(job_folder), "--config", str(config))
    assert result.returncode == 0, result.stderr
    data = json.loads(config.read_text())
    assert data == {
        "workspace_name": "local",
        "local_path": str(isolated_workspace),  # the workspace in use, so earlier runs stay visible
        "compute": {name: {"type": "local"} for name in ("cpu-cluster", "gpu-big", "gpu-cluster", "preview-cluster")},
    }
    assert f"wrote {config}" in result.stdout
    assert "cpu-cluster -> this machine (used by pipelines/pipeline.yml, single-step/hello/hello-world-output.yml)" \
        in result.stdout
    # the scan warns about the pipeline step bound to a parent input, naming the file
    assert "pipelines/pipeline.yml: jobs.score.compute" in result.stderr
    info = cli("info", "--config", str(config))
    assert info.returncode == 0 and "cpu-cluster (local)" in info.stdout


def test_init_refuses_to_overwrite_without_force(job_folder, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"workspace_name": "mine", "local_path": "."}')
    refused = cli("init", "--from", str(job_folder), "--config", str(config))
    assert refused.returncode == 1 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert json.loads(config.read_text())["workspace_name"] == "mine"
    forced = cli("init", "--from", str(job_folder), "--config", str(config), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "cpu-cluster" in json.loads(config.read_text())["compute"]


def test_init_force_replaces_a_symlink_not_its_target(job_folder, tmp_path):
    victim = tmp_path / "victim.json"
    victim.write_text("keep me")
    config = tmp_path / "config.json"
    os.symlink(victim, config)
    assert cli("init", "--from", str(job_folder), "--config", str(config)).returncode == 1
    assert cli("init", "--from", str(job_folder), "--config", str(config), "--force").returncode == 0
    assert victim.read_text() == "keep me" and not config.is_symlink()


def test_init_hostile_folder(hostile, tmp_path):
    config = tmp_path / "config.json"
    # a path with .. in it is just a path
    result = cli("init", "--from", str(hostile / "pipelines" / ".."), "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    compute = json.loads(config.read_text())["compute"]
    assert "from-outside" not in compute  # symlinks out of the folder are not followed
    assert "huge-cluster" not in compute  # too big to be a job file
    assert set(compute) == {"cpu-cluster", "gpu-big", "gpu-cluster", "preview-cluster"}
    err = result.stderr
    for named in ("link-out.yml: a symlink pointing outside", "dir-out: a symlink pointing outside",
                  "broken.yml: not valid YAML at line 2", "huge.yml:", "quote.yml: compute", "subst.yml: compute",
                  "list.yml: not a job file"):
        assert named in err, (named, err)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert "Traceback" not in err


@pytest.mark.parametrize("problem", ["missing", "file", "no-compute"])
def test_init_bad_folder_is_one_line(tmp_path, problem):
    target = tmp_path / "jobs"
    if problem == "file":
        target.write_text("compute: azureml:x\n")
    elif problem == "no-compute":
        target.mkdir()
        (target / "job.yml").write_text("command: echo hi\ncompute: local\n")
    result = cli("init", "--from", str(target), "--config", str(tmp_path / "config.json"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "config.json").exists()
