"""The journal on a full disk (a real, small tmpfs this test mounts): log calls never raise a raw
SQLite error, never leak descriptors or files, and never lose a value a call accepted. Contract:
while the journal cannot be written, each log call waits for the workspace's acknowledgement
(one warning naming the folder and the free space); a call whose values the workspace does not
acknowledge within MLFLOW_WORKSPACE_CONNECT_TIMEOUT raises one clear error saying so.
Real ``mlflow server`` behind the front door; descriptors counted in /proc/self/fd."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ws_checks import assert_exactly, history

from mlflow_workspace_plugin.reliable import pipeline as reliable_pipeline

pytestmark = pytest.mark.slow
LOG_BATCH = "/runs/log-batch"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class SmallDisk:
    """A 16 MB tmpfs mounted for one test (room for a journal's WAL), filled up on demand."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount

    def fill(self) -> None:
        """Write zeros until the filesystem refuses (in 64 KB, then 512-byte pieces)."""
        for name, piece in (("filler", 65536), ("filler-tail", 512)):
            try:
                with open(self.mount / name, "ab") as out:
                    while True:
                        out.write(b"\0" * piece)
                        out.flush()
            except OSError:
                pass
        assert shutil.disk_usage(self.mount).free < 4096

    def free(self) -> None:
        for name in ("filler", "filler-tail"):
            (self.mount / name).unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("counting descriptors needs /proc (Linux)")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount permission): {done.stderr.strip()}")
    try:
        yield SmallDisk(mount)
    finally:
        reliable_pipeline.close_all(timeout=5.0)  # nothing of ours may stay open on it
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _home_on(small_disk: SmallDisk, monkeypatch) -> Path:
    home = small_disk.mount / "home"
    monkeypatch.setenv("MLFLOW_WORKSPACE_HOME", str(home))
    return home


def _run(workspace, name: str) -> tuple[MlflowClient, str]:
    client = MlflowClient(workspace.uri)
    experiment = client.get_experiment_by_name(name) or client.get_experiment(client.create_experiment(name))
    return client, client.create_run(experiment.experiment_id).info.run_id


def _files(home: Path) -> list[str]:
    folder = home / "journal"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def test_full_disk_from_the_start_logs_synchronously_without_leaks(workspace, small_disk, monkeypatch, capfd):
    home = _home_on(small_disk, monkeypatch)
    client, run_id = _run(workspace, "journal-full")
    small_disk.fill()
    client.log_metric(run_id, "loss", 1.0, step=0)  # the first call opens the sender's connection
    before = _fds()
    for step in range(1, 300):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)  # never raises
    client.set_tag(run_id, "phase", "full")
    assert _fds() - before <= 2, f"{_fds() - before} descriptors leaked by 300 log calls"
    assert _files(home) == [], "journal files left behind on the full disk"
    assert_exactly(workspace.server, run_id, "loss", 300)  # each call returned once acknowledged
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if "cannot write the journal" in line]
    assert len(warnings) == 1, err
    assert str(home / "journal") in warnings[0] and "full" in warnings[0] and "free" in warnings[0]
    assert "OperationalError" not in err and "Traceback" not in err
    # room again: back to journaling (calls return at once), and everything still arrives once
    small_disk.free()
    time.sleep(1.1)  # the journal is tried again at most once a second
    for step in range(300, 400):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    assert any(name.endswith(".db") for name in _files(home))
    assert "can be written again" in capfd.readouterr().err
    client.set_terminated(run_id)
    assert_exactly(workspace.server, run_id, "loss", 400)
    assert client.get_run(run_id).data.tags["phase"] == "full"


def test_disk_filling_while_sending_is_stalled(workspace, small_disk, monkeypatch, capfd):
    home = _home_on(small_disk, monkeypatch)
    monkeypatch.setenv("MLFLOW_WORKSPACE_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_WORKSPACE_RETRY_MAX_WAIT", "0.5")
    client, run_id = _run(workspace, "journal-fills")
    for step in range(100):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    client.get_metric_history(run_id, "loss")  # flushed: the journal exists and is drained
    down = workspace.door.faults.unavailable(path=LOG_BATCH)
    for step in range(100, 200):  # journaled, not acknowledged: the sender is stalled
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    small_disk.fill()
    before = _fds()
    for _attempt in range(3):
        with pytest.raises(MlflowException) as raised:
            client.log_metric(run_id, "loss", 0.5, step=200)
        message = raised.value.message
        assert "cannot rollback" not in message and "database or disk is full" not in message.split("(")[0]
        assert str(home / "journal") in message and "not recorded" in message and "free" in message
    workspace.door.faults.rules.remove(down)
    for step in range(201, 260):  # the workspace is back: synchronous again, nothing raises
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    assert _fds() - before <= 2, f"{_fds() - before} descriptors leaked"
    small_disk.free()
    client.set_terminated(run_id)
    steps = sorted(int(p.get("step", 0)) for p in history(workspace.server, run_id, "loss"))
    accepted = [s for s in range(260) if s != 200]
    assert [s for s in steps if s != 200] == accepted, "a value a call accepted was lost or duplicated"
    assert steps.count(200) <= 1
    err = capfd.readouterr().err
    assert "Traceback" not in err and "OperationalError" not in err
    assert _files(home) == []
