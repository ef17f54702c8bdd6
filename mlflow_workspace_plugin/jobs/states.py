"""Azure ML job states for MLflow run statuses: the CLI speaks Azure's, the run keeps MLflow's.

=============  ==========
MLflow status  job state
=============  ==========
FINISHED       Completed
FAILED         Failed
KILLED         Canceled
RUNNING        Running
SCHEDULED      Queued
=============  ==========
"""

from __future__ import annotations

AZURE_STATES = {
    "FINISHED": "Completed",
    "FAILED": "Failed",
    "KILLED": "Canceled",
    "RUNNING": "Running",
    "SCHEDULED": "Queued",
}
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")


def job_state(mlflow_status: str) -> str:
    """The Azure state of an MLflow run status (an unknown status is shown as it is)."""
    return AZURE_STATES.get(mlflow_status, mlflow_status)


def is_terminal(mlflow_status: str) -> bool:
    return mlflow_status in TERMINAL_STATUSES
