"""``launch``: the one run lifecycle every door uses."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Param, RunTag

from mlflow_workspace_plugin.capture.live_logs import log_sync_interval
from mlflow_workspace_plugin.compute.base import Executor, Launch
from mlflow_workspace_plugin.compute.handles import WatchedRun
from mlflow_workspace_plugin.execution import live_runs
from mlflow_workspace_plugin.execution.plan import Plan, plan_resources
from mlflow_workspace_plugin.execution.plan import plan as make_plan
from mlflow_workspace_plugin.execution.request import RunRequest
from mlflow_workspace_plugin.execution.run_env import run_environment
from mlflow_workspace_plugin.execution.tracking import planned_tracking_uri, resolve_tracking
from mlflow_workspace_plugin.workspace import Workspace

_logger = logging.getLogger("mlflow.projects.azureml")


def launch(request: RunRequest, workspace: Workspace | None = None, plan: Plan | None = None) -> WatchedRun:
    """Validate ``request``, create and tag its run, start it; return the run's handle.

    Everything that can be checked (compute target and its settings, reachability, environment,
    snapshot limits, settings from the environment) is checked before any run exists or any
    global state changes; ``plan`` (from :func:`~mlflow_workspace_plugin.execution.plan.plan`) is
    what the door checked already. If starting fails after the run exists, the run ends FAILED
    (KILLED on Ctrl-C) and the error propagates. The run is tracked (:mod:`.live_runs`) until it
    ends; its ``private_dir`` is removed then (a remote run's once it started: the cluster has the package).
    """
    workspace = workspace or Workspace.from_config()
    if plan is None or plan.executor.target.name != request.compute:
        plan = make_plan(request.compute, request.source_dir, workspace)
    elif plan.snapshot.root != Path(request.source_dir):
        plan = plan.collected_at(request.source_dir)
    executor, snapshot = plan.executor, plan.snapshot
    log_sync_seconds = log_sync_interval()
    executor.check(request.environment, planned_tracking_uri(request, workspace))
    resources = plan_resources(executor, request.instance_type, request.resources, request.instances)

    tracking_uri, experiment_id = resolve_tracking(request, workspace)
    client = MlflowClient(tracking_uri)
    run_id = _create_run(client, request, experiment_id, executor)
    handle: WatchedRun | None = None
    try:  # from here on a Ctrl-C / SIGTERM (CLI) at any point ends the run KILLED, nothing left running
        handle = executor.start(Launch(
            run_id=run_id, experiment_id=experiment_id, tracking_uri=tracking_uri,
            command=request.command, source_dir=snapshot.root, snapshot=snapshot,
            run_env=run_environment(tracking_uri, run_id, experiment_id, request.env_vars),
            environment=request.environment, stream_output=request.stream_output,
            raise_on_failure=request.raise_on_failure, timeout_seconds=request.timeout_seconds,
            log_sync_seconds=log_sync_seconds, processes=tuple(request.processes), name=request.name,
            resources=resources,
        ))
        live_runs.track(handle, remote=executor.is_remote, cleanup=_at_end(handle, request))
        if executor.is_remote and request.private_dir is not None:  # its package is on the cluster now
            shutil.rmtree(request.private_dir, ignore_errors=True)
        try:
            executor.record_identity(client, handle)
        except Exception as exc:  # only a cancel from another process needs it
            _logger.warning("mlflow-workspace: could not record where run %s runs: %s", run_id, exc)
    except BaseException as error:
        if handle is not None:  # it started: stop it (recorded KILLED)
            handle.cancel()
        else:  # it did not start (the executor leaves nothing running)
            client.set_terminated(run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    return handle


def _at_end(handle: WatchedRun, request: RunRequest) -> Callable[[], None] | None:
    """What runs once the run has ended: the door's ``on_end`` (e.g. deliver outputs from the private
    folder), then the private folder is removed."""
    if request.private_dir is None and request.on_end is None:
        return None

    def at_end() -> None:
        try:
            if request.on_end is not None:
                request.on_end(handle)
        except Exception as error:  # the run has ended: report, still remove its folder
            _logger.warning("mlflow-workspace: after run %s ended: %s", handle.run_id, error)
        finally:
            if request.private_dir is not None:
                shutil.rmtree(request.private_dir, ignore_errors=True)

    return at_end


def _create_run(client: MlflowClient, request: RunRequest, experiment_id: str, executor: Executor) -> str:
    if request.existing_run_id:
        run_id = request.existing_run_id
        params = []
    else:
        run = client.create_run(experiment_id, tags=dict(request.tags), run_name=request.run_name)
        run_id = run.info.run_id
        params = [Param(key, str(value)) for key, value in request.params.items()]
    tags = dict(request.tags) if request.existing_run_id else {}
    tags.update(executor.run_tags(run_id, request.environment))
    try:
        client.log_batch(run_id, params=params, tags=[RunTag(key, value) for key, value in tags.items()])
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id
