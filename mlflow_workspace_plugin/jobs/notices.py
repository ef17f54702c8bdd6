"""Warnings about a job file: said once per job (a sweep's trials share their sweep's warnings)."""

from __future__ import annotations

import logging
import threading

_logger = logging.getLogger("mlflow.projects.azureml")
_said: set[tuple[str, str]] = set()
_lock = threading.Lock()

WHY_IGNORED = {
    "services": "interactive services (JupyterLab, SSH, TensorBoard, VS Code) exist only on Azure ML",
    "identity": "the job uses the credentials of the compute target, not a managed identity",
    "queue_settings": "there is no job queue tier here",
    "properties": "not recorded on the run",
    "resources.shm_size": "jobs here do not run in containers",
    "environment.os_type": "jobs run on the compute target's operating system",
}


def warn(message: str) -> None:
    _logger.warning("mlflow-workspace: %s", message)


def warn_once(message: str, scope: str) -> bool:
    """Log ``message`` unless it was already logged for ``scope`` (e.g. a sweep's parent run id) in this
    process; True when it was logged."""
    with _lock:
        if (scope, message) in _said:
            return False
        _said.add((scope, message))
    warn(message)
    return True


def ignored_fields_message(shown_file: str, fields: tuple[str, ...]) -> str:
    """One line naming every accepted-but-ignored field of a job file and why each has no effect."""
    reasons = "; ".join(f"{field} ({WHY_IGNORED.get(field.removeprefix('trial.'), 'Azure ML only')})"
                        for field in fields)
    return f"{shown_file}: ignored here, the job runs without them: {reasons}"
