"""Controlling runs from any process, by their run id: ``attach`` (status), ``cancel``, crash detection.

Every run records on itself what its executor needs to find it again (local: host, process groups,
launching process; remote: the job id), so a run is controlled with its tags alone, wherever it was
started. ``cancel`` also reaches the run's child runs (a sweep's trials, a pipeline's steps) that
have not ended: a parent whose controlling process has crashed still stops everything under it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mlflow_workspace_plugin.compute import local_control
from mlflow_workspace_plugin.compute.base import COMPUTE_TAG, COMPUTE_TYPE_TAG, Executor
from mlflow_workspace_plugin.compute.registry import executor_for
from mlflow_workspace_plugin.workspace import Workspace

TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")
MAX_CHILDREN = 50_000
_PARALLEL_CANCELS = 8


def executor_of(run: Run, workspace: Workspace | None = None) -> Executor:
    """The executor that runs ``run`` (from its tags: a remote compute type names its target; a run
    without one ran on this machine)."""
    workspace = workspace or Workspace.from_config()
    tags = run.data.tags
    compute_type = tags.get(COMPUTE_TYPE_TAG)
    if compute_type and compute_type != "local":
        return executor_for(tags.get(COMPUTE_TAG, ""), workspace)
    return executor_for("local", workspace)


def cancel(client: MlflowClient, run: Run, reason: str, workspace: Workspace | None = None) -> str:
    """Stop ``run`` and every child run of it that has not ended, record ``reason`` on them and end
    them KILLED; returns the run's final status."""
    status = executor_of(run, workspace).cancel_run(client, run, reason)
    cancel_children(client, run, f"parent run {run.info.run_id} cancelled: {reason}", workspace)
    return status


def cancel_children(client: MlflowClient, parent: Run, reason: str, workspace: Workspace | None = None) -> int:
    """Cancel every child run of ``parent`` (and theirs) still going; returns how many were cancelled."""
    children = [run for run in child_runs(client, parent) if run.info.status not in TERMINAL_STATUSES]
    if not children:
        return 0
    with ThreadPoolExecutor(min(_PARALLEL_CANCELS, len(children)), thread_name_prefix="mlflow-ws-cancel") as pool:
        list(pool.map(lambda child: cancel(client, client.get_run(child.info.run_id), reason, workspace), children))
    return len(children)


def child_runs(client: MlflowClient, parent: Run) -> list[Run]:
    """The runs whose ``mlflow.parentRunId`` is ``parent`` (in the parent's experiment)."""
    return list(client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'",
        run_view_type=ViewType.ALL, max_results=MAX_CHILDREN))


def attach(client: MlflowClient, run_id: str) -> Run:
    """The run as the store has it now (raises when there is no such run)."""
    return client.get_run(run_id)


def launcher_gone(run: Run) -> bool:
    """True when a RUNNING run was started on this machine by a process that is gone (crashed or
    killed): nothing will end it but a cancel."""
    return local_control.launcher_gone(run)


def mark_supervisor(client: MlflowClient, run_id: str) -> None:
    """Record this process as the run's supervisor: a cancel from elsewhere sends it SIGTERM, and it
    ends the run KILLED itself."""
    local_control.record_supervisor(client, run_id)


def mark_launcher(client: MlflowClient, run_id: str) -> None:
    """Record this process (and this machine) as the one running ``run_id``, which has no processes of
    its own (a controller's parent run)."""
    local_control.record_processes(client, run_id, [])
