"""``job stream``: follow a job's console log artifact until its run ends (for jobs started elsewhere).

The log is ``user_logs/std_log.txt`` (a distributed job: every ``user_logs/std_log_process_<rank>.txt``,
with a ``==> name <==`` header when the output switches files, like ``tail -f``). It is re-uploaded while
the job runs every ``MLFLOW_WORKSPACE_LOG_SYNC_SECONDS`` (10 s), so output arrives in steps of that size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import IO

from mlflow import MlflowClient
from mlflow.entities import Run

from mlflow_workspace_plugin.capture.names import LOG_ARTIFACT_DIR, LOG_ARTIFACT_NAME
from mlflow_workspace_plugin.execution.control import launcher_gone
from mlflow_workspace_plugin.jobs.states import is_terminal

POLL_SECONDS = 1.0
ORPHAN_GRACE_SECONDS = 5.0


def follow_job_log(client: MlflowClient, run: Run, out: IO[str], poll_seconds: float = POLL_SECONDS) -> str:
    """Write the job's log to ``out`` as it grows; return the run's final MLflow status.

    A local job whose launching process is gone while its run still says RUNNING is reported as FAILED
    (nothing will ever end it) after a short grace period.
    """
    run_id = run.info.run_id
    offsets: dict[str, int] = {}
    shown: list[str | None] = [None]
    orphan_since: float | None = None
    with tempfile.TemporaryDirectory(prefix="mlflow-ws-stream-") as scratch:
        while True:
            current = client.get_run(run_id)
            status = current.info.status
            _pump(client, run_id, Path(scratch), offsets, shown, out)
            if is_terminal(status):
                return status
            if launcher_gone(current):
                orphan_since = orphan_since or time.monotonic()
                if time.monotonic() - orphan_since > ORPHAN_GRACE_SECONDS:
                    out.write(f"\nmlflow-workspace: the process running this job is gone; run {run_id} "
                              "was left RUNNING\n")
                    return "FAILED"
            time.sleep(poll_seconds)


def _pump(client: MlflowClient, run_id: str, scratch: Path, offsets: dict[str, int], shown: list[str | None],
          out: IO[str]) -> None:
    logs = _log_files(client, run_id)
    for path, size in logs:
        if size is not None and size <= offsets.get(path, 0):
            continue
        local = Path(client.download_artifacts(run_id, path, str(scratch)))
        data = local.read_bytes()
        start = offsets.get(path, 0)
        if len(data) <= start:
            continue
        if len(logs) > 1 and shown[0] != path:
            out.write(f"\n==> {path} <==\n")
            shown[0] = path
        out.write(data[start:].decode("utf-8", errors="replace"))
        out.flush()
        offsets[path] = len(data)


def _log_files(client: MlflowClient, run_id: str) -> list[tuple[str, int | None]]:
    entries = [entry for entry in client.list_artifacts(run_id, LOG_ARTIFACT_DIR) if not entry.is_dir]
    main = [e for e in entries if e.path == f"{LOG_ARTIFACT_DIR}/{LOG_ARTIFACT_NAME}"]
    chosen = main or sorted((e for e in entries if Path(e.path).name.startswith("std_log_process_")),
                            key=lambda e: _rank(e.path))
    return [(entry.path, entry.file_size) for entry in chosen]


def _rank(path: str) -> int:
    digits = Path(path).stem.rsplit("_", 1)[-1]
    return int(digits) if digits.isdigit() else 0
