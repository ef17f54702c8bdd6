"""The detached background sender: sends what a process left journaled after it exited.

At exit, a process whose logged data (or a run's final status) is not yet acknowledged starts::

    python -m mlflow_workspace_plugin.reliable.background --tracking-uri <azureml://...> --parent <pid>

in its own session, with stdout/stderr appended to its log file (:func:`log_path`). It waits for
the parent to exit (so the parent's journal becomes an orphan), takes the workspace's sender lock
(one background sender per workspace: a second one exits at once, the first picks its journals
up), replays every orphaned journal of the workspace with the usual retries for at most
``MLFLOW_WORKSPACE_RETRY_TIMEOUT`` seconds, and exits - when everything is sent, when that window
is over (the rest stays journaled for the next process or ``mlflow-workspace sync``), on a
rejected credential that cannot heal, or on SIGTERM. Credentials: the parent's environment,
which includes ``MLFLOW_TRACKING_TOKEN`` when the parent had a token (never on the command line).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.file_lock import ProcessLock
from mlflow_workspace_plugin.local_workspace import HOME_ENV, default_home
from mlflow_workspace_plugin.reliable import settings
from mlflow_workspace_plugin.reliable.journal import journal_files, workspace_dir
from mlflow_workspace_plugin.uri import WorkspaceScope, parse_workspace_uri

LOCK_NAME = "background-sender.lock"
PARENT_EXIT_WAIT = 120.0  # the parent is in its exit handlers: it should be gone in a moment


def log_path(scope: WorkspaceScope, home: Path | None = None) -> Path:
    """``<home>/logs/background-sender-<workspace hash>.log``."""
    return (home or default_home()) / "logs" / f"background-sender-{workspace_dir(scope, home).name}.log"


def start(scope: WorkspaceScope, tracking_uri: str, env: dict[str, str]) -> tuple[int, Path]:
    """Start the detached sender for ``scope`` (returns its pid and log file)."""
    home = default_home()
    log = log_path(scope, home)
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    child_env = {**os.environ, **env, HOME_ENV: str(home), "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        os.chmod(log, 0o600)
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow_workspace_plugin.reliable.background", "--tracking-uri", tracking_uri,
             "--parent", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=child_env, close_fds=True,
            start_new_session=True, cwd=str(home) if home.is_dir() else None)
    return process.pid, log


def has_orphans(directory: Path) -> bool:
    """True if some journal in ``directory`` belongs to no running process."""
    for path in journal_files(directory):
        lock = ProcessLock.try_acquire(path.with_suffix(".lock"))
        if lock is not None:
            lock.release()
            if path.exists():
                return True
    return False


def _alive(pid: int) -> bool:
    return process_tree.running(pid)  # a zombie (exited, not yet reaped) counts as gone


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [pid {os.getpid()}] {message}", flush=True)


def run(tracking_uri: str, parent: int | None, stop: threading.Event) -> int:
    """Send the workspace's orphaned journals; 0 when nothing is left, 1 otherwise."""
    from mlflow_workspace_plugin.reliable.replay import replay_directory

    scope = parse_workspace_uri(tracking_uri)
    directory = workspace_dir(scope)
    deadline = time.monotonic() + settings.retry_timeout()
    waited_until = time.monotonic() + PARENT_EXIT_WAIT
    while parent and _alive(parent) and time.monotonic() < waited_until and not stop.is_set():
        time.sleep(0.05)
    _log(f"started for workspace {scope.workspace_name!r} at {scope.host}; journal folder {directory}; "
         f"retrying for up to {settings.retry_timeout():g} s ({settings.RETRY_TIMEOUT_ENV})")
    while not stop.is_set():
        lock = ProcessLock.try_acquire(directory / LOCK_NAME) if directory.is_dir() else None
        if lock is None:
            _log("another background sender is already sending this workspace's journals; exiting.")
            return 0
        try:
            report = replay_directory(directory, stop, scope, deadline=deadline)
        finally:
            lock.release(delete=True)
        for message in report.quarantined:
            _log(message)
        _log(f"{report.sent} values sent, {len(report.rejected)} rejected, {report.remaining} still journaled "
             f"({report.journals} journal(s)).")
        for error in report.rejected:
            _log(f"rejected: {error.message}")
        for problem in report.problems:
            _log(f"problem: {problem}")
        if report.remaining or report.problems:
            _log("gave up for now: the rest stays journaled and is sent by the next process that uses "
                 "this workspace, or by `mlflow-workspace sync`.")
            return 1
        if not has_orphans(directory) or time.monotonic() >= deadline:
            break  # a journal orphaned while we held the lock is picked up in the next round
    _log("done: nothing left to send; exiting.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--parent", type=int, default=None)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        return run(args.tracking_uri, args.parent, stop)
    except Exception as exc:  # the log is the only place anyone will look
        _log(f"failed: {type(exc).__name__}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
