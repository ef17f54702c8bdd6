"""What the backend adds to a run: console log tee, snapshot upload, ``./outputs`` and ``./logs``."""

from __future__ import annotations

import collections
import os
import shutil
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from mlflow import MlflowClient

from mlflow_workspace_plugin.env_settings import env_number
from mlflow_workspace_plugin.projects.snapshot import Snapshot

LOG_ARTIFACT_DIR = "user_logs"
LOG_ARTIFACT_NAME = "std_log.txt"
SNAPSHOT_ARTIFACT_DIR = "snapshot"
CAPTURED_FOLDERS = ("outputs", "logs")
TAIL_LINES = 20


class LogTee:
    """Copies a child's stdout and stderr, line by line, to the console and one log file,
    keeping the last lines of stderr for error messages."""

    def __init__(self, log_path: Path, echo: bool) -> None:
        self.log_path = log_path
        self.echo = echo
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._lock = threading.Lock()
        self._log = open(log_path, "w", encoding="utf-8", errors="replace")
        self._threads: list[threading.Thread] = []

    def follow(self, stream: IO[bytes], console: IO[str], is_stderr: bool) -> None:
        thread = threading.Thread(target=self._pump, args=(stream, console, is_stderr), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pump(self, stream: IO[bytes], console: IO[str], is_stderr: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            with self._lock:
                self._log.write(line)
                self._log.flush()
                if is_stderr and line.strip():
                    self.stderr_tail.append(line.rstrip("\n"))
            if self.echo:
                try:
                    console.write(line)
                    console.flush()
                except (OSError, ValueError):  # console closed (e.g. at interpreter exit)
                    self.echo = False
        stream.close()

    def close(self, timeout: float = 10.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
        with self._lock:
            self._log.close()

    def tail_text(self) -> str:
        return "\n".join(self.stderr_tail)


def console_streams() -> tuple[IO[str], IO[str]]:
    return sys.stdout, sys.stderr


def stage_snapshot(snapshot: Snapshot, destination: Path) -> Path:
    """Copy the snapshot's files into ``destination`` (so later edits don't change it)."""
    for rel in snapshot.files:
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(snapshot.root / rel, target)
    return destination


def files_changed_since(folder: Path, since: float) -> Iterable[Path]:
    """Files under ``folder`` created or modified at or after ``since`` (epoch seconds)."""
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.rglob("*") if path.is_file() and path.stat().st_mtime >= since
    )


def upload_run_folders(client: MlflowClient, run_id: str, work_dir: Path, since: float) -> list[str]:
    """Upload files the run wrote under ``./outputs`` and ``./logs``; return their artifact paths."""
    uploaded: list[str] = []
    for name in CAPTURED_FOLDERS:
        folder = work_dir / name
        for path in files_changed_since(folder, since):
            rel_parent = path.parent.relative_to(work_dir).as_posix()
            client.log_artifact(run_id, str(path), artifact_path=rel_parent)
            uploaded.append(f"{rel_parent}/{path.name}")
    return uploaded


def upload_log(client: MlflowClient, run_id: str, log_path: Path) -> None:
    if log_path.is_file():
        client.log_artifact(run_id, str(log_path), artifact_path=LOG_ARTIFACT_DIR)


def upload_snapshot(client: MlflowClient, run_id: str, staged: Path) -> None:
    if any(staged.iterdir()):
        client.log_artifacts(run_id, str(staged), artifact_path=SNAPSHOT_ARTIFACT_DIR)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def mtime_floor(timestamp: float) -> float:
    """Filesystems store mtimes coarsely; allow for it when comparing with the run start."""
    return timestamp - (2.0 if os.name == "nt" else 0.05)


LOG_SYNC_ENV = "MLFLOW_WORKSPACE_LOG_SYNC_SECONDS"
DEFAULT_LOG_SYNC_SECONDS = 10.0


def log_sync_interval() -> float | None:
    """Seconds between live log uploads (``$MLFLOW_WORKSPACE_LOG_SYNC_SECONDS``); None = off (0)."""
    return env_number(LOG_SYNC_ENV, DEFAULT_LOG_SYNC_SECONDS) or None


class LiveLogSync:
    """While a run is going, re-upload its console log and the files changed under ``./logs``
    every ``interval`` seconds, so the workspace shows progress before the run ends."""

    def __init__(self, client: MlflowClient, run_id: str, log_path: Path, work_dir: Path,
                 since: float, interval: float) -> None:
        self._client, self._run_id = client, run_id
        self._log_path, self._logs_dir = log_path, work_dir / "logs"
        self._work_dir, self._since, self._interval = work_dir, since, interval
        self._log_size = -1
        self._uploaded: dict[Path, int] = {}
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name=f"mlflow-ws-logs-{run_id[:8]}", daemon=True)

    def start(self) -> LiveLogSync:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
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
        size = self._log_path.stat().st_size if self._log_path.is_file() else -1
        if size != self._log_size:
            upload_log(self._client, self._run_id, self._log_path)
            self._log_size = size
        for path in files_changed_since(self._logs_dir, self._since):
            stamp = path.stat().st_mtime_ns
            if self._uploaded.get(path) != stamp:
                rel_parent = path.parent.relative_to(self._work_dir).as_posix()
                self._client.log_artifact(self._run_id, str(path), artifact_path=rel_parent)
                self._uploaded[path] = stamp
