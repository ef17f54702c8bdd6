"""``RemoteRun``: the SubmittedRun of a run executing as a job on a compute target.

Same contract as :class:`~mlflow_workspace_plugin.compute.local.LocalRun`: a watcher
thread follows the job (and echoes its log live when ``echo``), ``wait()`` returns True iff the run
FINISHED and raises ``ExecutionException`` with the log tail when ``raise_on_failure``,
``get_status()`` is ``RUNNING`` until the end, ``cancel()`` stops the job and ends the run KILLED.

The job's runner sets the run's final status itself; when the job ended without it doing so
(runtime env failure, interpreter without the plugin, SIGKILL) the watcher sets it from the job
state: SUCCEEDED / FAILED / STOPPED -> FINISHED / FAILED / KILLED. Unlike local runs, a remote run
keeps running when the submitting process exits.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import TYPE_CHECKING

from mlflow import MlflowClient

from mlflow_workspace_plugin.compute.handles import WatchedRun
from mlflow_workspace_plugin.compute.job_api import JobInfo, JobState, first_lines

if TYPE_CHECKING:
    from mlflow_workspace_plugin.compute.base import Launch
    from mlflow_workspace_plugin.compute.remote import RemoteExecutor

_logger = logging.getLogger("mlflow.projects.azureml")
POLL_SECONDS = 0.2            # first polls; the interval grows to POLL_MAX_SECONDS on long jobs
POLL_MAX_SECONDS = 1.0
LOST_CONTACT_SECONDS = 60.0   # status requests failing this long -> the run is FAILED
STOP_TIMEOUT_SECONDS = 30.0   # cancel(): how long the job may take to report STOPPED
TAIL_LINES = 20
_PLUGIN_HINT = (
    "The job's Python environment cannot import mlflow_workspace_plugin: install the plugin on the "
    "cluster (in its image, or list it under the compute target's \"extra_pip\"), or point the "
    "target's \"python\" setting at an interpreter that has it."
)


def missing_module_hints(tail: str, where: str) -> list[str]:
    """What a ``No module named 'x'`` in the job log means: the plugin missing on the cluster, or a
    package of the user's code (the runner's own command line names the plugin: never match on that)."""
    missing = list(dict.fromkeys(re.findall(r"No module named '([\w.]+)'", tail)))
    if any(name.split(".")[0] == "mlflow_workspace_plugin" for name in missing):
        return [_PLUGIN_HINT]
    return [f"The job's code imports {name!r}, which is not installed in the job's Python environment on {where}: "
            "list its package in the job's environment (conda_file pip dependencies) or in the compute target's "
            "\"extra_pip\"" for name in missing]


class RemoteRun(WatchedRun):
    """The run of ``launch`` executing as job ``job_id`` through ``adapter``."""

    def __init__(self, adapter: RemoteExecutor, job_id: str, launch: Launch) -> None:
        super().__init__(launch.run_id, launch.raise_on_failure, MlflowClient(launch.tracking_uri), launch.name)
        self._adapter = adapter
        self._job_id = job_id
        self._echo = launch.stream_output
        self._lock = threading.Lock()
        self._stop_polling = threading.Event()
        self._cancelled = threading.Event()
        self._info = JobInfo(JobState.PENDING)
        self._log_text = ""
        self._log_offset = 0
        self._error: str | None = None
        self._watcher = threading.Thread(target=self._watch, name=f"mlflow-ws-job-{launch.run_id[:8]}", daemon=True)
        self._watcher.start()
        self._arm_timeout(launch.timeout_seconds)

    # ---------------------------------------------------------------- SubmittedRun API
    @property
    def job_id(self) -> str:
        return self._job_id

    @property
    def job_state(self) -> JobState:
        """The job's last observed state (PENDING / RUNNING / SUCCEEDED / FAILED / STOPPED)."""
        return self._info.state

    def cancel(self) -> None:
        """Stop the job, wait (bounded) until it is STOPPED, end the run KILLED."""
        self._cancelled.set()
        if self._done.is_set():
            return
        try:
            self._adapter.request_stop(self._job_id)
        except Exception as exc:
            _logger.warning("mlflow-workspace: stopping job %s failed: %s", self._job_id, exc)
        if not self._done.wait(STOP_TIMEOUT_SECONDS):
            self._error = f"job {self._job_id} did not report STOPPED within {STOP_TIMEOUT_SECONDS:.0f} s"
            self._finish(JobInfo(JobState.STOPPED, message=self._error))

    def download_outputs(self, destination) -> str:
        """Download the run's ``outputs/`` (uploaded by the job) into ``destination``."""
        return str(self._adapter.fetch_outputs(self._run_id, destination, self._client.tracking_uri))

    # ---------------------------------------------------------------- details
    def failure_message(self) -> str:
        info = self._info
        where = f"compute target {self._adapter.target.name!r} ({self._adapter.describe()})"
        if self._final_status == "KILLED":
            return f"Run (ID '{self._run_id}') was cancelled{self.cancel_text()}; job {self._job_id} on {where} stopped"
        code = f" with exit code {info.exit_code}" if info.exit_code is not None else ""
        cause = f": {info.cause}" if info.cause else ""
        lines = [f"Run (ID '{self._run_id}') failed on {where}: job {self._job_id} ended {info.state.value}{code}"
                 f"{cause}."]
        if self._error:
            lines.append(self._error)
        if info.error_type and "RUNTIME_ENV" in info.error_type.upper():
            lines.append(f"The job's runtime environment could not be built ({info.error_type}):\n"
                         f"{runtime_env_error(info.message)}")
        tail = self.log_tail()
        if tail:
            lines.append(f"Last lines of the job log:\n{tail}")
        elif info.message and not info.error_type:
            lines.append(first_lines(info.message))
        lines.extend(missing_module_hints(tail, where))
        return "\n".join(lines)

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join([line for line in self._log_text.splitlines() if line.strip()][-lines:])

    def _watch(self) -> None:
        started = last_ok = time.monotonic()
        while not self._stop_polling.is_set():
            try:
                info = self._adapter.status(self._job_id)
            except Exception as exc:  # transient: retry until LOST_CONTACT_SECONDS
                if time.monotonic() - last_ok > LOST_CONTACT_SECONDS:
                    self._error = (f"lost contact with {self._adapter.describe()} for "
                                   f"{LOST_CONTACT_SECONDS:.0f} s: {exc}")
                    self._finish(JobInfo(JobState.FAILED, message=self._error))
                    return
                self._stop_polling.wait(POLL_MAX_SECONDS)
                continue
            last_ok = time.monotonic()
            self._info = info
            if self._echo:
                self._pump_logs()
            if info.state.terminal:
                self._finish(info)
                return
            self._stop_polling.wait(min(POLL_MAX_SECONDS, POLL_SECONDS + (time.monotonic() - started) / 60))

    def _pump_logs(self) -> None:
        def write(text: str) -> None:
            if not self._echo:
                return
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except (OSError, ValueError):  # console closed (e.g. at interpreter exit)
                self._echo = False

        try:
            self._log_offset, self._log_text = self._adapter.stream_logs(self._job_id, write, self._log_offset)
        except Exception as exc:
            _logger.debug("mlflow-workspace: reading logs of job %s failed: %s", self._job_id, exc)

    def _finish(self, info: JobInfo) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._stop_polling.set()
            self._disarm_timeout()
            self._info = info
            self._pump_logs()  # the rest of the log (and the tail for errors) even when not echoing
            status = info.state.run_status
            if self._cancelled.is_set() and status != "FINISHED":
                status = "KILLED"
            self._reconcile_run(status)
            self._final_status = status
            self._done.set()
        if status == "FAILED" and not self._raise_on_failure:  # else wait() raises it
            _logger.error("=== %s ===", self.failure_message())

    def _reconcile_run(self, status: str) -> None:
        """Set the run's final status if the job's runner did not get to it."""
        try:
            current = self._client.get_run(self._run_id).info.status
            if current in ("RUNNING", "SCHEDULED"):
                self._client.set_terminated(self._run_id, status)
        except Exception as exc:
            _logger.warning("mlflow-workspace: could not set run %s to %s: %s", self._run_id, status, exc)


def runtime_env_error(message: str, lines: int = 8) -> str:
    """The useful end of a runtime-env failure (e.g. pip's own error), not Ray's traceback."""
    text = message.strip()
    for marker in ("Last 50 lines of stdout:", "Last 50 lines of stderr:"):
        if marker in text:
            text = text.split(marker, 1)[1]
    return "\n".join(line.rstrip() for line in text.strip().splitlines()[-lines:])
