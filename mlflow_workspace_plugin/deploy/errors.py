"""Deployment errors: always ``MlflowException`` (what MLflow's deployments API expects)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from mlflow.exceptions import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, MlflowException

T = TypeVar("T")


class DeploymentError(MlflowException):
    """A deployment or endpoint operation failed (bad input, or a server that did not start)."""

    def __init__(self, message: str, error_code: int | str = INVALID_PARAMETER_VALUE) -> None:
        super().__init__(message, error_code=error_code)


def not_found(message: str) -> DeploymentError:
    return DeploymentError(message, RESOURCE_DOES_NOT_EXIST)


def already_exists(message: str) -> DeploymentError:
    return DeploymentError(message, RESOURCE_ALREADY_EXISTS)


def one_line_in_cli(method: Callable[..., T]) -> Callable[..., T]:
    """Under ``mlflow deployments ...``, the plugin's errors end the command as one ``Error: ...``
    line (MLflow's CLI would print the whole traceback); called from Python they raise as usual."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except MlflowException as exc:
            if not _in_deployments_cli():
                raise
            import click

            raise click.ClickException(exc.message) from None

    return wrapper


def _in_deployments_cli() -> bool:
    try:
        import click
    except ImportError:
        return False
    context = click.get_current_context(silent=True)
    return bool(context and getattr(context.command.callback, "__module__", "").startswith("mlflow.deployments"))
