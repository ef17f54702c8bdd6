"""The one exception type of environments: a bad requirement, a reference that names nothing, a
build that failed (the message carries uv's / pip's own reason and what to do instead)."""

from __future__ import annotations

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException


class EnvironmentProblem(MlflowException):
    """An environment cannot be used as declared: the message names the value and what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)
