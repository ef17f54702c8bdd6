"""Controlling a local job from another process (``mlflow-workspace job cancel``).

A local job's processes are children of the process that launched it. The launch records on the run:

- ``azureml.local.host``: this machine's host name (a job is only controlled from the same machine);
- ``azureml.local.processes``: ``<pid>:<start time>`` of each of the command's process groups;
- ``azureml.local.launcher``: ``<pid>:<start time>`` of the launching process (it ends the run);
- ``azureml.local.supervisor``: ``<pid>:<start time>`` of the launching process when it is a
  ``mlflow-workspace job`` process, which treats SIGTERM as "cancel the run" (records KILLED itself).

The start time (``/proc/<pid>/stat``, clock ticks since boot) makes sure a reused PID is never signalled.
Cancel: SIGTERM to the supervisor when there is one; else SIGTERM to every process group of the command
(SIGKILL after a grace period); then, once the launching process has ended the run, it is recorded
KILLED with ``azureml.cancel_reason``.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from mlflow_workspace_plugin.compute.handles import CANCEL_REASON_TAG
from mlflow_workspace_plugin.jobs.states import is_terminal

HOST_TAG = "azureml.local.host"
PROCESSES_TAG = "azureml.local.processes"
LAUNCHER_TAG = "azureml.local.launcher"
SUPERVISOR_TAG = "azureml.local.supervisor"
CANCEL_GRACE_SECONDS = 10.0
CANCEL_WAIT_SECONDS = 60.0


def process_identity(pid: int) -> str | None:
    """``<pid>:<start time>`` of a live process, or None when it does not exist (or /proc is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after "(comm)": state is field 3, starttime field 22
    return f"{pid}:{fields[19]}" if len(fields) > 19 else None


def alive(identity: str) -> bool:
    """True while the process recorded as ``identity`` still runs (not a newer process with its PID)."""
    pid = int(identity.split(":", 1)[0])
    return process_identity(pid) == identity


def record_processes(client: MlflowClient, run_id: str, pids: Iterable[int]) -> None:
    identities = [identity for identity in (process_identity(pid) for pid in pids) if identity]
    client.set_tag(run_id, HOST_TAG, socket.gethostname())
    client.set_tag(run_id, PROCESSES_TAG, ",".join(identities))
    client.set_tag(run_id, LAUNCHER_TAG, process_identity(os.getpid()) or "")


def record_supervisor(client: MlflowClient, run_id: str) -> None:
    """Mark this process as the one that cancels the run on SIGTERM."""
    identity = process_identity(os.getpid())
    if identity:
        client.set_tag(run_id, SUPERVISOR_TAG, identity)


def cancel_local_job(client: MlflowClient, run: Run, reason: str) -> str:
    """Cancel a local job started by another process; returns the run's final status."""
    tags = run.data.tags
    host = tags.get(HOST_TAG)
    if host and host != socket.gethostname():
        raise RuntimeError(f"job runs on host {host!r}; cancel it from there (this is {socket.gethostname()!r})")
    run_id = run.info.run_id
    client.set_tag(run_id, CANCEL_REASON_TAG, reason)
    supervisor = tags.get(SUPERVISOR_TAG)
    groups = [identity for identity in tags.get(PROCESSES_TAG, "").split(",") if identity]
    if supervisor and alive(supervisor):
        _signal(supervisor, signal.SIGTERM, group=False)
    else:
        _stop_groups(groups)
    launcher = tags.get(LAUNCHER_TAG, "")
    status = _wait_terminal(client, run_id, CANCEL_WAIT_SECONDS if launcher and alive(launcher) else 1.0)
    if status is None:  # nobody ended the run: its launcher is gone (or hangs)
        _stop_groups(groups, grace=0)
    if status != "KILLED":
        client.set_terminated(run_id, "KILLED")
    return "KILLED"


def _stop_groups(groups: list[str], grace: float = CANCEL_GRACE_SECONDS) -> None:
    for identity in groups:
        _signal(identity, signal.SIGTERM if grace else signal.SIGKILL, group=True)
    deadline = time.monotonic() + grace
    while grace and time.monotonic() < deadline and any(alive(identity) for identity in groups):
        time.sleep(0.1)
    for identity in groups:
        _signal(identity, signal.SIGKILL, group=True)


def _signal(identity: str, sig: int, *, group: bool) -> None:
    if not alive(identity):
        return
    pid = int(identity.split(":", 1)[0])
    try:
        os.killpg(pid, sig) if group else os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_terminal(client: MlflowClient, run_id: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_run(run_id).info.status
        if is_terminal(status):
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.25)
