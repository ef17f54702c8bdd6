"""The tracking tests' servers: :mod:`mlflow_workspace_plugin.testing.servers` (shared with the benchmarks)."""

from mlflow_workspace_plugin.testing.servers import *  # noqa: F403
from mlflow_workspace_plugin.testing.servers import free_port, stop_process  # noqa: F401
