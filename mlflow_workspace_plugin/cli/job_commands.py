"""``mlflow-workspace job create / show / stream / download / cancel / list``: jobs from YAML, like ``az ml job``.

States are Azure's (:mod:`mlflow_workspace_plugin.jobs.states`); the runs keep MLflow's statuses.
"""

from __future__ import annotations

import json
import os
import sys
import webbrowser
from datetime import datetime, timezone
from pathlib import Path

import click
from mlflow import MlflowClient
from mlflow.entities import Run

from mlflow_workspace_plugin.jobs.job_environment import ENV_MANAGERS
from mlflow_workspace_plugin.jobs.job_names import DISPLAY_NAME_TAG, JOB_NAME_TAG, generate_job_name
from mlflow_workspace_plugin.jobs.states import job_state

INTERRUPTED_EXIT_CODE = 130
ORPHANED_PROBLEM = ("gone: the process that ran this job on this machine crashed or was killed; the job stays Running "
                    "until `mlflow-workspace job cancel` stops what is left of it")
_NAME_OPTION = click.option("-n", "--name", required=True, help="the job's name (as `job create` printed it)")


@click.group()
def job() -> None:
    """Run jobs from YAML files and follow them (like `az ml job`)."""


@job.command()
@click.option("-f", "--file", "file_path", required=True, type=click.Path(dir_okay=False),
              help="the job's YAML file")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="override a field of the file, e.g. --set compute=local (repeatable)")
@click.option("-n", "--name", default=None, help="the job's name (unique in the workspace; default: generated)")
@click.option("--stream", is_flag=True, help="show the job's output live, wait, exit with its exit code")
@click.option("--web", is_flag=True, help="print the run's address in the UI (and open a browser if there is one)")
@click.option("--env-manager", type=click.Choice(ENV_MANAGERS), default=None,
              help="local jobs: how the job's environment is built (default: a cached venv, uv or pip; "
                   "local: the current Python as it is; or $MLFLOW_WORKSPACE_JOB_ENV_MANAGER)")
def create(file_path: str, overrides: tuple[str, ...], name: str | None, stream: bool, web: bool,
           env_manager: str | None) -> None:
    """Create (submit) a job; prints its name."""
    from mlflow_workspace_plugin.jobs.loader import load_any_job
    from mlflow_workspace_plugin.workspace import Workspace

    spec = load_any_job(file_path, overrides, name=name)  # any job type; bad input fails here
    on_start = (lambda run_id: _show_web(_client(), run_id)) if web else None
    kind = type(spec).__name__
    if kind == "SweepSpec":  # a sweep job: jobs/sweep/commands.py
        from mlflow_workspace_plugin.jobs.sweep.commands import create_sweep

        raise SystemExit(create_sweep(file_path, overrides, name, stream=stream, env_manager=env_manager,
                                      on_start=on_start, spec=spec))
    if kind == "PipelineSpec":  # a pipeline job: jobs/pipeline/commands.py
        from mlflow_workspace_plugin.jobs.pipeline.commands import create_pipeline

        raise SystemExit(create_pipeline(file_path, overrides, name, stream=stream, env_manager=env_manager,
                                         on_start=on_start, spec=spec))
    workspace = Workspace.from_config()
    if stream:
        raise SystemExit(_create_streaming(spec, workspace, web, env_manager))
    if spec.compute == "local":  # local processes end with their launcher: hand the job to a supervisor
        from mlflow_workspace_plugin.jobs.detached import start_supervisor
        from mlflow_workspace_plugin.jobs.job_environment import build_ahead
        from mlflow_workspace_plugin.jobs.registry import planned_uri
        from mlflow_workspace_plugin.jobs.submit import check_unique

        job_name = spec.name or generate_job_name()
        check_unique(spec, job_name, planned_uri(workspace))  # fail here, before starting anything
        build_ahead(spec, workspace, env_manager, warn=lambda message: click.echo(f"Warning: {message}", err=True))
        report = start_supervisor(file_path, overrides, job_name, env_manager)
        run_id = report["run_id"]
    else:
        from mlflow_workspace_plugin.jobs.submit import submit_job

        handle = submit_job(spec, stream=False, workspace=workspace, env_manager=env_manager)
        job_name, run_id = handle.job_name, handle.run_id
    click.echo(job_name)
    if web:
        _show_web(_client(), run_id)


def _create_streaming(spec, workspace, web: bool, env_manager: str | None) -> int:
    """``mlflow run``-like: live log, wait, the job's exit code (130 after Ctrl-C / SIGTERM, once cancelled)."""
    from mlflow_workspace_plugin.execution.control import mark_supervisor
    from mlflow_workspace_plugin.execution.foreground import sigterm_as_interrupt, wait_or_cancel
    from mlflow_workspace_plugin.jobs.registry import planned_uri
    from mlflow_workspace_plugin.jobs.submit import check_unique, submit_job

    workspace.get_compute_target(spec.compute)  # an unknown compute or a taken name fail before the line below
    if not spec.name:  # named here, so the line naming the job comes before the command's first output
        spec = spec.model_copy(update={"name": generate_job_name()})
    check_unique(spec, spec.name, planned_uri(workspace))
    with sigterm_as_interrupt():
        click.echo(f"mlflow-workspace: job {spec.name} starting on compute {spec.compute!r}", err=True)
        try:
            handle = submit_job(spec, stream=True, workspace=workspace, env_manager=env_manager)
        except KeyboardInterrupt:
            return INTERRUPTED_EXIT_CODE
        client = MlflowClient(handle.tracking_uri)
        try:
            if handle.pids:
                mark_supervisor(client, handle.run_id)
            if web:
                _show_web(client, handle.run_id)
            finished = wait_or_cancel(handle)
        except KeyboardInterrupt:
            if handle.get_status() == "RUNNING":
                handle.cancel()
            _final_line(client, handle)
            return INTERRUPTED_EXIT_CODE
    _final_line(client, handle)
    if finished:
        return 0
    if client.get_run(handle.run_id).info.status == "KILLED":  # cancelled, e.g. by `job cancel`
        return INTERRUPTED_EXIT_CODE
    code = handle.exit_code
    return code if isinstance(code, int) and 0 < code < 256 else 1


@job.command()
@_NAME_OPTION
@click.option("--query", default=None, metavar="FIELD",
              help="print only this field, as plain text (e.g. status, run_id, tags.<key>)")
def show(name: str, query: str | None) -> None:
    """Show a job (JSON), or one field of it."""
    from mlflow_workspace_plugin.jobs.registry import get_job

    client = _client()
    run = get_job(client, name)
    record = job_record(client, run)
    if record["type"] == "sweep":  # objective, best trial and every trial
        from mlflow_workspace_plugin.jobs.sweep.report import sweep_record

        record.update(sweep_record(client, run))
    if record["type"] == "pipeline":  # every step's state and run, the pipeline's outputs
        from mlflow_workspace_plugin.jobs.pipeline.report import pipeline_record

        record.update(pipeline_record(client, run))
    if query is None:
        click.echo(json.dumps(record, indent=2))
        return
    value = _field(record, query)
    click.echo(value if isinstance(value, str) else json.dumps(value))


@job.command()
@_NAME_OPTION
def stream(name: str) -> None:
    """Follow a job's log (user_logs/std_log.txt) until it ends; exit 1 unless it Completed."""
    from mlflow_workspace_plugin.jobs.log_follow import follow_job_log
    from mlflow_workspace_plugin.jobs.registry import get_job

    client = _client()
    run = get_job(client, name)
    status = follow_job_log(client, run, sys.stdout)
    click.echo(f"mlflow-workspace: job {name} {job_state(status)}", err=True)
    raise SystemExit(0 if status == "FINISHED" else 1)


@job.command()
@_NAME_OPTION
@click.option("--outputs", "what", flag_value="outputs", default=True,
              help="outputs/, logs/ and user_logs/ (default)")
@click.option("--all", "what", flag_value="all", help="every artifact of the job's run")
@click.option("--output-name", default=None, help="only outputs/<name>/")
@click.option("--download-path", type=click.Path(file_okay=False), default=".",
              help="folder to download into (a folder named after the job is made there)")
def download(name: str, what: str, output_name: str | None, download_path: str) -> None:
    """Download a job's outputs and logs (or --all artifacts) into <download-path>/<job name>/."""
    import mlflow.artifacts

    from mlflow_workspace_plugin.jobs.registry import get_job

    client = _client()
    run = get_job(client, name)
    if job_record(client, run)["type"] == "sweep":  # the best trial's outputs (--all: everything) + the sweep log
        from mlflow_workspace_plugin.jobs.sweep.report import download_sweep

        destination = Path(download_path) / name
        download_sweep(client, run, destination, everything=what == "all", output_name=output_name)
        click.echo(str(destination))
        return
    if job_record(client, run)["type"] == "pipeline" and what != "all":  # the outputs of the steps + its log
        from mlflow_workspace_plugin.jobs.pipeline.report import download_pipeline

        destination = Path(download_path) / name
        download_pipeline(client, run, destination, output_name=output_name)
        click.echo(str(destination))
        return
    run_id = run.info.run_id
    top = {entry.path for entry in client.list_artifacts(run_id)}
    if output_name:
        if output_name not in {e.path.split("/", 1)[1] for e in client.list_artifacts(run_id, "outputs")
                               if "/" in e.path}:
            raise click.ClickException(f"job {name} has no output {output_name!r} (outputs/{output_name}/)")
        paths = [f"outputs/{output_name}"]
    elif what == "all":
        paths = sorted(top)
    else:
        paths = [path for path in ("outputs", "logs", "user_logs") if path in top]
    destination = Path(download_path) / name
    destination.mkdir(parents=True, exist_ok=True)
    for path in paths:
        folder = destination / Path(path).parent  # keep the run's layout: outputs/<name>/ stays there
        folder.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(folder),
                                            tracking_uri=client.tracking_uri)
    click.echo(str(destination))


@job.command()
@_NAME_OPTION
def cancel(name: str) -> None:
    """Cancel a job (local: its processes are stopped; Ray: the Ray job is stopped); it ends Canceled."""
    from mlflow_workspace_plugin.jobs.cancel import cancel_job
    from mlflow_workspace_plugin.jobs.registry import get_job

    client = _client()
    run = get_job(client, name)
    if run.info.status in ("FINISHED", "FAILED", "KILLED"):
        click.echo(f"job {name} has already ended: {job_state(run.info.status)}", err=True)
        return
    status = cancel_job(client, run)
    click.echo(job_state(status))


@job.command(name="list")
@click.option("--experiment", default=None, help="only jobs of this experiment")
@click.option("--max-results", default=50, show_default=True, type=click.IntRange(1, 1000))
def list_command(experiment: str | None, max_results: int) -> None:
    """List jobs, newest first: name, state, experiment, display name, start time."""
    from mlflow_workspace_plugin.jobs.registry import list_jobs

    client = _client()
    runs = list_jobs(client, experiment, max_results)
    names: dict[str, str] = {}
    rows = [("NAME", "STATUS", "EXPERIMENT", "DISPLAY NAME", "STARTED")]
    for run in runs:
        experiment_id = run.info.experiment_id
        if experiment_id not in names:
            names[experiment_id] = client.get_experiment(experiment_id).name
        rows.append((run.data.tags.get(JOB_NAME_TAG, ""), job_state(run.info.status), names[experiment_id],
                     run.data.tags.get(DISPLAY_NAME_TAG, ""), _time(run.info.start_time) or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# ------------------------------------------------------------------ helpers
def job_record(client: MlflowClient, run: Run) -> dict:
    """What ``job show`` prints: Azure-style fields of the job's run."""
    from mlflow_workspace_plugin.execution.control import launcher_gone
    from mlflow_workspace_plugin.execution.summary import run_location
    from mlflow_workspace_plugin.jobs import job_names

    tags = run.data.tags
    inputs = {key[len("azureml.inputs."):]: value for key, value in tags.items()
              if key.startswith("azureml.inputs.") and not key.endswith(".type")}
    outputs = {key[len("azureml.outputs."):]: value for key, value in tags.items()
               if key.startswith("azureml.outputs.") and not key.endswith(".type")}
    user_tags = {key: value for key, value in tags.items() if not key.startswith(("mlflow.", "azureml.", "ray."))}
    return {
        "name": tags.get(JOB_NAME_TAG),
        "display_name": tags.get(DISPLAY_NAME_TAG),
        "type": tags.get(job_names.JOB_TYPE_TAG, "command"),
        "status": job_state(run.info.status),
        "mlflow_status": run.info.status,
        "run_id": run.info.run_id,
        "experiment_name": client.get_experiment(run.info.experiment_id).name,
        "description": tags.get("mlflow.note.content"),
        "compute": (tags.get("azureml.compute") or "").removeprefix("azureml:") or None,  # sweeps as jobs
        "command": tags.get(job_names.COMMAND_TAG),
        "environment": tags.get(job_names.ENVIRONMENT_TAG),
        "inputs": inputs,
        "outputs": outputs,
        "tags": user_tags,
        "cancel_reason": tags.get("azureml.cancel_reason"),
        "launcher": ORPHANED_PROBLEM if launcher_gone(run) else None,
        "ray_job_id": tags.get("ray.job_id"),
        "creation_time": _time(run.info.start_time),
        "end_time": _time(run.info.end_time),
        "source_file": tags.get(job_names.JOB_FILE_TAG),
        "location": run_location(client, run.info.run_id),
    }


def _field(record: dict, query: str):
    value = record
    for part in query.split("."):
        if not isinstance(value, dict) or part not in value:
            fields = ", ".join(record)
            raise click.ClickException(f"--query {query!r}: no such field; fields: {fields}")
        value = value[part]
    return "" if value is None else value


def _time(millis: int | None) -> str | None:
    if not millis:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _client() -> MlflowClient:
    from mlflow_workspace_plugin.jobs.registry import jobs_client

    return jobs_client()


def _final_line(client: MlflowClient, handle) -> None:
    from mlflow_workspace_plugin.execution.summary import run_location

    status = client.get_run(handle.run_id).info.status
    click.echo(f"mlflow-workspace: job {handle.job_name} {job_state(status)} (run {handle.run_id}); to look at it, "
               f"{run_location(client, handle.run_id)}", err=True)


def _show_web(client: MlflowClient, run_id: str) -> None:
    """Print where the run is shown; open a browser only where one can be shown."""
    import re

    from mlflow_workspace_plugin.execution.summary import run_location

    location = run_location(client, run_id)
    click.echo(f"mlflow-workspace: {location}", err=True)
    url = re.search(r"https?://\S+", location)
    if url and _has_display():
        try:
            webbrowser.open(url.group(0))
        except webbrowser.Error:
            pass


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


COMMANDS = (job,)
