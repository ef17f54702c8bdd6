"""``RunCapture``: everything the workspace adds to one running command, in one fixed order.

    (created)         ``./outputs`` and ``./logs`` exist in the working folder (as on Azure ML)
    attach(process)   follow its output pipe (tee to console + ``user_logs/<log name>``), start the
                      live upload of the logs and ``./logs``, start the snapshot upload
    finish(code)      stop live uploads, close the tees; if cancelled, record KILLED *first* (a
                      remote job is SIGKILLed a few seconds after SIGTERM); upload files written
                      under ``./outputs`` and ``./logs``, the console logs, wait for the snapshot;
                      then FINISHED (exit code 0) or FAILED

Capture problems never hide the run's own result: they are reported once and kept as ``error``.
Used by local runs and by the job runner inside remote jobs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mlflow import MlflowClient

from mlflow_workspace_plugin.capture.live_logs import LiveLogSync
from mlflow_workspace_plugin.capture.names import make_run_folders
from mlflow_workspace_plugin.capture.tee import LogTee
from mlflow_workspace_plugin.capture.uploads import (
    LOG_ARTIFACT_NAME,
    mtime_floor,
    upload_log,
    upload_run_folders,
    upload_snapshot,
)


def warn_on_stderr(message: str) -> None:
    print(f"mlflow-workspace: {message}", file=sys.stderr, flush=True)


class RunCapture:
    """Capture for run ``run_id`` whose command runs in ``work_dir``; logs are written to ``scratch``."""

    def __init__(self, client: MlflowClient, run_id: str, work_dir: Path, scratch: Path, *,
                 echo: bool = True, log_sync_seconds: float | None = None,
                 snapshot_dir: Path | None = None, console: IO[str] | None = None,
                 warn: Callable[[str], None] = warn_on_stderr, started_at: float | None = None) -> None:
        self.client, self.run_id = client, run_id
        self.work_dir, self.scratch = Path(work_dir), Path(scratch)
        self.echo, self.console = echo, console
        self.warn = warn
        self.error: str | None = None
        self.started_at = started_at if started_at is not None else time.time()
        self.tees: list[LogTee] = []
        self._log_paths: list[Path] = []
        self._live: LiveLogSync | None = None
        self._log_sync_seconds = log_sync_seconds
        self._snapshot_thread: threading.Thread | None = None
        make_run_folders(self.work_dir)  # before the command starts (remote: the job runner did it already)
        if snapshot_dir is not None:
            self._snapshot_thread = threading.Thread(
                target=self._guarded,
                args=("snapshot upload", upload_snapshot, client, run_id, snapshot_dir, self.progress),
                name=f"mlflow-ws-snapshot-{run_id[:8]}", daemon=True)
            self._snapshot_thread.start()

    @property
    def progress(self) -> bool | None:
        """Transfer progress bars: never when the run's output is not echoed (STREAM_OUTPUT off)."""
        return None if self.echo else False

    @property
    def since(self) -> float:
        return mtime_floor(self.started_at)

    def attach(self, process: subprocess.Popen, log_name: str = LOG_ARTIFACT_NAME) -> LogTee:
        """Follow ``process``'s output pipe (stdout with stderr merged into it)."""
        tee = LogTee(self.scratch / log_name, echo=self.echo)
        tee.follow(process.stdout, self.console or sys.stdout)
        self.tees.append(tee)
        self._log_paths.append(tee.log_path)
        if self._live is None and self._log_sync_seconds:
            self._live = LiveLogSync(self.client, self.run_id, self._log_paths, self.work_dir, self.since,
                                     self._log_sync_seconds).start()
        return tee

    def tail_text(self) -> str:
        return "\n\n".join(tee.tail_text() for tee in self.tees if tee.tail_text())

    def finish(self, exit_code: int, cancelled: bool = False, status: str | None = None) -> str:
        """Store what the run left and its final status (given, or decided by ``exit_code``)."""
        if self._live is not None:
            self._live.stop()
        for tee in self.tees:
            tee.close()
        if status is None:
            status = "KILLED" if cancelled else ("FINISHED" if exit_code == 0 else "FAILED")
        if status == "KILLED":
            self.set_status(status)
        self._guarded("outputs upload", upload_run_folders, self.client, self.run_id, self.work_dir, self.since,
                      self.progress)
        for tee in self.tees:
            self._guarded("log upload", upload_log, self.client, self.run_id, tee.log_path)
        if self._snapshot_thread is not None:
            self._snapshot_thread.join(300)
        if status != "KILLED":
            self.set_status(status)
        return status

    def set_status(self, status: str) -> None:
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception as exc:
            self.warn(f"could not set run {self.run_id} to {status}: {exc}")

    def _guarded(self, what: str, func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception as exc:  # capture must never hide the run's own result
            self.warn(f"{what} for run {self.run_id} failed: {exc}")
            self.error = self.error or f"{what} failed: {exc}"
