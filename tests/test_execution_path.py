"""The one execution path: validation before any state changes, the right interpreter, a clean first run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
from helpers import write_json, write_project
from mlflow import MlflowClient
from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

from mlflow_workspace_plugin import Workspace
from mlflow_workspace_plugin.errors import WorkspaceConfigError

SYSTEM_PYTHON = Path("/usr/bin/python3")  # a Python without MLflow


def test_unknown_compute_fails_before_tracking_uri_or_workspace_folder_change(tmp_path, monkeypatch):
    store = tmp_path / "ws" / ".workspace"
    config = write_json(tmp_path / "ws" / "config.json", {"workspace_name": "w", "local_path": ".workspace"})
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    project = write_project(tmp_path / "proj", "print('x')")
    with pytest.raises(WorkspaceConfigError, match="Unknown compute target 'nope'"):
        mlflow.projects.run(str(project), backend="azureml", backend_config={"COMPUTE": "nope"})
    assert not is_tracking_uri_set()
    assert not store.exists()


def test_bad_parameter_fails_without_creating_the_workspace_folder(tmp_path, monkeypatch):
    store = tmp_path / "ws" / ".workspace"
    config = write_json(tmp_path / "ws" / "config.json", {"workspace_name": "w", "local_path": ".workspace"})
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONFIG", str(config))
    project = write_project(tmp_path / "proj", "print('x')", parameters="alpha: {type: float, default: 0.1}",
                            command="python script.py {alpha}")
    with pytest.raises(mlflow.exceptions.ExecutionException, match="must be of type float"):
        mlflow.projects.run(str(project), backend="azureml", parameters={"alpha": "high"},
                            backend_config={"USE_CONDA": False})
    assert not is_tracking_uri_set()
    assert not store.exists()


def test_undeclared_parameter_warns_naming_the_closest_declared_one(local_tracking, tmp_path, capfd):
    project = write_project(tmp_path / "proj", "import sys\nprint(sys.argv[1:])\n",
                            parameters="alpha: {type: float, default: 0.1}", command="python script.py {alpha}")
    submitted = mlflow.projects.run(str(project), backend="azureml", parameters={"alhpa": "0.5"},
                                    backend_config={"USE_CONDA": False})
    assert submitted.get_status() == "FINISHED"
    err = capfd.readouterr().err
    assert "parameter 'alhpa' is not declared by entry point 'main'" in err and "did you mean 'alpha'?" in err


def test_no_temporary_folder_left_behind_per_run(local_tracking, tmp_path, monkeypatch):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    project = write_project(tmp_path / "proj", "print('x')")
    submitted = mlflow.projects.run(str(project), backend="azureml", backend_config={"USE_CONDA": False})
    assert submitted.get_status() == "FINISHED"
    assert list(private_tmp.iterdir()) == []


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs a Python without MLflow at /usr/bin/python3")
def test_unactivated_venv_runs_entry_point_with_its_own_python(tmp_path, isolated_workspace):
    """`<venv>/bin/python driver.py` with a PATH whose `python` has no MLflow (Jupyter, cron, IDEs)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").symlink_to(SYSTEM_PYTHON)
    project = write_project(tmp_path / "proj", "import mlflow, sys\nprint('interpreter', sys.executable)\n"
                                               "mlflow.log_metric('ok', 1)\n")
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import mlflow
        from mlflow_workspace_plugin import Workspace
        mlflow.set_tracking_uri(Workspace.from_config().get_mlflow_tracking_uri())
        run = mlflow.projects.run({str(project)!r}, backend="azureml", env_manager="local",
                                  backend_config={{"USE_CONDA": False}})
        print("RUN", run.run_id, run.get_status())
    """), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join([str(fake_bin), "/usr/bin", "/bin"])
    result = subprocess.run([sys.executable, str(driver)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = result.stdout.split("RUN ", 1)[1].split()[0]
    run = MlflowClient(Workspace.local(isolated_workspace).get_mlflow_tracking_uri()).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"ok": 1.0}
    assert f"interpreter {Path(sys.executable).parent}" in result.stdout


def test_cli_run_with_unactivated_venv(tmp_path, isolated_workspace):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    if SYSTEM_PYTHON.exists():
        (fake_bin / "python").symlink_to(SYSTEM_PYTHON)
    project = write_project(tmp_path / "proj", "import mlflow\nmlflow.log_metric('ok', 1)\n")
    env = dict(os.environ, PATH=os.pathsep.join([str(fake_bin), "/usr/bin", "/bin"]))
    result = subprocess.run([sys.executable, "-m", "mlflow", "run", str(project), "--backend", "azureml",
                             "--backend-config", json.dumps({"USE_CONDA": False})],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (run,) = MlflowClient(Workspace.local(isolated_workspace).get_mlflow_tracking_uri()).search_runs(["0"])
    assert run.data.metrics == {"ok": 1.0}


def test_cluster_address_of_a_target_that_is_no_cluster_names_it(isolated_workspace):
    from mlflow_workspace_plugin.execution.plan import cluster_address

    with pytest.raises(WorkspaceConfigError, match="Compute target 'local' \\(type 'local'\\) is not a cluster"):
        cluster_address("local", Workspace.from_config())


pytestmark = pytest.mark.slow  # its tests start processes (runs, CLI subprocesses, servers)


@pytest.mark.parametrize("step", ["track", "record_identity"])
def test_ctrl_c_right_after_the_start_cancels_the_run_and_leaves_no_process(local_tracking, tmp_path, monkeypatch,
                                                                            step):
    """The instant the command runs, a Ctrl-C anywhere in the rest of the start ends the run KILLED."""
    import psutil

    from mlflow_workspace_plugin.compute.local import LocalExecutor
    from mlflow_workspace_plugin.execution import lifecycle

    started: list[int] = []

    def interrupted(*args, **kwargs):
        handle = args[0] if step == "track" else args[1]
        started.extend(handle.pids)
        raise KeyboardInterrupt

    if step == "track":
        monkeypatch.setattr(lifecycle.live_runs, "track", interrupted)
    else:
        monkeypatch.setattr(LocalExecutor, "record_identity", lambda self, client, handle: interrupted(client, handle))
    project = write_project(tmp_path / "proj", "import time\ntime.sleep(120)\n")
    with pytest.raises(KeyboardInterrupt):
        mlflow.projects.run(str(project), backend="azureml", backend_config={"USE_CONDA": False}, synchronous=False)
    (run,) = MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
    assert run.info.status == "KILLED"
    assert started and not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                               for pid in started)
