"""``WatchedRun``: the one typed run handle every executor returns (MLflow's SubmittedRun contract).

Besides ``wait`` / ``get_status`` / ``cancel`` / ``run_id`` it names the run's door-given ``name``
(a job's name), its processes on this machine (``pids``: one per instance; empty for a remote run)
and, once ended, its ``exit_code`` (None when the compute does not report one).

A watcher thread (in the subclass) decides the run's end: it sets ``_final_status`` (FINISHED /
FAILED / KILLED) and then ``_done``. Waiting uses an Event, not ``Thread.join``: a join
interrupted by Ctrl-C can leave the thread looking finished. A run with a time limit is cancelled
when it expires and tagged with the reason.
"""

from __future__ import annotations

import threading
from abc import abstractmethod

from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import ExecutionException
from mlflow.projects.submitted_run import SubmittedRun

CANCEL_REASON_TAG = "azureml.cancel_reason"


class WatchedRun(SubmittedRun):
    """``wait`` / ``get_status`` / ``run_id`` over a watcher-decided final status."""

    def __init__(self, run_id: str, raise_on_failure: bool, client: MlflowClient, name: str | None = None) -> None:
        self._run_id = run_id
        self._name = name
        self._raise_on_failure = raise_on_failure
        self._client = client
        self._final_status: str | None = None
        self._done = threading.Event()
        self._timer: threading.Timer | None = None
        self.cancel_reason: str | None = None

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def tracking_uri(self) -> str:
        return self._client.tracking_uri

    @property
    def job_name(self) -> str | None:
        """The name the door gave the run (a YAML job's name), if any."""
        return self._name

    @property
    def pids(self) -> tuple[int, ...]:
        """The run's processes on this machine, one per instance (empty for a remote run)."""
        return ()

    @property
    def exit_code(self) -> int | None:
        """The command's exit code once it has ended, when the compute reports one."""
        return None

    def wait(self) -> bool:
        """Block until the run has ended and its capture is stored; True iff FINISHED.
        When MLflow (synchronous run) or the CLI waits, a failure raises with its error tail."""
        while not self._done.wait(0.5):  # short waits keep Ctrl-C responsive
            pass
        if self._final_status != "FINISHED" and self._raise_on_failure:
            raise ExecutionException(self.failure_message())
        return self._final_status == "FINISHED"

    def wait_for(self, timeout: float) -> bool:
        """True once the run has ended (within ``timeout`` seconds), without raising."""
        return self._done.wait(timeout)

    def get_status(self) -> str:
        if not self._done.is_set() or self._final_status is None:
            return RunStatus.to_string(RunStatus.RUNNING)
        return self._final_status

    def cancel_because(self, reason: str) -> None:
        """Cancel the run and record why on it (tag ``azureml.cancel_reason``)."""
        if self._done.is_set():
            return
        self.cancel_reason = reason
        try:
            self._client.set_tag(self._run_id, CANCEL_REASON_TAG, reason)
        except Exception:  # the cancel matters more than the tag
            pass
        self.cancel()

    def _arm_timeout(self, seconds: float | None) -> None:
        if not seconds:
            return
        self._timer = threading.Timer(seconds, self.cancel_because,
                                      args=(f"timeout: the run exceeded its limit of {seconds:g} s",))
        self._timer.daemon = True
        self._timer.start()

    def _disarm_timeout(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @abstractmethod
    def failure_message(self) -> str:
        """Why the run did not finish (exit code / job state and the error tail)."""

    def cancel_text(self) -> str:
        return f" ({self.cancel_reason})" if self.cancel_reason else ""
