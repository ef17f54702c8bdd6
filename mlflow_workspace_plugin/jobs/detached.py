"""Local jobs that outlive ``mlflow-workspace job create`` (without ``--stream``), as jobs on Azure ML do.

A local job's processes end with the Python process that launched them, so ``job create`` hands the
launch to a *supervisor*: this module, started in its own session with no terminal. It loads and submits
the job, tells the CLI the run id (or the error) through a pipe, then waits for the run to end; SIGTERM
(``job cancel``) cancels the run and records it KILLED. Its console is discarded: the job's log is the
run's ``user_logs/std_log.txt`` (``job stream``).

    python -m mlflow_workspace_plugin.jobs.detached --report-fd N -f job.yml --name NAME [--set k=v ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mlflow.exceptions import MlflowException

START_TIMEOUT_SECONDS = 600.0


def start_supervisor(file: str, overrides: Sequence[str], name: str, env_manager: str | None, *,
                     module: str = __name__, what: str = "job") -> dict:
    """Start the supervisor ``python -m <module>`` for the job (or sweep: ``what``) in ``file``; returns
    its report ``{"run_id", "name"}`` once the run exists, or raises :class:`MlflowException` with the
    supervisor's error."""
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", module, "--report-fd", str(write_end), "-f", str(Path(file).resolve()),
            "--name", name]
    for override in overrides:
        argv += ["--set", override]
    if env_manager:
        argv += ["--env-manager", env_manager]
    try:
        child = subprocess.Popen(argv, pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "r", encoding="utf-8") as report:
        text = report.read()  # ends when the supervisor closes its end (after the run exists, or on error)
    try:
        message = json.loads(text) if text.strip() else {}
    except ValueError:
        message = {}
    if "run_id" in message:
        return message
    if "error" in message:
        raise MlflowException(message["error"])
    code = child.wait(timeout=30)
    raise MlflowException(f"the {what}'s supervisor process ended (exit code {code}) before the {what} started")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlflow_workspace_plugin.jobs.detached")
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("-f", "--file", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--env-manager", default=None)
    args = parser.parse_args(argv)
    report = os.fdopen(args.report_fd, "w", encoding="utf-8")

    from mlflow import MlflowClient

    from mlflow_workspace_plugin.execution.control import mark_supervisor
    from mlflow_workspace_plugin.execution.foreground import sigterm_as_interrupt, wait_or_cancel
    from mlflow_workspace_plugin.jobs.loader import load_job
    from mlflow_workspace_plugin.jobs.submit import submit_job

    with sigterm_as_interrupt():
        try:
            job = load_job(args.file, args.overrides, name=args.name)
            handle = submit_job(job, stream=False, env_manager=args.env_manager)
            mark_supervisor(MlflowClient(handle.tracking_uri), handle.run_id)
        except MlflowException as exc:
            _send(report, {"error": exc.message})
            return 1
        except KeyboardInterrupt:
            _send(report, {"error": "the job's supervisor was stopped before the job started"})
            return 130
        except Exception as exc:  # anything else: the CLI shows it as one line
            _send(report, {"error": f"{type(exc).__name__}: {exc}"})
            return 1
        _send(report, {"run_id": handle.run_id, "name": handle.job_name})
        try:
            return 0 if wait_or_cancel(handle) else 1
        except KeyboardInterrupt:
            return 130


def _send(report, message: dict) -> None:
    try:
        report.write(json.dumps(message))
        report.close()
    except OSError:  # the CLI is gone: nobody to tell
        pass


if __name__ == "__main__":
    sys.exit(main())
