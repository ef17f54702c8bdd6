"""``job cancel``: stop a job started by another process and record it Canceled (MLflow KILLED).

The run lifecycle does it (:func:`mlflow_workspace_plugin.execution.control.cancel`): a job on remote
compute is stopped through its compute target, a local one through the processes recorded on its run;
a sweep's trials are cancelled too, even when the process that ran the sweep has crashed. Every
cancelled run gets ``azureml.cancel_reason`` and ends KILLED.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.execution import control

CANCEL_REASON = "canceled with `mlflow-workspace job cancel`"


def cancel_job(client: MlflowClient, run: Run, reason: str = CANCEL_REASON) -> str:
    """Cancel the job whose run is ``run`` (and its trials); returns the run's final MLflow status (KILLED)."""
    try:
        return control.cancel(client, run, reason)
    except RuntimeError as exc:
        raise MlflowException(f"Cannot cancel job of run {run.info.run_id}: {exc}") from None
