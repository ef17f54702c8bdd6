"""``mlflow-workspace job create -f pipeline.yml``: a pipeline in the foreground (``--stream``) or detached.

As for sweeps (:mod:`mlflow_workspace_plugin.jobs.sweep.commands`): with ``--stream`` the controller runs in
the CLI process and prints its log; Ctrl-C / SIGTERM cancels the pipeline (exit 130); exit 0 when it
Completed, 1 otherwise. Without ``--stream`` a detached supervisor (this module) runs it and the CLI
prints the pipeline's name once its run exists. ``job cancel -n <pipeline>`` cancels it either way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.jobs.job_names import generate_job_name
from mlflow_workspace_plugin.jobs.pipeline.controller import PipelineHandle, run_pipeline
from mlflow_workspace_plugin.jobs.pipeline.spec import PipelineSpec, load_pipeline
from mlflow_workspace_plugin.jobs.states import job_state
from mlflow_workspace_plugin.jobs.sweep.commands import INTERRUPTED_EXIT_CODE, _send, cancel_with_recorded_reason
from mlflow_workspace_plugin.jobs.sweep.commands import exit_code as _exit_code


def create_pipeline(file_path: str, overrides: Sequence[str], name: str | None, *, stream: bool,
                    env_manager: str | None = None, on_start: Callable[[str], None] | None = None,
                    spec: PipelineSpec | None = None) -> int:
    """``job create`` of a pipeline; returns the exit code."""
    spec = spec or load_pipeline(file_path, overrides)  # bad input fails here, before anything starts
    if stream:
        return _run_in_foreground(spec, name, env_manager, on_start)
    from mlflow_workspace_plugin.jobs.detached import start_supervisor

    report = start_supervisor(file_path, overrides, name or spec.name or generate_job_name(), env_manager,
                              module=__name__, what="pipeline")
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
            handle = run_pipeline(spec, stream=True, name=name, env_manager=env_manager)
        except KeyboardInterrupt:
            return INTERRUPTED_EXIT_CODE
        client = MlflowClient(handle.tracking_uri)
        try:
            mark_supervisor(client, handle.run_id)
            print(f"mlflow-workspace: pipeline job {handle.name} (run {handle.run_id}) started", file=sys.stderr,
                  flush=True)
            if on_start is not None:
                on_start(handle.run_id)
            handle.wait()
        except KeyboardInterrupt:
            cancel_with_recorded_reason(handle, client)
    print(final_line(handle, client), file=sys.stderr, flush=True)
    return _exit_code(handle.get_status())


def final_line(handle: PipelineHandle, client: MlflowClient) -> str:
    from mlflow_workspace_plugin.execution.summary import run_location

    steps = handle.steps
    counts = {}
    for state in steps.values():
        label = "reused" if state.reused_from else (job_state(state.status) if state.status != "NOT_STARTED"
                                                    else "not started")
        counts[label] = counts.get(label, 0) + 1
    summary = ", ".join(f"{count} {label}" for label, count in sorted(counts.items()))
    return (f"mlflow-workspace: pipeline job {handle.name} {job_state(handle.get_status())} (run {handle.run_id}); "
            f"steps: {summary}; to look at it, {run_location(client, handle.run_id)}")


def main(argv: Sequence[str] | None = None) -> int:
    """The detached supervisor (started by :func:`create_pipeline` through ``jobs.detached``)."""
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
            handle = run_pipeline(load_pipeline(args.file, args.overrides), name=args.name,
                                  env_manager=args.env_manager)
            client = MlflowClient(handle.tracking_uri)
            mark_supervisor(client, handle.run_id)
        except MlflowException as exc:
            _send(report, {"error": exc.message})
            return 1
        except KeyboardInterrupt:
            _send(report, {"error": "the pipeline's supervisor was stopped before the pipeline started"})
            return INTERRUPTED_EXIT_CODE
        except Exception as exc:
            _send(report, {"error": f"{type(exc).__name__}: {exc}"})
            return 1
        _send(report, {"run_id": handle.run_id, "name": handle.name})
        try:
            handle.wait()
        except KeyboardInterrupt:
            cancel_with_recorded_reason(handle, client)
    return _exit_code(handle.get_status())


if __name__ == "__main__":
    sys.exit(main())
