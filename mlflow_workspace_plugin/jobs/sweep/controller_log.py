"""The sweep's controller log: ``azureml-logs/hyperdrive.txt`` on the parent run, in the service's style.

One line per event, ``[<UTC time>][<COMPONENT>][<LEVEL>]<message>``, components as in the service's
``hyperdrive.txt``: ``GENERATOR`` (what was sampled), ``SCHEDULER`` (which trial started as which run),
``EARLY_TERMINATION`` (which trial was cancelled and the numbers that decided it), ``CONTROLLER``
(limits, cancels, the end and the best trial). The file is uploaded to the parent run every
``upload_every`` seconds while it changes, and once more at the end; it is also the parent's console log
(``user_logs/std_log.txt``), so ``mlflow-workspace job stream`` of a sweep follows it.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient

from mlflow_workspace_plugin.capture.names import LOG_ARTIFACT_DIR, LOG_ARTIFACT_NAME

ARTIFACT_DIR = "azureml-logs"
FILE_NAME = "hyperdrive.txt"
ARTIFACT_PATH = f"{ARTIFACT_DIR}/{FILE_NAME}"

_logger = logging.getLogger("mlflow.projects.azureml")


def timestamp(moment: float | None = None) -> str:
    """``2021-05-20T10:00:00.123456Z`` for ``moment`` (default: now)."""
    when = datetime.fromtimestamp(time.time() if moment is None else moment, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ControllerLog:
    """Appends timestamped lines to ``folder/<file_name>`` (``hyperdrive.txt`` for sweeps) and uploads it
    to ``run_id`` under ``azureml-logs/``."""

    def __init__(self, client: MlflowClient, run_id: str, folder: Path, *, echo: bool = False,
                 upload_every: float | None = 10.0, file_name: str = FILE_NAME) -> None:
        self._client, self._run_id = client, run_id
        self.path = Path(folder) / file_name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._console_copy = Path(folder) / LOG_ARTIFACT_DIR / LOG_ARTIFACT_NAME
        self._console_copy.parent.mkdir(exist_ok=True)
        self._echo = echo
        self._upload_every = upload_every
        self._lock = threading.Lock()
        self._dirty = False
        self._last_upload = time.monotonic()

    def write(self, component: str, message: str, level: str = "INFO") -> None:
        line = f"[{timestamp()}][{component}][{level}]{message}"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
            self._dirty = True
        if self._echo:
            print(line, file=sys.stderr, flush=True)

    def generator(self, message: str) -> None:
        self.write("GENERATOR", message)

    def scheduler(self, message: str, level: str = "INFO") -> None:
        self.write("SCHEDULER", message, level)

    def early_termination(self, message: str) -> None:
        self.write("EARLY_TERMINATION", message)

    def controller(self, message: str, level: str = "INFO") -> None:
        self.write("CONTROLLER", message, level)

    def lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines()

    def upload_if_due(self) -> None:
        """Upload when something changed and ``upload_every`` seconds have passed since the last upload."""
        if self._upload_every and self._dirty and time.monotonic() - self._last_upload >= self._upload_every:
            self.upload()

    def upload(self) -> None:
        """Upload the log now (a failed upload is reported and retried at the next one)."""
        with self._lock:
            self._dirty = False
            self._last_upload = time.monotonic()
        try:
            with self._lock:
                shutil.copyfile(self.path, self._console_copy)
            self._client.log_artifact(self._run_id, str(self.path), ARTIFACT_DIR)
            self._client.log_artifact(self._run_id, str(self._console_copy), LOG_ARTIFACT_DIR)
        except Exception as error:  # the sweep matters more than its log
            self._dirty = True
            _logger.warning("mlflow-workspace: could not upload the controller log %s/%s: %s", ARTIFACT_DIR,
                            self.path.name, error)


__all__ = ["ARTIFACT_DIR", "ARTIFACT_PATH", "FILE_NAME", "ControllerLog", "timestamp"]
