"""mlflow-workspace-plugin: MLflow tracking and Projects runs in a workspace, local by default."""

from mlflow_workspace_plugin.workspace import ComputeTarget, Workspace

__all__ = ["Workspace", "ComputeTarget", "__version__"]
__version__ = "0.1.0"
