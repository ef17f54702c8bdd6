"""End-to-end on a real local Ray head: ``backend_config={"COMPUTE": ...}`` runs the project as a
Ray job; assertions are on the tracking store and on Ray's own job records."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import ExecutionException, MlflowException

pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -e '.[ray]'): "
                                                 "Ray compute tests need a real Ray head")

from helpers import artifact_paths, as_from_a_terminal, read_artifact, write_project  # noqa: E402
from ray_cluster import compute_targets, job_client, wait_for_log, write_workspace  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

FAILING_SCRIPT = """
    import sys
    print("about to fail")
    print("Traceback: ValueError: boom-line", file=sys.stderr)
    sys.exit(3)
"""

OUTPUTS_SCRIPT = """
    import sys, time, mlflow
    from pathlib import Path
    time.sleep(2)
    mlflow.log_metric("loss", 0.5)
    Path("outputs/sub").mkdir(parents=True, exist_ok=True)
    Path("outputs/sub/model.txt").write_text("weights")
    Path("outputs/arg.txt").write_text(sys.argv[1])
    Path("logs").mkdir(exist_ok=True)
    Path("logs/train.log").write_text("epoch 1")
"""

LONG_SCRIPT = """
    import os, time
    print(f"started pid={os.getpid()}", flush=True)
    time.sleep(300)
"""


def remote(path, compute: str, **kwargs):
    return mlflow.projects.run(str(path), backend="azureml",
                               backend_config={"COMPUTE": compute, "USE_CONDA": False}, **kwargs)


def all_runs(client: MlflowClient):
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_async_run_with_address_from_env_captures_outputs(ray_workspace, ray_head, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_RAY_ADDRESS", ray_head.address)
    project = write_project(tmp_path / "proj", OUTPUTS_SCRIPT, parameters="msg: {type: string}",
                            command="python script.py {msg}",
                            extra_files={".amlignore": "data/\n", "data/big.csv": "1,2\n",
                                         ".gitignore": "notes.txt\n", "notes.txt": "kept: .amlignore wins"})
    nasty = "a b; touch hacked.txt && echo $(whoami) `id` 'q' \"dq\""
    submitted = remote(project, "env-cluster", parameters={"msg": nasty}, synchronous=False)
    assert submitted.get_status() == "RUNNING"
    assert MlflowClient().get_run(submitted.run_id).info.status == "RUNNING"
    assert submitted.wait() is True
    assert submitted.get_status() == "FINISHED"

    client = MlflowClient()
    run = client.get_run(submitted.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["loss"] == 0.5
    assert run.data.tags["azureml.compute"] == "env-cluster" and run.data.tags["mlflow.project.env"] == "inherit"
    paths = set(artifact_paths(client, run.info.run_id))
    assert {"outputs/sub/model.txt", "outputs/arg.txt", "logs/train.log", "user_logs/std_log.txt",
            "snapshot/script.py", "snapshot/notes.txt"} <= paths
    assert not [p for p in paths if p.startswith("snapshot/data")]
    assert read_artifact(client, run.info.run_id, "outputs/arg.txt") == nasty
    downloaded = Path(submitted.download_outputs(tmp_path / "fetched"))
    assert (downloaded / "sub" / "model.txt").read_text() == "weights"
    assert job_client(ray_head).get_job_info(f"mlflow-{run.info.run_id}").runtime_env.get("pip") is None


def test_failure_raises_with_log_tail_and_marks_failed(ray_workspace, ray_head, tmp_path):
    with pytest.raises(ExecutionException) as err:
        remote(write_project(tmp_path / "proj", FAILING_SCRIPT), "fast-cluster")
    message = str(err.value)
    assert "exit code 3" in message and "boom-line" in message and "fast-cluster" in message
    client = MlflowClient()
    (run,) = all_runs(client)
    assert run.info.status == "FAILED"
    assert "about to fail" in read_artifact(client, run.info.run_id, "user_logs/std_log.txt")
    assert job_client(ray_head).get_job_status(f"mlflow-{run.info.run_id}") == "FAILED"


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs a system python without the plugin")
def test_job_python_without_plugin_fails_run_with_hint(ray_workspace, tmp_path):
    submitted = remote(write_project(tmp_path / "proj", "print('never')"), "no-plugin", synchronous=False)
    assert submitted.wait() is False
    assert submitted.get_status() == "FAILED"
    assert MlflowClient().get_run(submitted.run_id).info.status == "FAILED"  # set by the caller side
    assert "cannot import mlflow_workspace_plugin" in submitted.failure_message()


def test_cancel_stops_ray_job_and_marks_killed(ray_workspace, ray_head, tmp_path):
    submitted = remote(write_project(tmp_path / "proj", LONG_SCRIPT), "fast-cluster", synchronous=False)
    job_id = f"mlflow-{submitted.run_id}"
    logs = wait_for_log(ray_head, job_id, "started pid=")
    pid = int(logs.split("started pid=")[1].split()[0])
    started = time.monotonic()
    submitted.cancel()
    assert time.monotonic() - started < 35
    assert submitted.get_status() == "KILLED"
    assert submitted.wait() is False
    assert MlflowClient().get_run(submitted.run_id).info.status == "KILLED"
    assert job_client(ray_head).get_job_status(job_id) == "STOPPED"
    deadline = time.monotonic() + 15
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(pid)
    assert "started pid=" in read_artifact(MlflowClient(), submitted.run_id, "user_logs/std_log.txt")


PROGRESS_SCRIPT = """
    import sys, time
    from pathlib import Path
    Path("logs").mkdir(exist_ok=True)
    print("tick 1", flush=True)
    Path("logs/progress.txt").write_text("epoch 1 of 3")
    deadline = time.time() + 90
    while not Path(sys.argv[1]).exists() and time.time() < deadline:  # the test releases it
        time.sleep(0.2)
    print("done", flush=True)
"""


def test_job_uploads_logs_live_while_running(ray_workspace, ray_head, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_WORKSPACE_LOG_SYNC_SECONDS", "0.5")
    release = tmp_path / "release"
    project = write_project(tmp_path / "proj", PROGRESS_SCRIPT, command=f"python script.py {release}")
    submitted = remote(project, "fast-cluster", synchronous=False)
    client = MlflowClient()
    deadline = time.time() + 80
    seen: set[str] = set()
    try:
        while time.time() < deadline and not {"user_logs/std_log.txt", "logs/progress.txt"} <= seen:
            seen = set(artifact_paths(client, submitted.run_id))
            time.sleep(0.3)
        assert {"user_logs/std_log.txt", "logs/progress.txt"} <= seen
        assert client.get_run(submitted.run_id).info.status == "RUNNING"
        assert "tick 1" in read_artifact(client, submitted.run_id, "user_logs/std_log.txt")
    finally:
        release.touch()
    assert submitted.wait()
    assert "done" in read_artifact(client, submitted.run_id, "user_logs/std_log.txt")


def test_runtime_env_failure_is_a_clear_error_and_failed_run(ray_workspace, tmp_path):
    with pytest.raises(ExecutionException) as err:
        remote(write_project(tmp_path / "proj", "print('never')"), "broken-env")
    assert "runtime environment could not be built" in str(err.value)
    assert "mlflow-ws-missing-pkg" in str(err.value)
    (run,) = all_runs(MlflowClient())
    assert run.info.status == "FAILED"


def test_unreachable_cluster_fails_fast_naming_address_before_any_run(ray_workspace, tmp_path):
    from mlflow_workspace_plugin import Workspace

    address = Workspace.from_config().get_compute_target("dead-cluster").settings["address"]
    started = time.monotonic()
    with pytest.raises(MlflowException) as err:
        remote(write_project(tmp_path / "proj", "print('x')"), "dead-cluster")
    assert time.monotonic() - started < 15
    assert address in str(err.value) and "not reachable" in str(err.value)
    assert not all_runs(MlflowClient())


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"type": "ray", "adress": "http://127.0.0.1:1"}, "'compute.bad.adress' is not recognised"),
        ({"type": "ray", "address": "ray://127.0.0.1:10001"}, "'compute.bad.address' = 'ray://127.0.0.1:10001' is not allowed"),
        ({"type": "ray", "address": "http://127.0.0.1:1", "environment": "conda"},
         "'compute.bad.environment' = 'conda' is not allowed: use 'pip' or 'inherit'"),
        ({"type": "ray", "address": "http://127.0.0.1:1", "environment": "inherit", "extra_pip": ["x"]},
         "'compute.bad.extra_pip' needs \"environment\": \"pip\""),
        ({"type": "ray", "address": "http://127.0.0.1:1", "address_env": "X"}, "cannot be combined"),
        ({"type": "ray", "address_env": "MLFLOW_WS_TEST_UNSET_ADDRESS"}, "$MLFLOW_WS_TEST_UNSET_ADDRESS is not set"),
        ({"type": "slurm"}, "supported compute types: ray"),
        ({"type": "ray", "address": "http://127.0.0.1:1", "instance_types": ["Standard_NC6"]},
         "'compute.bad.instance_types' = ['Standard_NC6'] must be an object"),
        ({"type": "ray", "address": "http://127.0.0.1:1", "instance_types": {"big": {"gpu": 1}}},
         "instance_types.big.gpu is not recognised; allowed: cpus"),
        ({"type": "ray", "address": "http://127.0.0.1:1", "instance_types": {"big": {"cpus": -2}}},
         "instance_types.big.cpus = -2 must be a number >= 0"),
        ({"type": "ray", "address": "http://127.0.0.1:1", "instance_types": {"big": {"cpus": 2}},
          "default_instance_type": "small"}, "'compute.bad.default_instance_type' = 'small' is not a name of "
                                             "instance_types (big)"),
    ],
)
def test_bad_target_settings_fail_before_any_run(tmp_path, monkeypatch, target, expected):
    from mlflow_workspace_plugin import Workspace

    config = write_workspace(tmp_path / "ws", {"bad": target})
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    monkeypatch.delenv("MLFLOW_WS_TEST_UNSET_ADDRESS", raising=False)
    mlflow.set_tracking_uri(Workspace.from_config().get_mlflow_tracking_uri())
    with pytest.raises(MlflowException) as err:
        remote(write_project(tmp_path / "proj", "open('ran.txt', 'w').write('x')"), "bad")
    assert expected in str(err.value)
    assert not all_runs(MlflowClient())


# ----------------------------------------------------------------------------- the mlflow CLI
def cli_env(ray_head, tmp_path) -> dict[str, str]:
    config = write_workspace(tmp_path / "cli-ws", compute_targets(ray_head.address))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env["MLFLOW_WORKSPACE_CONFIG"] = str(config)
    return env


def cli_client(env) -> MlflowClient:
    from mlflow_workspace_plugin import Workspace

    return MlflowClient(Workspace.from_config(env["MLFLOW_WORKSPACE_CONFIG"]).get_mlflow_tracking_uri())


def test_cli_runs_a_project_with_a_pip_env_on_ray_streams_and_waits(ray_head, tmp_path):
    # the same requirements as seed 000's conda.yaml: Ray reuses that pip env (seed 000 itself runs
    # on Ray in the tests above and in test_example_run_on_ray)
    env = cli_env(ray_head, tmp_path)
    project = write_project(tmp_path / "proj", """
        import sys, mlflow
        mlflow.log_metric("alpha", float(sys.argv[1]))
        print(f"training with alpha={sys.argv[1]}")
    """, parameters="alpha: {type: float, default: 0.5}", command="python script.py {alpha}",
                            extra_files={"conda.yaml": (REPO_ROOT / "conda.yaml").read_text()})
    (project / "MLproject").write_text((project / "MLproject").read_text() + "conda_env: conda.yaml\n")
    command = [sys.executable, "-m", "mlflow", "run", str(project), "--backend", "azureml",
               "--backend-config", json.dumps({"COMPUTE": "cpu-cluster"}), "-P", "alpha=0.3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=150, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training with alpha=0.3" in result.stdout  # streamed from the job's log
    (run,) = all_runs(cli_client(env))
    assert run.info.status == "FINISHED" and run.data.tags["azureml.compute"] == "cpu-cluster"
    assert run.data.tags["mlflow.project.env"] == "pip" and run.data.metrics["alpha"] == 0.3


def test_cli_ctrl_c_stops_the_ray_job(ray_head, tmp_path):
    env = cli_env(ray_head, tmp_path)
    project = write_project(tmp_path / "proj", LONG_SCRIPT)
    command = [sys.executable, "-m", "mlflow", "run", str(project), "--backend", "azureml",
               "--backend-config", json.dumps({"COMPUTE": "fast-cluster"})]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=tmp_path, preexec_fn=as_from_a_terminal)
    seen = []
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            seen.append(line)
            if "started pid=" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, "".join(seen) + rest
    (run,) = all_runs(cli_client(env))
    assert run.info.status == "KILLED"
    assert job_client(ray_head).get_job_status(f"mlflow-{run.info.run_id}") == "STOPPED"


def test_seed000_remote_call_runs_on_ray_with_pip_env_through_the_example(ray_head, tmp_path):
    """examples/ray/run_on_ray.py makes seed 000's remote call (``COMPUTE: cpu-cluster``) on the
    repository's project; what Ray and the workspace recorded is checked in full."""
    env = cli_env(ray_head, tmp_path)
    result = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "ray" / "run_on_ray.py")],
                            capture_output=True, text=True, timeout=170, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FINISHED on Ray job mlflow-" in result.stdout
    assert "ElasticNet(alpha=0.3)" in result.stdout  # streamed live from the driver log
    client = cli_client(env)
    (run,) = all_runs(client)
    assert run.info.status == "FINISHED" and run.data.params["alpha"] == "0.3"
    assert {"training_score", "training_r2_score", "test_rmse", "test_r2"} <= set(run.data.metrics)
    job_id = f"mlflow-{run.info.run_id}"
    assert run.data.tags["mlflow.project.backend"] == "azureml"
    assert run.data.tags["azureml.compute"] == "cpu-cluster"
    assert run.data.tags["azureml.compute.type"] == "ray"
    assert run.data.tags["ray.job_id"] == job_id
    assert run.data.tags["mlflow.project.env"] == "pip"

    paths = set(artifact_paths(client, run.info.run_id))
    assert {"outputs/metrics.txt", "user_logs/std_log.txt", "snapshot/train.py", "snapshot/MLproject",
            "snapshot/conda.yaml"} <= paths
    assert not [p for p in paths if p.startswith(("snapshot/outputs/", "snapshot/.git/"))]
    assert read_artifact(client, run.info.run_id, "outputs/metrics.txt").startswith("rmse=")
    assert "ElasticNet(alpha=0.3)" in read_artifact(client, run.info.run_id, "user_logs/std_log.txt")

    info = job_client(ray_head).get_job_info(job_id)
    assert info.status == "SUCCEEDED"
    assert "scikit-learn>=1.3" in info.runtime_env["pip"]["packages"]
    env_vars = info.runtime_env["env_vars"]
    assert env_vars["MLFLOW_RUN_ID"] == run.info.run_id and env_vars["MLFLOW_TRACKING_URI"] == client.tracking_uri
    assert not {"PATH", "HOME", "MLFLOW_WORKSPACE_HOME", "MLFLOW_WORKSPACE_CONFIG"} & set(env_vars)
    assert info.entrypoint.startswith("python -m mlflow_workspace_plugin.compute.job_runner -- ")
    assert re.search(rf"run {run.info.run_id} FINISHED; job runner overhead: [0-9.]+ s before the command, "
                     r"[0-9.]+ s after it", job_client(ray_head).get_job_logs(job_id))


def test_rejected_job_is_a_clear_error_and_failed_run(ray_workspace, ray_head, tmp_path):
    from mlflow.projects.utils import MLFLOW_LOCAL_BACKEND_RUN_ID_CONFIG

    run = MlflowClient().create_run("0")
    taken = job_client(ray_head).submit_job(entrypoint="true", submission_id=f"mlflow-{run.info.run_id}")
    with pytest.raises(ExecutionException) as err:
        mlflow.projects.run(str(write_project(tmp_path / "proj", "print('x')")), backend="azureml",
                            backend_config={"COMPUTE": "fast-cluster", MLFLOW_LOCAL_BACKEND_RUN_ID_CONFIG: run.info.run_id})
    assert f"rejected job {taken}" in str(err.value) and ray_head.address in str(err.value)
    assert "already exists" in str(err.value) and "Traceback" not in str(err.value)
    assert MlflowClient().get_run(run.info.run_id).info.status == "FAILED"


def test_cluster_lost_mid_run_ends_the_run_without_hanging(ray_workspace, tmp_path, monkeypatch):
    from mlflow_workspace_plugin.compute import remote_run
    from mlflow_workspace_plugin.compute.ray_head import LocalRayHead

    monkeypatch.setattr(remote_run, "LOST_CONTACT_SECONDS", 3.0)
    head = LocalRayHead(num_cpus=1).start(timeout=90)
    try:
        config = write_workspace(tmp_path / "ws2", {"doomed": {"type": "ray", "address": head.address,
                                                               "environment": "inherit"}})
        monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))  # tracking stays on ray_workspace
        submitted = remote(write_project(tmp_path / "proj", LONG_SCRIPT), "doomed", synchronous=False)
        logs = wait_for_log(head, submitted.job_id, "started pid=")
        pid = int(logs.split("started pid=")[1].split()[0])
    finally:
        head.stop()
    started = time.monotonic()
    assert submitted.wait() is False
    assert time.monotonic() - started < 30
    assert submitted.get_status() == "FAILED"
    assert "lost contact with Ray cluster at " + head.address in submitted.failure_message()
    assert MlflowClient().get_run(submitted.run_id).info.status in ("FAILED", "KILLED")
    deadline = time.monotonic() + 15
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(pid)
