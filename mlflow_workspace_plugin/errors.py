"""Exceptions raised for bad user input: each names the bad value and what is allowed."""

from __future__ import annotations

from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException


class WorkspaceConfigError(MlflowException):
    """A workspace config file (or value in it) is missing or malformed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class WorkspaceUriError(MlflowException):
    """An ``azureml://`` URI does not have the expected shape."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class BackendConfigError(MlflowException):
    """A ``backend_config`` key, type or value is not allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)
