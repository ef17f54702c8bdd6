"""``mlflow-workspace job create -f job-sweep.yml``: a sweep in the foreground (``--stream``) or detached.

- ``--stream``: the controller runs in the CLI process and its log (``hyperdrive.txt``) is printed as it
  grows; Ctrl-C / SIGTERM cancels the sweep and every running trial; exit 0 (Completed), 1 (Failed), 130
  (Canceled).
- without ``--stream``: the controller runs in a detached supervisor (``python -m
  mlflow_workspace_plugin.jobs.sweep.commands``, own session, no terminal), so the sweep outlives the CLI
  like a job on Azure ML; the CLI prints the sweep's name once its parent run exists.

Either way ``mlflow-workspace job cancel -n <sweep>`` cancels it (the controller watches its parent run for
``azureml.cancel_reason``; the supervisor also treats SIGTERM as cancel).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.execution import CANCEL_REASON_TAG
from mlflow_workspace_plugin.jobs.job_names import generate_job_name
from mlflow_workspace_plugin.jobs.states import job_state
from mlflow_workspace_plugin.jobs.sweep.controller import SweepHandle, run_sweep
from mlflow_workspace_plugin.jobs.sweep.spec import SweepSpec, load_sweep

INTERRUPTED_EXIT_CODE = 130
INTERRUPTED_REASON = "interrupted (Ctrl-C / SIGTERM)"


def create_sweep(file_path: str, overrides: Sequence[str], name: str | None, *, stream: bool,
                 env_manager: str | None = None, on_start: Callable[[str], None] | None = None,
                 spec: SweepSpec | None = None) -> int:
    """``job create`` of a sweep; returns the exit code. ``on_start(parent_run_id)`` runs once the sweep exists."""
    spec = spec or load_sweep(file_path, overrides)  # bad input fails here, before anything starts
    if stream:
        return _run_in_foreground(spec, name, env_manager, on_start)
    report = start_supervisor(file_path, overrides, name or spec.name or generate_job_name(), env_manager)
    print(report["name"], flush=True)
    if on_start is not None:
        on_start(report["run_id"])
    return 0


def _run_in_foreground(spec, name: str | None, env_manager: str | None,
                       on_start: Callable[[str], None] | None) -> int:
    from mlflow_workspace_plugin.execution.control import mark_supervisor
    from mlflow_workspace_plugin.execution.foreground import sigterm_as_interrupt

    with sigterm_as_interrupt():
        try:
            handle = run_sweep(spec, stream=True, name=name, env_manager=env_manager)
        except KeyboardInterrupt:
            return INTERRUPTED_EXIT_CODE
        client = MlflowClient(handle.tracking_uri)
        try:
            mark_supervisor(client, handle.run_id)
            print(f"mlflow-workspace: sweep job {handle.name} (run {handle.run_id}) started", file=sys.stderr,
                  flush=True)
            if on_start is not None:
                on_start(handle.run_id)
            handle.wait()
        except KeyboardInterrupt:
            cancel_with_recorded_reason(handle, client)
    print(final_line(handle, client), file=sys.stderr, flush=True)
    return exit_code(handle.get_status())


def cancel_with_recorded_reason(handle: SweepHandle, client: MlflowClient) -> None:
    """Cancel after SIGTERM / Ctrl-C, keeping the reason ``job cancel`` put on the parent, if any."""
    try:
        reason = client.get_run(handle.run_id).data.tags.get(CANCEL_REASON_TAG)
    except Exception:
        reason = None
    handle.cancel_because(reason or INTERRUPTED_REASON)


def exit_code(status: str) -> int:
    return {"FINISHED": 0, "KILLED": INTERRUPTED_EXIT_CODE}.get(status, 1)


def final_line(handle: SweepHandle, client: MlflowClient) -> str:
    from mlflow_workspace_plugin.execution.summary import run_location

    status = handle.get_status()
    best = handle.best
    if best is not None:
        metric = handle.spec.objective.primary_metric
        outcome = f"best trial {handle.name}_{best.index} (run {best.trial_id}): {metric} {best.score:g}"
    else:
        outcome = f"no best trial (no trial logged '{handle.spec.objective.primary_metric}')"
    return (f"mlflow-workspace: sweep job {handle.name} {job_state(status)} (run {handle.run_id}); {outcome}; "
            f"to look at it, {run_location(client, handle.run_id)}")


# ------------------------------------------------------------------ detached supervisor
def start_supervisor(file: str, overrides: Sequence[str], name: str, env_manager: str | None) -> dict:
    """Start the sweep in a detached supervisor (this module); returns ``{"run_id", "name"}`` once its
    parent run exists, or raises :class:`MlflowException` with the supervisor's error."""
    from mlflow_workspace_plugin.jobs.detached import start_supervisor as start_detached

    return start_detached(file, overrides, name, env_manager, module=__name__, what="sweep")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("-f", "--file", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--env-manager", default=None)
    args = parser.parse_args(argv)
    report = os.fdopen(args.report_fd, "w", encoding="utf-8")

    from mlflow_workspace_plugin.execution.control import mark_supervisor
    from mlflow_workspace_plugin.execution.foreground import sigterm_as_interrupt

    with sigterm_as_interrupt():
        try:
            handle = run_sweep(load_sweep(args.file, args.overrides), name=args.name, env_manager=args.env_manager)
            client = MlflowClient(handle.tracking_uri)
            mark_supervisor(client, handle.run_id)
        except MlflowException as exc:
            _send(report, {"error": exc.message})
            return 1
        except KeyboardInterrupt:
            _send(report, {"error": "the sweep's supervisor was stopped before the sweep started"})
            return INTERRUPTED_EXIT_CODE
        except Exception as exc:  # anything else: the CLI shows it as one line
            _send(report, {"error": f"{type(exc).__name__}: {exc}"})
            return 1
        _send(report, {"run_id": handle.run_id, "name": handle.name})
        try:
            handle.wait()
        except KeyboardInterrupt:
            cancel_with_recorded_reason(handle, client)
    return exit_code(handle.get_status())


def _send(report, message: dict) -> None:
    try:
        report.write(json.dumps(message))
        report.close()
    except OSError:  # the CLI is gone: nobody to tell
        pass


if __name__ == "__main__":
    sys.exit(main())
