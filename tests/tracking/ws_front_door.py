"""The tracking tests' front door: :mod:`mlflow_workspace_plugin.testing.front_door` (shared with the benchmarks)."""

from mlflow_workspace_plugin.testing.front_door import *  # noqa: F403
