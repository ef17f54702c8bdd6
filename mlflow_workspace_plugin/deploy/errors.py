"""Deployment errors: always ``MlflowException`` (what MLflow's deployments API expects)."""

from __future__ import annotations

from mlflow.exceptions import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, MlflowException


class DeploymentError(MlflowException):
    """A deployment or endpoint operation failed (bad input, or a server that did not start)."""

    def __init__(self, message: str, error_code: int | str = INVALID_PARAMETER_VALUE) -> None:
        super().__init__(message, error_code=error_code)


def not_found(message: str) -> DeploymentError:
    return DeploymentError(message, RESOURCE_DOES_NOT_EXIST)


def already_exists(message: str) -> DeploymentError:
    return DeploymentError(message, RESOURCE_ALREADY_EXISTS)
