"""The journal across processes: SIGKILL mid-run, bounded exit with the server unreachable,
automatic replay by the next process, ``mlflow-workspace sync``, and two writers at once."""

from __future__ import annotations

import os
import signal
import time

import pytest
from mlflow import MlflowClient
from ws_checks import (
    assert_exactly,
    client_env,
    history,
    journal_files,
    mlflow_workspace_cli,
    run_data,
    start_script,
)

LOG_BATCH = "/runs/log-batch"
LOG_POINTS = """
import os, time, mlflow
client = mlflow.MlflowClient()
run_id, points = os.environ["RUN_ID"], int(os.environ["POINTS"])
for step in range(points):
    client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
print("LOGGED", flush=True)
deadline = time.monotonic() + float(os.environ.get("LINGER", "0"))
while time.monotonic() < deadline and not os.path.exists(os.environ.get("GO_FILE", "/nonexistent")):
    time.sleep(0.05)
"""
NEXT_PROCESS = "import mlflow; mlflow.MlflowClient().search_experiments()"


def _home(workspace) -> os.PathLike:
    return workspace.client_dir.parent / "workspace-home"


def _new_run(workspace, name: str) -> str:
    client = MlflowClient(workspace.uri)
    experiment = client.get_experiment_by_name(name) or client.get_experiment(client.create_experiment(name))
    return client.create_run(experiment.experiment_id).info.run_id


def _wait_for_line(proc, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if text in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"child exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
    raise AssertionError(f"no {text!r} from child within {timeout}s")


def _journal_bytes(home) -> bytes:
    return b"".join(p.read_bytes() for p in (home / "journal").rglob("*") if p.is_file())


@pytest.mark.compat
@pytest.mark.parametrize("replay", ["automatic", "sync-command"])
def test_sigkill_mid_run_then_replay_loses_and_duplicates_nothing(workspace, replay):
    home = _home(workspace)
    run_id = _new_run(workspace, "replay-after-sigkill")
    faults = workspace.door.faults
    lost = faults.lose_ack(path=LOG_BATCH, times=2)  # applied by the server, answer lost
    faults.unavailable(path=LOG_BATCH)  # then the workspace is down until the client dies
    env = client_env(workspace.uri, workspace.token, home, RUN_ID=run_id, POINTS="3000", LINGER="600")
    child = start_script(LOG_POINTS, env, workspace.client_dir)
    try:
        _wait_for_line(child, "LOGGED")
        deadline = time.monotonic() + 60
        while lost.fired < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lost.fired == 2
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    faults.clear()
    on_server_before = len(history(workspace.server, run_id, "loss"))
    assert 0 < on_server_before < 3000  # some arrived (acks lost), the rest only in the journal
    assert journal_files(home), "the killed client's journal must survive it"
    assert workspace.token.encode() not in _journal_bytes(home)

    next_env = client_env(workspace.uri, workspace.token, home)
    if replay == "automatic":
        done = start_script(NEXT_PROCESS, next_env, workspace.client_dir)
        out, err = done.communicate(timeout=120)
        assert done.returncode == 0, err[-2000:]
    else:
        done = mlflow_workspace_cli("sync", env=next_env, cwd=workspace.client_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "still journaled" in done.stdout and " 0 still journaled" in done.stdout
        out, err = done.stdout, done.stderr
    assert workspace.token not in out + err
    assert_exactly(workspace.server, run_id, "loss", 3000)
    assert journal_files(home) == []


def test_exit_with_workspace_down_is_bounded_and_says_how_to_sync(workspace):
    home = _home(workspace)
    run_id = _new_run(workspace, "bounded-exit")
    workspace.door.faults.unavailable(path=LOG_BATCH)  # logging and ending the run: refused
    workspace.door.faults.unavailable(path="/runs/update")
    code = ("import os, mlflow\n"
            "with mlflow.start_run(run_id=os.environ['RUN_ID']):\n"
            "    for step in range(500):\n"
            "        mlflow.log_metric('loss', 1.0, step=step)\n")
    env = client_env(workspace.uri, workspace.token, home, RUN_ID=run_id,
                     MLFLOW_WORKSPACE_FLUSH_TIMEOUT="2", MLFLOW_WORKSPACE_RETRY_MAX_WAIT="1")
    started = time.monotonic()
    child = start_script(code, env, workspace.client_dir)
    out, err = child.communicate(timeout=120)
    took = time.monotonic() - started
    assert child.returncode == 0, err[-2000:]
    assert took < 40, f"exit took {took:.0f}s with a 2 s flush limit"
    assert "waiting up to 2 s" in err  # progress after one second
    assert "safe in the journal" in err and "mlflow-workspace sync" in err
    assert workspace.token not in out + err
    assert journal_files(home)
    assert history(workspace.server, run_id, "loss") == []

    workspace.door.faults.clear()
    done = mlflow_workspace_cli("sync", "--tracking-uri", workspace.uri,
                                env=client_env(workspace.uri, workspace.token, home), cwd=workspace.client_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_exactly(workspace.server, run_id, "loss", 500)
    assert run_data(workspace.server, run_id)["info"]["status"] == "FINISHED"  # queued end of run too
    assert journal_files(home) == []


def test_two_processes_logging_at_once_keep_their_own_journals(workspace):
    home = _home(workspace)
    runs = [_new_run(workspace, "two-writers") for _ in range(2)]
    workspace.door.faults.delay(0.3, path=LOG_BATCH)  # keep both journals busy for a while
    go = workspace.client_dir.parent / "go"
    children = [start_script(LOG_POINTS, client_env(workspace.uri, workspace.token, home, RUN_ID=run_id,
                                                    POINTS="2000", LINGER="120", GO_FILE=str(go)),
                             workspace.client_dir)
                for run_id in runs]
    try:
        for child in children:
            _wait_for_line(child, "LOGGED")
        # a sync while both are alive must leave their (locked) journals alone
        done = mlflow_workspace_cli("sync", env=client_env(workspace.uri, workspace.token, home),
                                    cwd=workspace.client_dir)
        assert done.returncode == 0, done.stdout + done.stderr
        assert " 0 sent" in done.stdout and "2 in use by running processes" in done.stdout, done.stdout
        go.touch()  # now let them finish and exit
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err[-2000:]
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
    for run_id in runs:
        assert_exactly(workspace.server, run_id, "loss", 2000)
    assert journal_files(home) == []
