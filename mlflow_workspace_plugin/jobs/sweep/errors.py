"""Errors of the sweep layer: each names the field path, the bad value and what is allowed.

:class:`SweepSpecError` is a :class:`~mlflow_workspace_plugin.jobs.errors.JobSpecError`, so whatever
reports job-YAML mistakes (one line per problem, no traceback) reports sweep mistakes the same way.
"""

from __future__ import annotations

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

from mlflow_workspace_plugin.jobs.errors import JobSpecError

SWEEP_EXTRA_HINT = "pip install 'mlflow-workspace-plugin[sweep]'"


class SweepSpecError(JobSpecError):
    """A sweep YAML field (search space, sampling, limits, early termination, objective) is not allowed."""


class SweepExtraMissingError(MlflowException):
    """A sweep feature needs the optional ``sweep`` extra (Optuna), which is not installed."""

    def __init__(self, feature: str) -> None:
        super().__init__(
            f"{feature} needs Optuna, which is not installed; install it with: {SWEEP_EXTRA_HINT}",
            error_code=INVALID_PARAMETER_VALUE,
        )
