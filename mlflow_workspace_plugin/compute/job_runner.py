"""Job-side runner: runs a project's entry point inside a remote job and does the run's bookkeeping.

    python -m mlflow_workspace_plugin.compute.job_runner -- '<entry-point shell command>'

Needs ``MLFLOW_RUN_ID`` and ``MLFLOW_TRACKING_URI`` (plus any tracking auth) in its environment.
In the job's working directory (for Ray: an extracted copy of the snapshot, *shared* by jobs with
identical sources) it

1. copies the source into a private scratch folder, so runs never see each other's outputs;
2. runs the command there with bash, this interpreter's folder first on PATH (so ``python`` in the
   MLproject command is the interpreter that has MLflow and the plugin), teeing stdout / stderr to
   its own (the job's driver log) and to ``std_log.txt``;
3. uploads the source as ``snapshot/`` (while the command runs), then ``./outputs`` and ``./logs``
   files written during the run and ``user_logs/std_log.txt``;
4. ends the run FINISHED / FAILED by exit code, or KILLED on SIGTERM / SIGINT (Ray's ``stop_job``;
   the status is written first, since Ray sends SIGKILL a few seconds later);
5. exits with the command's exit code.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mlflow import MlflowClient

from mlflow_workspace_plugin.projects import capture

KILLED_EXIT_CODE = 128 + signal.SIGTERM


class _Stop:
    """Records a stop signal and forwards it to the command's process."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.proc: subprocess.Popen | None = None

    def __call__(self, signum, frame) -> None:
        self.requested.set()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass


def parse_command(argv: list[str]) -> str:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if len(argv) != 1 or not argv[0].strip():
        raise SystemExit("usage: python -m mlflow_workspace_plugin.compute.job_runner -- '<shell command>'")
    return argv[0]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def main(argv: list[str] | None = None) -> int:
    command = parse_command(sys.argv[1:] if argv is None else argv)
    run_id = os.environ.get("MLFLOW_RUN_ID")
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not run_id or not tracking_uri:
        raise SystemExit("mlflow-workspace job runner: MLFLOW_RUN_ID and MLFLOW_TRACKING_URI must be set")
    source = Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix=f"mlflow-job-{run_id[:8]}-"))
    work_dir = scratch / "project"
    shutil.copytree(source, work_dir, symlinks=True)
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print(f"=== mlflow-workspace: running {command!r} for run {run_id} ===", file=sys.stderr, flush=True)
    started = time.time()
    tee = capture.LogTee(scratch / capture.LOG_ARTIFACT_NAME, echo=True)
    proc = subprocess.Popen(["bash", "-c", command], cwd=work_dir, env=child_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stop.proc = proc
    if stop.requested.is_set():  # a stop that arrived before the command existed
        stop(signal.SIGTERM, None)
    tee.follow(proc.stdout, sys.stdout, is_stderr=False)
    tee.follow(proc.stderr, sys.stderr, is_stderr=True)

    client = MlflowClient(tracking_uri)
    interval = capture.log_sync_interval()
    live_logs = None if interval is None else capture.LiveLogSync(
        client, run_id, tee.log_path, work_dir, capture.mtime_floor(started), interval).start()
    snapshot = threading.Thread(target=_guarded, args=("snapshot upload", capture.upload_snapshot, client,
                                                       run_id, source), daemon=True)
    snapshot.start()
    code = proc.wait()
    if live_logs is not None:
        live_logs.stop()
    tee.close(timeout=5)
    if stop.requested.is_set():
        _set_status(client, run_id, "KILLED")  # first: Ray SIGKILLs us a few seconds after SIGTERM
        _guarded("log upload", capture.upload_log, client, run_id, tee.log_path)
        _guarded("outputs upload", capture.upload_run_folders, client, run_id, work_dir,
                 capture.mtime_floor(started))
        shutil.rmtree(scratch, ignore_errors=True)
        return KILLED_EXIT_CODE
    _guarded("outputs upload", capture.upload_run_folders, client, run_id, work_dir, capture.mtime_floor(started))
    _guarded("log upload", capture.upload_log, client, run_id, tee.log_path)
    snapshot.join(120)
    _set_status(client, run_id, "FINISHED" if code == 0 else "FAILED")
    shutil.rmtree(scratch, ignore_errors=True)
    return code


def _guarded(what: str, func, *args) -> None:
    """Capture must never hide the run's own result: report and carry on."""
    try:
        func(*args)
    except Exception as exc:
        print(f"mlflow-workspace: {what} failed: {exc}", file=sys.stderr, flush=True)


def _set_status(client, run_id: str, status: str) -> None:
    try:
        client.set_terminated(run_id, status)
    except Exception as exc:
        print(f"mlflow-workspace: could not set run {run_id} to {status}: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
