"""Cancel stops everything a run started: process groups, descendants, and children that left them
(``setsid``, double forks), found by the run's mark; the shared process helper on psutil."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.execution import RunRequest, launch

pytestmark = pytest.mark.slow

# a child in a session of its own, and a grandchild whose parent exited at once (reparented, own session)
ESCAPING_COMMAND = (
    "setsid sleep 300 & echo $! > {out}/setsid.pid; "
    "( setsid sleep 300 & echo $! > {out}/orphan.pid ) ; "
    "echo started; sleep 300"
)


def wait_for_files(*paths: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(path.exists() and path.read_text().strip() for path in paths):
        assert time.monotonic() < deadline, f"{paths} never written"
        time.sleep(0.1)


def wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if process_tree.running(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return left


def test_cancel_stops_setsid_and_orphaned_children_of_the_command(local_tracking, tmp_path):
    out = tmp_path / "pids"
    out.mkdir()
    request = RunRequest(source_dir=tmp_path, command=ESCAPING_COMMAND.format(out=out), experiment_name="tree",
                         stream_output=False)
    handle = launch(request)
    wait_for_files(out / "setsid.pid", out / "orphan.pid")
    escaped = [int((out / name).read_text()) for name in ("setsid.pid", "orphan.pid")]
    assert all(os.getsid(pid) == pid for pid in escaped)  # really outside the command's session
    try:
        handle.cancel()
        assert handle.get_status() == "KILLED"
        assert MlflowClient(local_tracking).get_run(handle.run_id).info.status == "KILLED"
        assert wait_gone(escaped) == []
    finally:
        for pid in escaped:
            if process_tree.running(pid):
                os.kill(pid, 9)


def test_identity_never_matches_another_process_and_group_stop_reaches_descendants():
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); "
                              "time.sleep(300)"], start_new_session=True)
    try:
        recorded = process_tree.identity(child.pid)
        assert recorded and process_tree.alive(recorded)
        assert not process_tree.alive(f"{child.pid}:1.00")  # same PID, other start time: another process
        deadline = time.monotonic() + 20
        while len(process_tree.group_members(child.pid)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        members = process_tree.group_members(child.pid)
        process_tree.stop_group(child.pid, grace=2.0)
        assert wait_gone(members) == []
        child.wait(5)
        assert not process_tree.alive(recorded)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
