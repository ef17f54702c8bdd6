"""Job-side runner: runs a launch's command inside a remote job, captured like a local run.

    python -m mlflow_workspace_plugin.compute.job_runner -- '<shell command>'

Needs ``MLFLOW_RUN_ID`` and ``MLFLOW_TRACKING_URI`` (plus any tracking auth) in its environment.
In the job's working directory (for Ray: an extracted copy of the snapshot, *shared* by jobs with
identical sources) it

1. copies the source into a private scratch folder, so runs never see each other's outputs;
2. runs the command there with bash (once per process of a distributed run, as listed in
   ``$MLFLOW_WORKSPACE_PROCESSES``), this interpreter's folder first on PATH (so ``python`` in the
   command is the interpreter that has MLflow and the plugin);
3. captures it with :class:`~mlflow_workspace_plugin.capture.session.RunCapture`, exactly as local
   runs are captured: console tee (to the job's driver log and ``user_logs/std_log.txt``), live
   logs, the source as ``snapshot/``, ``./outputs`` and ``./logs``, the final status; a SIGTERM /
   SIGINT (Ray's ``stop_job``) forwards to the command and ends the run KILLED;
4. exits with the command's exit code, after one line saying the run's final status and the
   runner's own time: from its process start to the command's start, and from the command's end
   to the final status (what the workspace adds to a job; ``benchmarks/remote.py`` reads it).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.capture.links import restore_links
from mlflow_workspace_plugin.capture.names import make_run_folders
from mlflow_workspace_plugin.compute.process_set import PROCESSES_ENV, ProcessSet, decode
from mlflow_workspace_plugin.compute.sealed_secrets import unseal_into_environment

KILLED_EXIT_CODE = 128 + signal.SIGTERM


class _Stop:
    """Records a stop signal and forwards it to the command's processes."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.processes: ProcessSet | None = None

    def __call__(self, signum, frame) -> None:
        self.requested.set()
        if self.processes is not None:
            self.processes.signal(signal.SIGTERM)


def parse_command(argv: list[str]) -> str:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if len(argv) != 1 or not argv[0].strip():
        raise SystemExit("usage: python -m mlflow_workspace_plugin.compute.job_runner -- '<shell command>'")
    return argv[0]


def child_env() -> dict[str, str]:
    from mlflow_workspace_plugin.compute.interpreter import interpreter_first_on_path

    env = interpreter_first_on_path(dict(os.environ))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def seconds_since_process_start() -> float | None:
    """How long ago this process was started (None when the system does not say)."""
    started = process_tree.started_at()
    return None if started is None else time.time() - started


def overhead_line(run_id: str, status: str, before: float | None, after: float) -> str:
    """The runner's last line: final status and its own time around the command."""
    head = f"{before:.2f} s before the command, " if before is not None else ""
    return f"=== mlflow-workspace: run {run_id} {status}; job runner overhead: {head}{after:.2f} s after it ==="


def main(argv: list[str] | None = None) -> int:
    age_at_start = seconds_since_process_start()
    begun = time.monotonic()
    command = parse_command(sys.argv[1:] if argv is None else argv)
    run_id = os.environ.get("MLFLOW_RUN_ID")
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not run_id or not tracking_uri:
        raise SystemExit("mlflow-workspace job runner: MLFLOW_RUN_ID and MLFLOW_TRACKING_URI must be set")
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    source = Path.cwd()
    unseal_into_environment(source)  # credentials sent sealed, never in the job's env vars
    scratch = Path(tempfile.mkdtemp(prefix=f"mlflow-job-{run_id[:8]}-"))
    work_dir = scratch / "project"
    shutil.copytree(source, work_dir, symlinks=True)
    restore_links(work_dir)  # Ray extracts the package's links as plain files
    make_run_folders(work_dir)  # ./outputs and ./logs exist when the command starts, as on Azure ML
    started = time.time()
    print(f"=== mlflow-workspace: running {command!r} for run {run_id} ===", file=sys.stderr, flush=True)
    processes = ProcessSet(command, work_dir, child_env(), decode(os.environ.get(PROCESSES_ENV)), mark=run_id)
    before = None if age_at_start is None else age_at_start + time.monotonic() - begun
    stop.processes = processes
    if stop.requested.is_set():  # a stop that arrived before the command existed
        stop(signal.SIGTERM, None)
    outcome: list = []  # [exit code, when the command ended]: a short command may end during the imports
    waiter = threading.Thread(target=lambda: outcome.extend((processes.wait(), time.monotonic())),
                              name="mlflow-ws-command", daemon=True)
    waiter.start()

    from mlflow import MlflowClient  # imported while the command starts

    from mlflow_workspace_plugin.capture.live_logs import log_sync_interval
    from mlflow_workspace_plugin.capture.session import RunCapture

    capture = RunCapture(MlflowClient(tracking_uri), run_id, work_dir, scratch, echo=True,
                         log_sync_seconds=log_sync_interval(), snapshot_dir=source, console=sys.stdout,
                         started_at=started)
    for proc, spec in zip(processes.procs, processes.specs, strict=True):
        capture.attach(proc, spec.log_name)
    waiter.join()
    code, ended = outcome
    status = capture.finish(code, cancelled=stop.requested.is_set())
    print(overhead_line(run_id, status, before, time.monotonic() - ended), file=sys.stderr, flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return KILLED_EXIT_CODE if status == "KILLED" else code


def exit_without_teardown(code: int) -> None:
    """Exit as the interpreter would (wait for non-daemon threads, run atexit hooks such as the
    journal's flush, flush the console) but skip tearing down every loaded module: with MLflow
    loaded that teardown alone takes 1-2 s, between the final status and Ray seeing the job end."""
    import atexit

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_without_teardown(main())
