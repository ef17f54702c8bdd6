"""Errors of the sweep layer: each names the field path, the bad value and what is allowed."""

from __future__ import annotations

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

SWEEP_EXTRA_HINT = "pip install 'mlflow-workspace-plugin[sweep]'"


class SweepSpecError(MlflowException):
    """A sweep YAML field (search space, sampling, limits, early termination, objective) is not allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class SweepExtraMissingError(MlflowException):
    """A sweep feature needs the optional ``sweep`` extra (Optuna), which is not installed."""

    def __init__(self, feature: str) -> None:
        super().__init__(
            f"{feature} needs Optuna, which is not installed; install it with: {SWEEP_EXTRA_HINT}",
            error_code=INVALID_PARAMETER_VALUE,
        )
