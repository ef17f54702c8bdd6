"""Controlling a local run from another process (``mlflow-workspace job cancel``, ``job show``).

A local run's processes are children of the process that launched it. The launch records on the run:

- ``azureml.local.host``: this machine's host name (a run is only controlled from the same machine);
- ``azureml.local.processes``: the identity (``<pid>:<start time>``, :mod:`~mlflow_workspace_plugin.process_tree`)
  of each of the command's process groups; every process of the command also carries the run's mark;
- ``azureml.local.launcher``: the identity of the launching process (it ends the run);
- ``azureml.local.supervisor``: the identity of the launching process when it is a
  ``mlflow-workspace job`` process, which treats SIGTERM as "cancel the run" (records KILLED itself).

The start time makes sure a reused PID is never signalled. Cancel: SIGTERM to the supervisor when it
lives; else SIGTERM to everything the command started (its process groups, their descendants and
every process carrying the run's mark: ``setsid`` children too), SIGKILL after a grace period; then,
once the launching process has ended the run (or at once, when it is gone), it is recorded KILLED with
``azureml.cancel_reason``.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterable

from mlflow import MlflowClient
from mlflow.entities import Run, RunTag

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.compute.handles import CANCEL_REASON_TAG

HOST_TAG = "azureml.local.host"
PROCESSES_TAG = "azureml.local.processes"
LAUNCHER_TAG = "azureml.local.launcher"
SUPERVISOR_TAG = "azureml.local.supervisor"
CANCEL_GRACE_SECONDS = 10.0
CANCEL_WAIT_SECONDS = 60.0
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")

alive = process_tree.alive


def record_processes(client: MlflowClient, run_id: str, pids: Iterable[int]) -> None:
    """Record this machine, the command's process groups and this (launching) process on the run."""
    identities = [identity for identity in (process_tree.identity(pid) for pid in pids) if identity]
    client.log_batch(run_id, tags=[RunTag(HOST_TAG, socket.gethostname()),
                                   RunTag(PROCESSES_TAG, ",".join(identities)),
                                   RunTag(LAUNCHER_TAG, process_tree.identity(os.getpid()) or "")])


def record_supervisor(client: MlflowClient, run_id: str) -> None:
    """Mark this process as the one that cancels the run on SIGTERM."""
    identity = process_tree.identity(os.getpid())
    if identity:
        client.set_tag(run_id, SUPERVISOR_TAG, identity)


def launcher_gone(run: Run) -> bool:
    """True when ``run`` still says RUNNING but the local process that ran it has gone (crashed or
    killed): nothing will end the run but a cancel. False for runs of other machines or computes."""
    tags = run.data.tags
    launcher = tags.get(SUPERVISOR_TAG) or tags.get(LAUNCHER_TAG)
    if run.info.status in TERMINAL_STATUSES or not launcher or tags.get(HOST_TAG) != socket.gethostname():
        return False
    return not process_tree.alive(launcher)


def cancel_local_run(client: MlflowClient, run: Run, reason: str) -> str:
    """Cancel a local run started by another process; returns the run's final status (KILLED)."""
    tags = run.data.tags
    host = tags.get(HOST_TAG)
    if host and host != socket.gethostname():
        raise RuntimeError(f"job runs on host {host!r}; cancel it from there (this is {socket.gethostname()!r})")
    run_id = run.info.run_id
    client.set_tag(run_id, CANCEL_REASON_TAG, reason)
    supervisor = tags.get(SUPERVISOR_TAG)
    if supervisor and process_tree.alive(supervisor):
        _signal(supervisor, signal.SIGTERM)
    else:
        stop_recorded(run)
    launcher = tags.get(LAUNCHER_TAG, "")
    status = _wait_terminal(client, run_id, CANCEL_WAIT_SECONDS if launcher and alive(launcher) else 1.0)
    if status is None:  # nobody ended the run: its launcher is gone (or hangs)
        stop_recorded(run, grace=0)
    if status != "KILLED":
        client.set_terminated(run_id, "KILLED")
    return "KILLED"


def stop_recorded(run: Run, grace: float = CANCEL_GRACE_SECONDS) -> None:
    """Stop every process of ``run``'s command: its live recorded process groups (with their
    descendants) and every process carrying the run's mark."""
    recorded = [identity for identity in run.data.tags.get(PROCESSES_TAG, "").split(",") if identity]
    leaders = [int(identity.split(":", 1)[0]) for identity in recorded if process_tree.alive(identity)]
    tree = process_tree.run_processes(leaders, mark=run.info.run_id)
    process_tree.stop(tree, grace, groups=leaders)


def _signal(identity: str, sig: int) -> None:
    if not process_tree.alive(identity):
        return
    try:
        os.kill(int(identity.split(":", 1)[0]), sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_terminal(client: MlflowClient, run_id: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_run(run_id).info.status
        if status in TERMINAL_STATUSES:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.25)
