"""``mlflow-workspace job ...`` end to end: real CLI processes (``python -m mlflow_workspace_plugin.cli``) on one
local workspace shared by the module; assertions on exit codes, printed text and the tracking store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import as_from_a_terminal
from mlflow import MlflowClient

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.compute.local_control import PROCESSES_TAG, SUPERVISOR_TAG, alive
from mlflow_workspace_plugin.jobs.job_names import JOB_NAME_TAG
from mlflow_workspace_plugin.jobs.registry import find_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobs-cli-workspace")


@pytest.fixture
def env(isolated_workspace, home, monkeypatch) -> dict[str, str]:
    """The CLI's environment: the shared workspace, live log uploads every second, no display."""
    monkeypatch.setenv("MLFLOW_WORKSPACE_HOME", str(home))
    variables = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    variables["MLFLOW_WORKSPACE_LOG_SYNC_SECONDS"] = "1"
    return variables


def cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def store(home: Path) -> MlflowClient:
    return MlflowClient(local_workspace.local_tracking_uri(home))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def wait_until(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return predicate()


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("Error: ")]


@pytest.fixture
def echo_job(tmp_path) -> Path:
    write(tmp_path / "src" / "README.txt", "the job's code folder\n")
    return write(tmp_path / "job.yml", """
        code: src
        command: >-
          echo "message ${{inputs.msg}}" && echo ${{inputs.msg}} > ${{outputs.out}}/msg.txt && exit ${{inputs.code}}
        inputs: {msg: default, code: 0}
        outputs: {out: {}}
        experiment_name: cli-jobs
    """)


@pytest.fixture
def slow_job(tmp_path) -> Path:
    return write(tmp_path / "slow.yml", """
        command: echo started && sleep 120
        experiment_name: cli-slow
    """)


def test_create_stream_with_overrides_then_show_download_and_list(echo_job, env, home, tmp_path):
    ok_name = f"cli_ok_{tmp_path.name[-8:]}"
    ok = cli("job", "create", "-f", str(echo_job), "--set", "inputs.msg=overridden", "--name", ok_name,
             "--stream", "--web", env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "message overridden" in ok.stdout                    # the live log
    assert f"job {ok_name} Completed" in ok.stderr
    assert "http://127.0.0.1:5000/#/experiments/" in ok.stderr  # --web: where to look (no browser here)

    failed = cli("job", "create", "-f", str(echo_job), "--set", "inputs.code=3", "--stream", env=env, cwd=tmp_path)
    assert failed.returncode == 3, failed.stderr                 # the job's exit code
    failed_name = failed.stderr.split("mlflow-workspace: job ", 1)[1].split()[0]
    assert f"job {failed_name} Failed" in failed.stderr

    status = cli("job", "show", "-n", failed_name, "--query", "status", env=env, cwd=tmp_path)
    assert (status.returncode, status.stdout) == (0, "Failed\n")
    shown = json.loads(cli("job", "show", "-n", ok_name, env=env, cwd=tmp_path).stdout)
    assert shown["status"] == "Completed" and shown["mlflow_status"] == "FINISHED"
    assert shown["inputs"] == {"msg": "overridden", "code": "0"} and shown["outputs"] == {"out": "outputs/out"}
    assert shown["experiment_name"] == "cli-jobs" and shown["compute"] == "local"

    target = tmp_path / "downloads"
    download = cli("job", "download", "-n", ok_name, "--download-path", str(target), env=env, cwd=tmp_path)
    assert download.returncode == 0, download.stderr
    assert (target / ok_name / "outputs" / "out" / "msg.txt").read_text() == "overridden\n"
    assert "message overridden" in (target / ok_name / "user_logs" / "std_log.txt").read_text()
    assert not (target / ok_name / "snapshot").exists()          # --outputs (default): outputs and logs only
    only = cli("job", "download", "-n", ok_name, "--output-name", "out", "--download-path", str(tmp_path / "only"),
               env=env, cwd=tmp_path)
    assert only.returncode == 0, only.stderr
    assert (tmp_path / "only" / ok_name / "outputs" / "out" / "msg.txt").read_text() == "overridden\n"
    assert not (tmp_path / "only" / ok_name / "user_logs").exists()

    listed = cli("job", "list", "--experiment", "cli-jobs", env=env, cwd=tmp_path)
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
    assert rows[ok_name] == "Completed" and rows[failed_name] == "Failed"


def test_create_returns_at_once_then_stream_and_cancel_from_other_processes(slow_job, env, home, tmp_path):
    name = f"cli_slow_{tmp_path.name[-8:]}"
    created = cli("job", "create", "-f", str(slow_job), "--name", name, env=env, cwd=tmp_path)
    assert (created.returncode, created.stdout) == (0, f"{name}\n"), created.stderr
    client = store(home)
    run = find_job(client, name)
    assert run is not None and run.info.status == "RUNNING"     # the job outlives `job create`

    follower = subprocess.Popen([*CLI, "job", "stream", "-n", name], env=env, cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: "started" in _log_text(client, run.info.run_id), 90)
        status = cli("job", "show", "-n", name, "--query", "status", env=env, cwd=tmp_path)
        assert status.stdout == "Running\n"
        cancelled = cli("job", "cancel", "-n", name, env=env, cwd=tmp_path)
        assert (cancelled.returncode, cancelled.stdout) == (0, "Canceled\n"), cancelled.stderr
        out, err = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 1 and "started" in out and f"job {name} Canceled" in err
    run = client.get_run(run.info.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["azureml.cancel_reason"] == "canceled with `mlflow-workspace job cancel`"
    assert wait_until(lambda: not alive(run.data.tags[SUPERVISOR_TAG]), 30)   # the supervisor is gone too
    assert not any(alive(identity) for identity in run.data.tags[PROCESSES_TAG].split(","))
    again = cli("job", "cancel", "-n", name, env=env, cwd=tmp_path)
    assert again.returncode == 0 and "already ended: Canceled" in again.stderr


def test_ctrl_c_on_create_stream_cancels_the_job_and_exits_130(slow_job, env, home, tmp_path):
    name = f"cli_int_{tmp_path.name[-8:]}"
    process = subprocess.Popen([*CLI, "job", "create", "-f", str(slow_job), "--name", name, "--stream"],
                               env={**env, "PYTHONFAULTHANDLER": "1"}, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=as_from_a_terminal)
    client = store(home)
    try:
        if not wait_until(lambda: (run := find_job(client, name)) is not None
                          and SUPERVISOR_TAG in run.data.tags, 120):
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"job {name} has no supervisor after 120 s (CLI exit code {process.poll()}); "
                        f"its stderr:\n{process.communicate(timeout=30)[1][-3000:]}")
        os.kill(process.pid, signal.SIGINT)
        try:
            _, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # where it hangs: every thread's stack (faulthandler, on SIGABRT)
            os.kill(process.pid, signal.SIGABRT)
            pytest.fail(f"the CLI did not exit within 120 s of Ctrl-C:\n{process.communicate(timeout=30)[1][-6000:]}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    run = find_job(client, name)
    assert run.info.status == "KILLED"
    assert f"job {name} Canceled" in err


def test_mistakes_are_one_error_line_and_start_nothing(echo_job, env, home, tmp_path):
    client = store(home)
    experiment = client.create_experiment(f"taken-{tmp_path.name}")
    taken = client.create_run(experiment).info.run_id
    client.set_tag(taken, JOB_NAME_TAG, f"taken_{tmp_path.name[-8:]}")
    before = {run.info.run_id for run in client.search_runs([e.experiment_id for e in client.search_experiments()])}

    cases = [
        (["job", "create", "-f", str(tmp_path / "missing.yml")], "missing.yml: no such file"),
        (["job", "create", "-f", str(echo_job), "--set", "compute=nowhere"], "Unknown compute target 'nowhere'"),
        (["job", "create", "-f", str(echo_job), "--set", "inputs.msg.mdoe=download"], "inputs.msg"),
        (["job", "create", "-f", str(echo_job), "--name", f"taken_{tmp_path.name[-8:]}"],
         f"a job named 'taken_{tmp_path.name[-8:]}' already exists"),
        (["job", "show", "-n", "no_such_job"], "No job named 'no_such_job'"),
    ]
    # reported by the supervisor of a local job, through its pipe
    cases.append((["job", "create", "-f", str(echo_job), "--env-manager", "conda"],
                  "environment.conda_file: is needed to build a conda environment"))
    with ThreadPoolExecutor(max_workers=3) as pool:  # independent CLI processes: run them side by side
        results = list(pool.map(lambda case: cli(*case[0], env=env, cwd=tmp_path), cases))
    for (args, expected), result in zip(cases, results, strict=True):
        errors = error_lines(result)
        assert result.returncode == 1 and len(errors) == 1 and expected in errors[0], (args, result.stderr)
    after = {run.info.run_id for run in client.search_runs([e.experiment_id for e in client.search_experiments()])}
    assert after == before


def _log_text(client: MlflowClient, run_id: str) -> str:
    try:
        return Path(client.download_artifacts(run_id, "user_logs/std_log.txt")).read_text()
    except Exception:
        return ""
