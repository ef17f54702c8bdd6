"""Security with the workspace URI: artifact paths, shell metacharacters in project parameters,
and the bearer token never leaking (console, logs, log artifacts, exceptions, journal files)."""

from __future__ import annotations

import logging
import shlex
import time

import mlflow
import pytest
from helpers import write_project
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ws_checks import assert_exactly, run_data
from ws_front_door import Request

BAD_PATHS = ["../escape", "a/../../escape", "/etc", "..\\escape", "C:\\temp"]

ECHO_SCRIPT = """
    import argparse, mlflow
    from pathlib import Path
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", required=True)
    args = parser.parse_args()
    Path("outputs").mkdir(exist_ok=True)
    Path("outputs/seen.txt").write_text(args.text)
    with mlflow.start_run():
        mlflow.set_tag("seen", args.text)
        for step in range(1000):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    print("entry point done")
"""
NASTY = """'; touch pwned; echo $(id) `id` && rm -rf ./nothing | cat > hacked "dq" \\ * $HOME ${PATH} < /dev/null"""


def _artifact_requests(workspace) -> list[str]:
    seen: list[str] = []

    def observe(request: Request) -> None:
        if "mlflow-artifacts" in request.path:
            seen.append(request.path)
        return None

    workspace.door.faults.add(observe)
    return seen


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_artifact_paths_escaping_the_run_are_rejected_client_side(workspace, tmp_path, bad):
    mlflow.set_experiment("artifact-paths")
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f.txt").write_text("y")
    with mlflow.start_run() as run:
        sent = _artifact_requests(workspace)
        client = MlflowClient()
        ours = "is not allowed: artifact paths are relative"
        calls = [(lambda: mlflow.log_artifact(str(payload), artifact_path=bad), ours),
                 (lambda: client.log_artifacts(run.info.run_id, str(tmp_path / "dir"), bad), ours),
                 (lambda: client.list_artifacts(run.info.run_id, bad), ours),
                 # MLflow itself refuses 'runs:/<id>//etc' before the plugin sees it, and its
                 # runs:/ wrapper replaces the plugin's error by its own "Failed to download"
                 (lambda: client.download_artifacts(run.info.run_id, bad, str(tmp_path)),
                  f"{ours}|Not a proper runs:/ URI|Failed to download artifacts from path")]
        for call, message in calls:
            with pytest.raises(MlflowException, match=message):
                call()
        assert sent == []  # rejected before any request
    stored = workspace.server.artifacts_dir
    assert not any(p.name in ("payload.txt", "f.txt") for p in stored.rglob("*"))


def test_shell_metacharacters_reach_the_entry_point_literally(workspace, tmp_path, capfd):
    project = write_project(tmp_path / "echo-project", ECHO_SCRIPT, parameters="text: {type: string}",
                            command="python script.py --text {text}")
    mlflow.set_experiment("shell-params")
    submitted = mlflow.projects.run(str(project), parameters={"text": NASTY}, backend="azureml",
                                    backend_config={"USE_CONDA": False}, env_manager="local",
                                    synchronous=True)
    run_id = submitted.run_id
    run = run_data(workspace.server, run_id)
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["seen"] == NASTY
    # MLflow's projects code records the shell-quoted form of the parameter (as with its local backend)
    assert shlex.split({p["key"]: p["value"] for p in run["data"]["params"]}["text"]) == [NASTY]
    assert_exactly(workspace.server, run_id, "loss", 1000)  # the child's data all arrived
    for folder in (project, workspace.client_dir, tmp_path):
        assert not (folder / "pwned").exists() and not (folder / "hacked").exists()
    artifacts = workspace.server.artifacts_dir / run["info"]["experiment_id"] / run_id / "artifacts"
    assert (artifacts / "outputs" / "seen.txt").read_text() == NASTY
    log_text = (artifacts / "user_logs" / "std_log.txt").read_text()
    assert "entry point done" in log_text
    out, err = capfd.readouterr()
    assert workspace.token not in log_text + out + err


def test_token_never_appears_in_output_logs_exceptions_or_journal(workspace, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    home = workspace.client_dir.parent / "workspace-home"
    faults = workspace.door.faults
    faults.unavailable(path="/runs/log-batch", times=4)
    faults.delay(1.0, path="/runs/log-batch", times=1)
    mlflow.set_experiment("token-hygiene")
    errors: list[str] = []
    with pytest.raises(MlflowException) as info:
        with mlflow.start_run():
            mlflow.log_param("lr", "1")
            for step in range(300):
                mlflow.log_metric("loss", 1.0, step=step)
            time.sleep(0.2)
            journal = b"".join(p.read_bytes() for p in (home / "journal").rglob("*") if p.is_file())
            assert journal and b"loss" in journal  # pending entries are in the journal now
            mlflow.flush_async_logging()
            mlflow.log_param("lr", "2")
    errors.append(str(info.value))
    monkey_token = "wrong-" + workspace.token[::-1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_TOKEN", monkey_token)
        with pytest.raises(MlflowException) as rejected:
            mlflow.search_experiments()
        errors.append(str(rejected.value))
    out, err = capfd.readouterr()
    everything = "\n".join([out, err, caplog.text, *errors])
    for secret in (workspace.token, monkey_token):
        assert secret not in everything
        assert secret.encode() not in journal
    assert "Changing param values is not allowed" in errors[0]
