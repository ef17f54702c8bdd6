"""A project entry point running as a local child process, with full run capture."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path

from mlflow import MlflowClient

from mlflow_workspace_plugin.projects import capture
from mlflow_workspace_plugin.projects.snapshot import Snapshot
from mlflow_workspace_plugin.projects.watched_run import WatchedRun

_logger = logging.getLogger("mlflow.projects.azureml")
TERMINATE_GRACE_SECONDS = 10.0
_active_runs: weakref.WeakSet[LocalProjectRun] = weakref.WeakSet()


class LocalProjectRun(WatchedRun):
    """Runs ``command`` with ``bash -c`` in ``work_dir`` in its own process group.

    A watcher thread tees its output to the console and ``user_logs/std_log.txt`` (re-uploaded,
    with ``./logs``, every few seconds while the run goes), uploads the snapshot, ``./outputs`` and
    ``./logs``, then ends the MLflow run FINISHED / FAILED / KILLED.
    """

    def __init__(
        self,
        run_id: str,
        command: str,
        work_dir: str,
        env: dict[str, str],
        tracking_uri: str,
        snapshot: Snapshot | None,
        echo: bool = True,
        raise_on_failure: bool = False,
        log_sync_seconds: float | None = capture.DEFAULT_LOG_SYNC_SECONDS,
    ) -> None:
        super().__init__(run_id, raise_on_failure)
        self._client = MlflowClient(tracking_uri)
        self._work_dir = Path(work_dir)
        self._cancelled = threading.Event()
        self._error: str | None = None
        self._scratch = Path(tempfile.mkdtemp(prefix=f"mlflow-ws-{run_id[:8]}-"))
        self._tee = capture.LogTee(self._scratch / capture.LOG_ARTIFACT_NAME, echo=echo)
        self._snapshot_thread = self._start_snapshot_upload(snapshot)
        self.started_at = time.time()
        out, err = capture.console_streams()
        _logger.info("=== Running command %r in run with ID %r ===", command, run_id)
        self._proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=work_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        try:
            self._tee.follow(self._proc.stdout, out, is_stderr=False)
            self._tee.follow(self._proc.stderr, err, is_stderr=True)
            self._live_logs = None if not log_sync_seconds else capture.LiveLogSync(
                self._client, run_id, self._tee.log_path, self._work_dir, capture.mtime_floor(self.started_at),
                log_sync_seconds).start()
            self._watcher = threading.Thread(target=self._watch, name=f"mlflow-ws-run-{run_id[:8]}", daemon=True)
            self._watcher.start()
            _active_runs.add(self)
        except BaseException:  # e.g. Ctrl-C right after the start: never leave the process behind
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
            raise

    # ---------------------------------------------------------------- SubmittedRun API
    @property
    def pid(self) -> int:
        return self._proc.pid

    def cancel(self) -> None:
        """Stop the child process tree (SIGTERM, then SIGKILL) and wait for the run to end KILLED."""
        self._cancelled.set()
        self._signal_group(signal.SIGTERM)
        try:
            self._proc.wait(TERMINATE_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
        self._done.wait(60)

    # ---------------------------------------------------------------- details
    @property
    def exit_code(self) -> int | None:
        return self._proc.returncode

    def failure_message(self) -> str:
        if self._final_status == "KILLED":
            return f"Run (ID '{self._run_id}') was cancelled"
        tail = self._tee.tail_text()
        detail = f"\nLast lines of stderr:\n{tail}" if tail else ""
        extra = f" ({self._error})" if self._error else ""
        return f"Run (ID '{self._run_id}') failed with exit code {self._proc.returncode}{extra}.{detail}"

    def _signal_group(self, sig: int) -> None:
        if self._proc.poll() is not None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _start_snapshot_upload(self, snapshot: Snapshot | None) -> threading.Thread | None:
        if snapshot is None:
            return None
        staged = capture.stage_snapshot(snapshot, self._scratch / "snapshot")
        thread = threading.Thread(
            target=self._guarded, args=("snapshot upload", capture.upload_snapshot, self._client, self._run_id, staged),
            daemon=True,
        )
        thread.start()
        return thread

    def _guarded(self, what: str, func, *args) -> None:
        try:
            func(*args)
        except Exception as exc:  # capture must never hide the run's own result
            _logger.warning("mlflow-workspace: %s for run %s failed: %s", what, self._run_id, exc)
            self._error = self._error or f"{what} failed: {exc}"

    def _watch(self) -> None:
        try:
            self._finish(self._proc.wait())
        finally:
            self._done.set()
            _active_runs.discard(self)

    def _finish(self, code: int) -> None:
        if self._live_logs is not None:
            self._live_logs.stop()
        self._tee.close()
        if self._snapshot_thread is not None:
            self._snapshot_thread.join()
        self._guarded("outputs upload", capture.upload_run_folders, self._client, self._run_id,
                      self._work_dir, capture.mtime_floor(self.started_at))
        self._guarded("log upload", capture.upload_log, self._client, self._run_id, self._tee.log_path)
        if self._cancelled.is_set():
            status = "KILLED"
        elif code == 0:
            status = "FINISHED"
        else:
            status = "FAILED"
        try:
            self._client.set_terminated(self._run_id, status)
        except Exception as exc:
            _logger.warning("mlflow-workspace: could not set run %s to %s: %s", self._run_id, status, exc)
        self._final_status = status
        if status == "FAILED":
            _logger.error("=== %s ===", self.failure_message())
        capture.remove_tree(self._scratch)


@atexit.register
def _cancel_unfinished_runs() -> None:
    """Asynchronous runs end with the process that launched them (as with MLflow's local
    backend): stop them and record KILLED instead of leaving orphans and RUNNING runs."""
    for run in list(_active_runs):
        if run.get_status() == "RUNNING":
            run.cancel()
