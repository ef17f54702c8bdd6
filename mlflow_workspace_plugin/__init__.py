"""mlflow-workspace-plugin: MLflow tracking and Projects runs in a workspace, local by default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Workspace", "ComputeTarget", "__version__"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlflow_workspace_plugin.workspace import ComputeTarget, Workspace


def __getattr__(name: str) -> Any:
    """Import lazily: the job runner inside a remote job starts the user's command before
    importing MLflow."""
    if name in ("Workspace", "ComputeTarget"):
        from mlflow_workspace_plugin import workspace

        return getattr(workspace, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
