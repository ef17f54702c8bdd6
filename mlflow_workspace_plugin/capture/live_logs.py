"""Live upload of a running run's console log and ``./logs`` (the seeds' real-time logs)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from mlflow import MlflowClient

from mlflow_workspace_plugin.capture.uploads import files_changed_since, upload_log
from mlflow_workspace_plugin.env_settings import env_number

LOG_SYNC_ENV = "MLFLOW_WORKSPACE_LOG_SYNC_SECONDS"
DEFAULT_LOG_SYNC_SECONDS = 10.0


def log_sync_interval() -> float | None:
    """Seconds between live log uploads (``$MLFLOW_WORKSPACE_LOG_SYNC_SECONDS``); None = off (0)."""
    return env_number(LOG_SYNC_ENV, DEFAULT_LOG_SYNC_SECONDS) or None


class LiveLogSync:
    """While a run is going, re-upload its console log and the files changed under ``./logs``
    every ``interval`` seconds, so the workspace shows progress before the run ends."""

    def __init__(self, client: MlflowClient, run_id: str, log_paths: list[Path], work_dir: Path,
                 since: float, interval: float) -> None:
        self._client, self._run_id = client, run_id
        self._log_paths, self._logs_dir = log_paths, work_dir / "logs"  # log_paths may grow
        self._work_dir, self._since, self._interval = work_dir, since, interval
        self._log_sizes: dict[Path, int] = {}
        self._uploaded: dict[Path, int] = {}
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name=f"mlflow-ws-logs-{run_id[:8]}", daemon=True)

    def start(self) -> LiveLogSync:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sync_once()
            except Exception as exc:  # progress upload is best effort; the final upload is not
                if not self._warned:
                    self._warned = True
                    print(f"mlflow-workspace: live log upload for run {self._run_id} failed ({exc}); "
                          "the logs are uploaded when the run ends", file=sys.stderr)

    def sync_once(self) -> None:
        for log_path in list(self._log_paths):
            size = log_path.stat().st_size if log_path.is_file() else -1
            if size != self._log_sizes.get(log_path, -1):
                upload_log(self._client, self._run_id, log_path)
                self._log_sizes[log_path] = size
        for path in files_changed_since(self._logs_dir, self._since):
            stamp = path.stat().st_mtime_ns
            if self._uploaded.get(path) != stamp:
                rel_parent = path.parent.relative_to(self._work_dir).as_posix()
                self._client.log_artifact(self._run_id, str(path), artifact_path=rel_parent)
                self._uploaded[path] = stamp
