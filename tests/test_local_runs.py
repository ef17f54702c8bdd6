"""End-to-end: real projects through ``mlflow.projects.run(backend="azureml")``, asserting on the store."""

from __future__ import annotations

import os
import time
from pathlib import Path

import mlflow
import pytest
from helpers import artifact_paths, read_artifact, write_json, write_project
from mlflow import MlflowClient
from mlflow.exceptions import ExecutionException, MlflowException

SUCCESS_SCRIPT = """
    import sys, mlflow
    from pathlib import Path
    print("hello from stdout")
    print("warning on stderr", file=sys.stderr)
    with mlflow.start_run():
        mlflow.log_param("lr", sys.argv[1] if len(sys.argv) > 1 else "none")
        mlflow.log_metric("loss", 0.5)
    Path("outputs/sub").mkdir(parents=True, exist_ok=True)
    Path("outputs/sub/model.txt").write_text("weights")
    Path("logs").mkdir(exist_ok=True)
    Path("logs/train.log").write_text("epoch 1")
"""

FAILING_SCRIPT = """
    import sys
    print("about to fail")
    print("Traceback: ValueError: boom-line", file=sys.stderr)
    sys.exit(3)
"""

LONG_SCRIPT = """
    import os, subprocess, sys, time
    from pathlib import Path
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path("pids.txt").write_text(f"{os.getpid()} {child.pid}")
    print("started", flush=True)
    time.sleep(120)
"""


def run_project(path, **kwargs):
    kwargs.setdefault("backend_config", {"USE_CONDA": False})
    kwargs.setdefault("env_manager", "local")
    return mlflow.projects.run(str(path), backend="azureml", **kwargs)


def only_run(client: MlflowClient):
    runs = client.search_runs(["0"])
    assert len(runs) == 1, runs
    return runs[0]


def assert_no_runs(client: MlflowClient) -> None:
    experiments = client.search_experiments()
    assert not client.search_runs([e.experiment_id for e in experiments])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.compat
def test_success_captures_everything(local_tracking, tmp_path, capfd):
    project = write_project(
        tmp_path / "proj", SUCCESS_SCRIPT, parameters="lr: {type: float, default: 0.1}",
        command="python script.py {lr}",
        extra_files={".amlignore": "data/\n*.secret\n", ".gitignore": "notes.txt\n",
                     "data/big.csv": "1,2,3\n", "key.secret": "s3cr3t", "notes.txt": "kept: .amlignore wins",
                     "outputs/stale.txt": "from an earlier run"},
    )
    old = time.time() - 3600
    os.utime(project / "outputs" / "stale.txt", (old, old))

    submitted = run_project(project, parameters={"lr": 0.3})
    client = MlflowClient()
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.3"
    assert run.data.metrics["loss"] == 0.5
    assert run.data.tags["mlflow.project.backend"] == "azureml"
    assert run.data.tags["azureml.compute"] == "local"
    assert run.data.tags["mlflow.project.env"] == "local"

    paths = set(artifact_paths(client, run.info.run_id))
    assert {"outputs/sub/model.txt", "logs/train.log", "user_logs/std_log.txt",
            "snapshot/script.py", "snapshot/MLproject", "snapshot/notes.txt"} <= paths
    assert not {p for p in paths if p.startswith("snapshot/data") or p.endswith(".secret")}
    assert "outputs/stale.txt" not in paths
    log = read_artifact(client, run.info.run_id, "user_logs/std_log.txt")
    assert "hello from stdout" in log and "warning on stderr" in log
    console = capfd.readouterr()
    assert "hello from stdout" in console.out and "warning on stderr" in console.out


def test_log_keeps_the_order_stdout_and_stderr_were_written_in(local_tracking, tmp_path):
    script = """
    import sys
    for i in range(200):
        stream = sys.stdout if i % 2 == 0 else sys.stderr
        print(f"line-{i}", file=stream, flush=True)
    """
    submitted = run_project(write_project(tmp_path / "proj", script))
    log = read_artifact(MlflowClient(), submitted.run_id, "user_logs/std_log.txt")
    assert [line for line in log.splitlines() if line.startswith("line-")] == [f"line-{i}" for i in range(200)]


def test_failure_raises_with_stderr_tail_and_marks_failed(local_tracking, tmp_path):
    project = write_project(tmp_path / "proj", FAILING_SCRIPT)
    with pytest.raises(ExecutionException) as err:
        run_project(project)
    assert "exit code 3" in str(err.value) and "boom-line" in str(err.value)
    client = MlflowClient()
    run = only_run(client)
    assert run.info.status == "FAILED"
    assert "about to fail" in read_artifact(client, run.info.run_id, "user_logs/std_log.txt")


def test_async_run_wait_and_status(local_tracking, tmp_path):
    project = write_project(tmp_path / "proj", "import time; time.sleep(2); print('done')")
    submitted = run_project(project, synchronous=False)
    assert submitted.get_status() == "RUNNING"
    assert MlflowClient().get_run(submitted.run_id).info.status == "RUNNING"
    assert submitted.wait() is True
    assert submitted.get_status() == "FINISHED"
    assert MlflowClient().get_run(submitted.run_id).info.status == "FINISHED"


def test_async_failure_wait_returns_false(local_tracking, tmp_path):
    submitted = run_project(write_project(tmp_path / "proj", FAILING_SCRIPT), synchronous=False)
    assert submitted.wait() is False
    assert submitted.get_status() == "FAILED"
    assert MlflowClient().get_run(submitted.run_id).info.status == "FAILED"


def test_cancel_kills_process_tree_and_marks_killed(local_tracking, tmp_path):
    project = write_project(tmp_path / "proj", LONG_SCRIPT)
    submitted = run_project(project, synchronous=False)
    deadline = time.time() + 60
    while not (project / "pids.txt").exists() and time.time() < deadline:
        time.sleep(0.2)
    pids = [int(p) for p in (project / "pids.txt").read_text().split()]
    submitted.cancel()
    assert submitted.get_status() == "KILLED"
    assert MlflowClient().get_run(submitted.run_id).info.status == "KILLED"
    deadline = time.time() + 15
    while any(pid_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(pid_alive(p) for p in pids)
    assert "started" in read_artifact(MlflowClient(), submitted.run_id, "user_logs/std_log.txt")


def test_shell_metacharacters_reach_entry_point_literally(local_tracking, tmp_path):
    script = """
        import sys
        from pathlib import Path
        Path("outputs").mkdir(exist_ok=True)
        Path("outputs/arg.txt").write_text(sys.argv[1])
    """
    project = write_project(tmp_path / "proj", script, parameters="msg: {type: string}",
                            command="python script.py {msg}")
    nasty = "a b; touch hacked.txt && echo $(whoami) `id` 'q' \"dq\" | cat > x"
    submitted = run_project(project, parameters={"msg": nasty})
    assert read_artifact(MlflowClient(), submitted.run_id, "outputs/arg.txt") == nasty
    assert not (project / "hacked.txt").exists() and not (project / "x").exists()


def test_backend_config_as_json_file(local_tracking, tmp_path):
    project = write_project(tmp_path / "proj", "print('ok')")
    config = write_json(tmp_path / "backend_config.json", {"USE_CONDA": "False"})
    submitted = run_project(project, backend_config=str(config))
    assert MlflowClient().get_run(submitted.run_id).info.status == "FINISHED"


def test_experiment_name_is_used(local_tracking, tmp_path):
    project = write_project(tmp_path / "proj", "print('ok')")
    submitted = run_project(project, experiment_name="my-experiment")
    experiment = MlflowClient().get_experiment_by_name("my-experiment")
    assert MlflowClient().get_run(submitted.run_id).info.experiment_id == experiment.experiment_id


def test_compute_local_runs_locally(local_tracking, tmp_path):
    submitted = run_project(write_project(tmp_path / "proj", "print('ok')"),
                            backend_config={"COMPUTE": "local", "USE_CONDA": "true"})
    run = MlflowClient().get_run(submitted.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["azureml.compute"] == "local"


@pytest.mark.parametrize(
    ("backend_config", "expected"),
    [
        ({"USE_CONDAA": False}, "key 'USE_CONDAA' is not recognised; allowed keys: COMPUTE"),
        ({"USE_CONDA": "nope"}, "USE_CONDA='nope' is not allowed: use true or false"),
        ({"COMPUTE": ["a"]}, "COMPUTE=['a'] is not allowed"),
        ({"COMPUTE": "gpu-cluster"}, "Unknown compute target 'gpu-cluster'"),
    ],
)
def test_bad_backend_config_fails_before_anything_starts(local_tracking, tmp_path, backend_config, expected):
    project = write_project(tmp_path / "proj", "open('ran.txt', 'w').write('x')")
    with pytest.raises(MlflowException) as err:
        run_project(project, backend_config=backend_config)
    assert expected in str(err.value)
    assert not (project / "ran.txt").exists()
    assert_no_runs(MlflowClient())


def test_missing_and_invalid_json_file(local_tracking, tmp_path):
    project = write_project(tmp_path / "proj", "print('x')")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        run_project(project, backend_config=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{USE_CONDA: false", encoding="utf-8")
    with pytest.raises(ValueError, match="property name"):
        run_project(project, backend_config=str(bad))
    assert_no_runs(MlflowClient())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"entry_point": "train"}, "Could not find train among entry points ['main']"),
        ({"parameters": {"alpha": "abc", "epochs": 3}}, "Parameter 'alpha' of entry point 'main' must be of type float, got 'abc'"),
        ({"parameters": {"alpha": "nan", "epochs": 3}}, "must be a finite float"),
        ({"parameters": {"epochs": "1.5"}}, "Parameter 'epochs' of entry point 'main' must be of type int"),
        ({"parameters": {}}, "No value given for missing parameters: 'epochs'"),
    ],
)
def test_bad_project_input(local_tracking, tmp_path, kwargs, expected):
    project = write_project(tmp_path / "proj", "open('ran.txt', 'w').write('x')",
                            parameters="alpha: {type: float, default: 0.5}, epochs: int",
                            command="python script.py {alpha} {epochs}")
    kwargs.setdefault("parameters", {"epochs": 3})
    with pytest.raises(MlflowException) as err:
        run_project(project, **kwargs)
    assert expected in str(err.value)
    assert not (project / "ran.txt").exists()
    assert_no_runs(MlflowClient())


def test_missing_mlproject(local_tracking, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ExecutionException, match="No MLproject file in"):
        run_project(folder)
    assert_no_runs(MlflowClient())


def test_use_conda_without_conda_fails_early(local_tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_CONDA_HOME", str(tmp_path / "no-conda-here"))
    project = write_project(tmp_path / "proj", "print('x')",
                            extra_files={"conda.yaml": "name: x\ndependencies: [python=3.11]\n"})
    with pytest.raises(ExecutionException) as err:
        run_project(project, backend_config={"USE_CONDA": True}, env_manager=None)
    assert "no conda executable was found" in str(err.value) and '"USE_CONDA": false' in str(err.value)
    assert_no_runs(MlflowClient())


def test_docker_env_without_engine_fails_early(local_tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    mlproject = "name: dockerized\ndocker_env:\n  image: python:3.11\nentry_points:\n  main:\n    command: python script.py\n"
    project = write_project(tmp_path / "proj", "print('x')", mlproject=mlproject)
    with pytest.raises(ExecutionException) as err:
        run_project(project)
    assert "declares docker_env (image 'python:3.11') but no Docker engine is reachable" in str(err.value)
    assert_no_runs(MlflowClient())


def test_snapshot_size_limit(local_tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_WORKSPACE_SNAPSHOT_MAX_MB", "0.001")
    project = write_project(tmp_path / "proj", "print('x')", extra_files={"blob.bin": "x" * 4096})
    with pytest.raises(ExecutionException) as err:
        run_project(project)
    assert "exceeds the limit" in str(err.value) and ".amlignore" in str(err.value)
    assert_no_runs(MlflowClient())


def test_environment_preparation_failure_ends_run_failed(local_tracking, tmp_path):
    mlproject = "name: x\npython_env: python_env.yaml\nentry_points:\n  main:\n    command: python script.py\n"
    project = write_project(tmp_path / "proj", "open('ran.txt', 'w').write('x')", mlproject=mlproject,
                            extra_files={"python_env.yaml": 'python: "3.9.99"\nbuild_dependencies: [pip]\ndependencies: [mlflow]\n'})
    with pytest.raises(Exception):  # noqa: B017 - whatever MLflow's virtualenv builder raises (pyenv/uv)
        run_project(project, env_manager="virtualenv", backend_config={})
    run = only_run(MlflowClient())
    assert run.info.status == "FAILED" and run.data.tags["mlflow.project.env"] == "virtualenv"
    assert not (project / "ran.txt").exists()


PROGRESS_SCRIPT = """
    import time
    from pathlib import Path
    Path("logs").mkdir(exist_ok=True)
    print("tick 1", flush=True)
    Path("logs/progress.txt").write_text("epoch 1 of 3")
    deadline = time.time() + 90
    while not Path("release").exists() and time.time() < deadline:
        time.sleep(0.1)
    print("done", flush=True)
"""


def test_logs_are_uploaded_live_while_running(local_tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_WORKSPACE_LOG_SYNC_SECONDS", "0.3")
    project = write_project(tmp_path / "proj", PROGRESS_SCRIPT)
    submitted = run_project(project, synchronous=False)
    client = MlflowClient()
    try:
        deadline = time.time() + 60
        seen: list[str] = []
        while time.time() < deadline:
            seen = artifact_paths(client, submitted.run_id)
            if {"user_logs/std_log.txt", "logs/progress.txt"} <= set(seen) and "tick 1" in read_artifact(
                    client, submitted.run_id, "user_logs/std_log.txt"):
                break
            time.sleep(0.2)
        assert {"user_logs/std_log.txt", "logs/progress.txt"} <= set(seen)
        assert submitted.get_status() == "RUNNING"
        assert client.get_run(submitted.run_id).info.status == "RUNNING"
    finally:
        (project / "release").write_text("go")
    assert submitted.wait()
    assert "done" in read_artifact(client, submitted.run_id, "user_logs/std_log.txt")


def test_bad_log_sync_setting_fails_before_run(local_tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_WORKSPACE_LOG_SYNC_SECONDS", "soon")
    with pytest.raises(MlflowException, match="MLFLOW_WORKSPACE_LOG_SYNC_SECONDS='soon' is not allowed: use a number >= 0"):
        run_project(write_project(tmp_path / "proj", "print('x')"))
    assert_no_runs(MlflowClient())


def test_bad_input_without_tracking_uri_changes_nothing(isolated_workspace, tmp_path):
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    project = write_project(tmp_path / "proj", "print('x')", parameters="alpha: float",
                            command="python script.py {alpha}")
    with pytest.raises(MlflowException, match="must be of type float"):
        mlflow.projects.run(str(project), backend="azureml", parameters={"alpha": "high"},
                            backend_config={"USE_CONDA": False})
    assert not is_tracking_uri_set()
    assert not (isolated_workspace / "mlflow.db").exists()


pytestmark = pytest.mark.slow  # its tests start processes (runs, CLI subprocesses, servers)
