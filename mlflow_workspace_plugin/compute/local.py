"""Compute ``local``: the run's command as a child process of this one, with full run capture.

The command runs with ``bash -c`` in the source folder, in its own process group, with the
interpreter running the plugin first on PATH (so ``python`` in the command is this Python, the
"current environment" of ``env_manager=local``, even from an un-activated virtualenv). Like
MLflow's own local backend, an asynchronous local run ends with the process that launched it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

from mlflow import MlflowClient

from mlflow_workspace_plugin.capture.session import RunCapture
from mlflow_workspace_plugin.capture.uploads import stage_snapshot
from mlflow_workspace_plugin.compute.base import Executor, Launch
from mlflow_workspace_plugin.compute.environment import EnvironmentSpec
from mlflow_workspace_plugin.compute.handles import WatchedRun
from mlflow_workspace_plugin.compute.interpreter import interpreter_first_on_path

_logger = logging.getLogger("mlflow.projects.azureml")
TERMINATE_GRACE_SECONDS = 10.0
_active_runs: weakref.WeakSet[LocalRun] = weakref.WeakSet()


class LocalExecutor(Executor):
    """Runs launches on this machine."""

    type_name = "local"

    def check(self, environment: EnvironmentSpec, tracking_uri: str) -> None:
        if shutil.which("bash") is None:
            from mlflow.exceptions import ExecutionException

            raise ExecutionException("Local runs need bash on PATH, which was not found")

    def describe(self) -> str:
        return "this machine"

    def start(self, launch: Launch) -> LocalRun:
        prepared = launch.environment.prepare_local(launch.run_id)
        env = interpreter_first_on_path({**os.environ, **launch.run_env})
        return LocalRun(launch, prepared.wrap(launch.command), env)


class LocalRun(WatchedRun):
    """The command of ``launch`` running as a local process group, captured by :class:`RunCapture`."""

    def __init__(self, launch: Launch, command: str, env: dict[str, str]) -> None:
        client = MlflowClient(launch.tracking_uri)
        super().__init__(launch.run_id, launch.raise_on_failure, client)
        self._cancelled = threading.Event()
        self._scratch = Path(tempfile.mkdtemp(prefix=f"mlflow-ws-{launch.run_id[:8]}-"))
        try:
            snapshot_dir = stage_snapshot(launch.snapshot, self._scratch / "snapshot")
            self._capture = RunCapture(client, launch.run_id, launch.source_dir, self._scratch,
                                       echo=launch.stream_output, log_sync_seconds=launch.log_sync_seconds,
                                       snapshot_dir=snapshot_dir, warn=_warn)
            _logger.info("=== Running command %r in run with ID %r ===", command, launch.run_id)
            self._proc = subprocess.Popen(
                ["bash", "-c", command], cwd=launch.source_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )
        except BaseException:
            shutil.rmtree(self._scratch, ignore_errors=True)
            raise
        try:
            self._capture.attach(self._proc)
            self._watcher = threading.Thread(target=self._watch, name=f"mlflow-ws-run-{launch.run_id[:8]}",
                                             daemon=True)
            self._watcher.start()
            _active_runs.add(self)
            self._arm_timeout(launch.timeout_seconds)
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
            return f"Run (ID '{self._run_id}') was cancelled{self.cancel_text()}"
        tail = self._capture.tail_text()
        detail = f"\nLast lines of output:\n{tail}" if tail else ""
        extra = f" ({self._capture.error})" if self._capture.error else ""
        return f"Run (ID '{self._run_id}') failed with exit code {self._proc.returncode}{extra}.{detail}"

    def _signal_group(self, sig: int) -> None:
        if self._proc.poll() is not None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _watch(self) -> None:
        try:
            code = self._proc.wait()
            self._disarm_timeout()
            self._final_status = self._capture.finish(code, cancelled=self._cancelled.is_set())
            if self._final_status == "FAILED" and not self._raise_on_failure:
                _logger.error("=== %s ===", self.failure_message())
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._done.set()
            _active_runs.discard(self)


def _warn(message: str) -> None:
    _logger.warning("mlflow-workspace: %s", message)


@atexit.register
def _cancel_unfinished_runs() -> None:
    """Asynchronous runs end with the process that launched them (as with MLflow's local
    backend): stop them and record KILLED instead of leaving orphans and RUNNING runs."""
    for run in list(_active_runs):
        if run.get_status() == "RUNNING":
            run.cancel()
