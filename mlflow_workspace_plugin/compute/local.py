"""Compute ``local``: the run's command as a child process of this one, with full run capture.

The command runs with ``bash -c`` in the source folder, in its own process group, with the
interpreter running the plugin first on PATH (so ``python`` in the command is this Python, the
"current environment" of ``env_manager=local``, even from an un-activated virtualenv). Like
MLflow's own local backend, an asynchronous local run ends with the process that launched it (the
run lifecycle's registry of live runs cancels it at exit).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from mlflow_workspace_plugin.capture.session import RunCapture
from mlflow_workspace_plugin.capture.uploads import stage_snapshot
from mlflow_workspace_plugin.compute.base import Executor, Launch
from mlflow_workspace_plugin.compute.environment import EnvironmentSpec
from mlflow_workspace_plugin.compute.handles import WatchedRun
from mlflow_workspace_plugin.compute.interpreter import interpreter_first_on_path
from mlflow_workspace_plugin.compute.local_control import cancel_local_run, record_processes
from mlflow_workspace_plugin.compute.process_set import ProcessSet

_logger = logging.getLogger("mlflow.projects.azureml")
TERMINATE_GRACE_SECONDS = 10.0


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

    def record_identity(self, client: MlflowClient, handle: WatchedRun) -> None:
        """This machine, the command's process groups and this launching process (see
        :mod:`.local_control`)."""
        record_processes(client, handle.run_id, handle.pids)

    def cancel_run(self, client: MlflowClient, run: Run, reason: str) -> str:
        return cancel_local_run(client, run, reason)


class LocalRun(WatchedRun):
    """The command of ``launch`` running as local process group(s), captured by :class:`RunCapture`."""

    def __init__(self, launch: Launch, command: str, env: dict[str, str]) -> None:
        client = MlflowClient(launch.tracking_uri)
        super().__init__(launch.run_id, launch.raise_on_failure, client, launch.name)
        self._cancelled = threading.Event()
        self._scratch = Path(tempfile.mkdtemp(prefix=f"mlflow-ws-{launch.run_id[:8]}-"))
        try:
            snapshot_dir = stage_snapshot(launch.snapshot, self._scratch / "snapshot")
            self._capture = RunCapture(client, launch.run_id, launch.source_dir, self._scratch,
                                       echo=launch.stream_output, log_sync_seconds=launch.log_sync_seconds,
                                       snapshot_dir=snapshot_dir, warn=_warn)
            _logger.info("=== Running command %r in run with ID %r ===", command, launch.run_id)
            self._processes = ProcessSet(command, launch.source_dir, env, launch.processes, mark=launch.run_id)
        except BaseException:
            shutil.rmtree(self._scratch, ignore_errors=True)
            raise
        try:
            for proc, spec in zip(self._processes.procs, self._processes.specs, strict=True):
                self._capture.attach(proc, spec.log_name)
            self._exit_code: int | None = None
            self._watcher = threading.Thread(target=self._watch, name=f"mlflow-ws-run-{launch.run_id[:8]}",
                                             daemon=True)
            self._watcher.start()
            self._arm_timeout(launch.timeout_seconds)
        except BaseException:  # e.g. Ctrl-C right after the start: never leave a process behind
            self._processes.kill()
            raise

    # ---------------------------------------------------------------- SubmittedRun API
    @property
    def pid(self) -> int:
        return self._processes.pids[0]

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(self._processes.pids)

    def cancel(self) -> None:
        """Stop the process tree(s) (SIGTERM, then SIGKILL) and wait for the run to end KILLED."""
        self._cancelled.set()
        self._processes.stop(TERMINATE_GRACE_SECONDS)
        self._done.wait(60)

    # ---------------------------------------------------------------- details
    @property
    def exit_code(self) -> int | None:
        return self._exit_code

    def failure_message(self) -> str:
        if self._final_status == "KILLED":
            return f"Run (ID '{self._run_id}') was cancelled{self.cancel_text()}"
        tail = self._capture.tail_text()
        detail = f"\nLast lines of output:\n{tail}" if tail else ""
        extra = f" ({self._capture.error})" if self._capture.error else ""
        return f"Run (ID '{self._run_id}') failed with exit code {self._exit_code}{extra}.{detail}"

    def _watch(self) -> None:
        try:
            self._exit_code = self._processes.wait()
            self._disarm_timeout()
            self._final_status = self._capture.finish(self._exit_code, cancelled=self._cancelled.is_set())
            if self._final_status == "FAILED" and not self._raise_on_failure:
                _logger.error("=== %s ===", self.failure_message())
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._done.set()


def _warn(message: str) -> None:
    _logger.warning("mlflow-workspace: %s", message)

