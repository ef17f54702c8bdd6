"""``job cancel``: stop a job started by another process and record it Canceled (MLflow KILLED).

- A job on remote compute (tag ``azureml.compute.type``, e.g. ``ray``) is stopped through its compute
  target (Ray: ``stop_job`` of the job named in ``ray.job_id``); the job's runner ends the run KILLED.
- A local job is stopped through the processes recorded on its run (:mod:`.local_control`).

Either way the run gets ``azureml.cancel_reason`` and ends KILLED.
"""

from __future__ import annotations

import time

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.compute.base import COMPUTE_TAG, COMPUTE_TYPE_TAG
from mlflow_workspace_plugin.compute.handles import CANCEL_REASON_TAG
from mlflow_workspace_plugin.jobs.local_control import cancel_local_job
from mlflow_workspace_plugin.jobs.states import is_terminal

CANCEL_REASON = "canceled with `mlflow-workspace job cancel`"
REMOTE_STOP_TIMEOUT_SECONDS = 30.0


def cancel_job(client: MlflowClient, run: Run, reason: str = CANCEL_REASON) -> str:
    """Cancel the job whose run is ``run``; returns the run's final MLflow status (KILLED)."""
    compute_type = run.data.tags.get(COMPUTE_TYPE_TAG)
    if compute_type and compute_type != "local":
        return _cancel_remote(client, run, reason)
    try:
        return cancel_local_job(client, run, reason)
    except RuntimeError as exc:
        raise MlflowException(f"Cannot cancel job of run {run.info.run_id}: {exc}") from None


def _cancel_remote(client: MlflowClient, run: Run, reason: str) -> str:
    from mlflow_workspace_plugin.compute.registry import executor_for
    from mlflow_workspace_plugin.workspace import Workspace

    run_id = run.info.run_id
    executor = executor_for(run.data.tags.get(COMPUTE_TAG, ""), Workspace.from_config())
    client.set_tag(run_id, CANCEL_REASON_TAG, reason)
    executor.cancel(executor.job_id_for(run_id), REMOTE_STOP_TIMEOUT_SECONDS)
    deadline = time.monotonic() + REMOTE_STOP_TIMEOUT_SECONDS
    status = client.get_run(run_id).info.status
    while not is_terminal(status) and time.monotonic() < deadline:
        time.sleep(0.25)
        status = client.get_run(run_id).info.status
    if status != "KILLED":  # the job's runner did not get to it (or the job ended otherwise meanwhile)
        client.set_terminated(run_id, "KILLED")
    return "KILLED"
