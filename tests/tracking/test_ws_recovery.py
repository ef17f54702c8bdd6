"""Recovery never needs the user: bounded waits for calls a user waits on, and the journal's
way back to the workspace (issue 13 items 4-8, issue 9's unreachable-workspace item)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from test_ws_journal_replay import LOG_POINTS, NEXT_PROCESS, _wait_for_line
from ws_checks import (
    assert_exactly,
    client_env,
    history,
    journal_files,
    mlflow_workspace_cli,
    run_data,
    start_script,
)
from ws_servers import free_port, workspace_uri

from mlflow_workspace_plugin.auth import WorkspaceAuthError
from mlflow_workspace_plugin.reliable import replay
from mlflow_workspace_plugin.store.session import WorkspaceUnreachable


def test_unreachable_workspace_fails_run_creation_in_bounded_time(workspace, monkeypatch, capfd):
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONNECT_TIMEOUT", "4")
    port = free_port()  # nothing listens here
    mlflow.set_tracking_uri(workspace_uri(port))
    started = time.monotonic()
    with pytest.raises(WorkspaceUnreachable) as info:
        mlflow.start_run()
    took = time.monotonic() - started
    assert took < 6, f"run creation took {took:.1f}s with a 4 s limit"
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "connection refused" in message
    assert "MLFLOW_WORKSPACE_CONNECT_TIMEOUT=4" in message and "runs/create" in message
    err = capfd.readouterr().err
    assert "still trying" in err and f"127.0.0.1:{port}" in err  # progress while retrying > 3 s
    assert mlflow.active_run() is None


def test_retry_after_beyond_the_cap_fails_fast_naming_host_status_and_wait(workspace):
    door = workspace.door.faults
    door.throttle(retry_after=3600, path="/runs/create")
    mlflow.set_experiment("retry-after-cap")
    started = time.monotonic()
    with pytest.raises(WorkspaceUnreachable) as info:
        mlflow.start_run()
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert f"127.0.0.1:{workspace.door.port}" in message and "HTTP 429" in message
    assert "3600 s" in message and "60 s" in message
    door.clear()
    door.throttle(retry_after=3600, path="/registered-models/search")
    with pytest.raises(WorkspaceUnreachable, match="HTTP 429"):
        MlflowClient().search_registered_models()


def test_short_retry_after_is_honoured_then_the_call_succeeds(workspace):
    rule = workspace.door.faults.unavailable(path="/runs/create", times=2, retry_after=0.5)
    mlflow.set_experiment("retry-after-short")
    started = time.monotonic()
    with mlflow.start_run() as run:
        pass
    assert rule.fired == 2 and time.monotonic() - started >= 0.9
    assert MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"


# ---------------------------------------------------------------------- the journal's way back
LOG_BATCH = "/runs/log-batch"
LOGGED_RUN = """
import os, mlflow
with mlflow.start_run(run_id=os.environ["RUN_ID"]):
    for step in range(int(os.environ["POINTS"])):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
print("LOGGED", flush=True)
"""


def _home(workspace) -> Path:
    return workspace.client_dir.parent / "workspace-home"


def _new_run(workspace, name: str) -> str:
    client = MlflowClient(workspace.uri)
    experiment = client.get_experiment_by_name(name) or client.get_experiment(client.create_experiment(name))
    return client.create_run(experiment.experiment_id).info.run_id


def _orphan_journal(workspace, run_id: str, points: int) -> Path:
    """A journal left by a process that was SIGKILLed while the workspace refused its data."""
    rule = workspace.door.faults.unavailable(path=LOG_BATCH)
    env = client_env(workspace.uri, workspace.token, _home(workspace), RUN_ID=run_id, POINTS=str(points),
                     LINGER="600")
    child = start_script(LOG_POINTS, env, workspace.client_dir)
    try:
        _wait_for_line(child, "LOGGED")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    workspace.door.faults.rules.remove(rule)
    found = journal_files(_home(workspace))
    assert len(found) == 1
    return found[0].parent


def _db_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.db"))


def test_unusable_journal_files_are_quarantined_and_the_rest_is_sent(workspace):
    run_id = _new_run(workspace, "quarantine")
    directory = _orphan_journal(workspace, run_id, 200)
    (directory / "crashed-1-aaaa.db").write_bytes(b"")  # a crash before the schema was committed
    (directory / "damaged-2-bbbb.db").write_bytes(b"this is not a SQLite database " * 50)
    env = client_env(workspace.uri, workspace.token, _home(workspace))
    done = mlflow_workspace_cli("sync", env=env, cwd=workspace.client_dir)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "no such table" not in output and "Traceback" not in output
    moved = [line for line in done.stderr.splitlines() if "moved it to" in line]
    assert len(moved) == 2, done.stderr
    assert any("crashed-1-aaaa.db" in m and "an empty file" in m for m in moved)
    assert any("damaged-2-bbbb.db" in m and "not a readable SQLite journal" in m for m in moved)
    assert all(str(directory / "quarantine") in m for m in moved)
    assert sorted(p.name for p in (directory / "quarantine").glob("*.db")) == ["crashed-1-aaaa.db",
                                                                             "damaged-2-bbbb.db"]
    assert_exactly(workspace.server, run_id, "loss", 200)
    assert _db_files(directory) == []
    later = start_script(NEXT_PROCESS, env, workspace.client_dir)
    _, err = later.communicate(timeout=120)
    assert later.returncode == 0 and "replay failed" not in err and "quarantine" not in err, err


def test_sync_with_a_rejected_token_names_the_credential_and_stops_at_once(workspace):
    run_id = _new_run(workspace, "sync-401")
    directory = _orphan_journal(workspace, run_id, 100)
    wrong = "expired-" + workspace.token[::-1]
    env = client_env(workspace.uri, wrong, _home(workspace))
    started = time.monotonic()
    done = mlflow_workspace_cli("sync", "--timeout", "60", env=env, cwd=workspace.client_dir)
    took = time.monotonic() - started
    assert done.returncode == 1
    assert took < 30, f"sync kept trying a rejected static token for {took:.0f}s"
    assert "did not accept the credentials (HTTP 401" in done.stderr and "MLFLOW_TRACKING_TOKEN" in done.stderr
    assert "stopping" not in done.stderr and wrong not in done.stdout + done.stderr
    assert done.stderr.count("did not accept") == 1
    assert _db_files(directory)  # kept for later


def test_sync_timeout_is_respected_while_the_workspace_hangs(workspace):
    run_id = _new_run(workspace, "sync-timeout")
    directory = _orphan_journal(workspace, run_id, 100)
    workspace.door.faults.delay(20.0, path=LOG_BATCH)  # the workspace accepts but does not answer
    started = time.monotonic()
    reports = replay.sync(_home(workspace), workspace.uri, timeout=2.0)
    took = time.monotonic() - started
    assert took < 3.0, f"sync --timeout 2 took {took:.1f}s"
    report = reports[directory]
    assert report.remaining == 100 and report.sent == 0
    assert _db_files(directory)


def test_delivery_resumes_within_two_seconds_when_the_workspace_comes_back(workspace):
    mlflow.set_experiment("resume-fast")
    run = mlflow.start_run()
    outage = workspace.door.faults.unavailable(path=LOG_BATCH)  # default backoff cap (10 s) applies
    for step in range(300):
        mlflow.log_metric("loss", 1.0, step=step)
    finished: list[float] = []
    flusher = threading.Thread(target=lambda: (mlflow.flush_async_logging(), finished.append(time.monotonic())))
    flusher.start()
    time.sleep(9.0)  # the outage, inside the 30 s flush window
    assert not finished and outage.fired >= 3
    workspace.door.faults.rules.remove(outage)
    back = time.monotonic()
    flusher.join(25)
    assert finished, "the flush did not end after the workspace came back"
    assert finished[0] - back < 2.0, f"delivery resumed {finished[0] - back:.1f}s after the workspace came back"
    assert_exactly(workspace.server, run.info.run_id, "loss", 300)
    mlflow.end_run()


def _sender_pid(stderr: str) -> int:
    match = re.search(r"background sender \(pid (\d+)\)", stderr)
    assert match, stderr
    return int(match.group(1))


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _stop(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)  # its own session: the group id is its pid
    except ProcessLookupError:
        pass


@pytest.mark.parametrize("outcome", ["delivered", "window over"])
def test_background_sender_finishes_the_run_after_the_process_exited(workspace, outcome):
    home = _home(workspace)
    run_id = _new_run(workspace, f"background-{outcome.replace(' ', '-')}")
    faults = workspace.door.faults
    faults.unavailable(path=LOG_BATCH)
    faults.unavailable(path="/runs/update")
    env = client_env(workspace.uri, workspace.token, home, RUN_ID=run_id, POINTS="300",
                     MLFLOW_WORKSPACE_FLUSH_TIMEOUT="1", MLFLOW_WORKSPACE_RETRY_MAX_WAIT="0.5",
                     MLFLOW_WORKSPACE_BACKGROUND_SENDER="true",
                     MLFLOW_WORKSPACE_RETRY_TIMEOUT="60" if outcome == "delivered" else "3")
    child = start_script(LOGGED_RUN, env, workspace.client_dir)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-2000:]
    pid = _sender_pid(err)
    try:
        log = home / "logs" / f"background-sender-{journal_files(home)[0].parent.name}.log"
        assert str(log) in err and "Nothing else to do" in err
        if outcome == "delivered":
            faults.clear()  # the workspace is back: the sender finishes the job by itself
            assert _wait_gone(pid, 30), "the background sender did not exit when done"
            assert_exactly(workspace.server, run_id, "loss", 300)
            assert run_data(workspace.server, run_id)["info"]["status"] == "FINISHED"
            assert journal_files(home) == []
            assert "done: nothing left to send" in log.read_text()
        else:
            assert _wait_gone(pid, 20), "the background sender outlived its retry window"
            assert history(workspace.server, run_id, "loss") == []
            assert journal_files(home)  # kept for the next process or sync
            assert "gave up for now" in log.read_text()
        assert workspace.token not in log.read_text() + err
    finally:
        _stop(pid)
        _wait_gone(pid, 10)


def test_static_token_rejected_says_what_to_do_in_whole_sentences(workspace, monkeypatch, capfd):
    mlflow.set_experiment("static-token-401")
    with mlflow.start_run():
        mlflow.log_metric("warmup", 1.0)
        mlflow.flush_async_logging()
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "revoked-" + workspace.token[::-1])
        for step in range(50):
            mlflow.log_metric("loss", 1.0, step=step)
        started = time.monotonic()
        with pytest.raises(WorkspaceAuthError):
            mlflow.flush_async_logging()
        assert time.monotonic() - started < 5  # no point in retrying a static token
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", workspace.token)
    err = capfd.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("mlflow-workspace:")]
    assert ours and all(line.rstrip().endswith((".", ")")) for line in ours), ours
    assert "retrying in the background" not in err
    assert "replace it with a valid, unexpired token" in err and "mlflow-workspace sync" in err
    assert "revoked-" not in err
