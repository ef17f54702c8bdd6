"""``WatchedRun``: the SubmittedRun contract shared by local and remote project runs.

A watcher thread (in the subclass) decides the run's end: it sets ``_final_status`` (FINISHED /
FAILED / KILLED) and then ``_done``. Waiting uses an Event, not ``Thread.join``: a join
interrupted by Ctrl-C can leave the thread looking finished.
"""

from __future__ import annotations

import threading
from abc import abstractmethod

from mlflow.entities import RunStatus
from mlflow.exceptions import ExecutionException
from mlflow.projects.submitted_run import SubmittedRun


class WatchedRun(SubmittedRun):
    """``wait`` / ``get_status`` / ``run_id`` over a watcher-decided final status."""

    def __init__(self, run_id: str, raise_on_failure: bool) -> None:
        self._run_id = run_id
        self._raise_on_failure = raise_on_failure
        self._final_status: str | None = None
        self._done = threading.Event()

    @property
    def run_id(self) -> str:
        return self._run_id

    def wait(self) -> bool:
        """Block until the run has ended and its capture is stored; True iff FINISHED.
        When MLflow (synchronous run) or the CLI waits, a failure raises with its error tail."""
        while not self._done.wait(0.5):  # short waits keep Ctrl-C responsive
            pass
        if self._final_status != "FINISHED" and self._raise_on_failure:
            raise ExecutionException(self.failure_message())
        return self._final_status == "FINISHED"

    def get_status(self) -> str:
        if not self._done.is_set() or self._final_status is None:
            return RunStatus.to_string(RunStatus.RUNNING)
        return self._final_status

    @abstractmethod
    def failure_message(self) -> str:
        """Why the run did not finish (exit code / job state and the error tail)."""
