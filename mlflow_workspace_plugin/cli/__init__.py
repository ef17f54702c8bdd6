"""``mlflow-workspace``: the command-line door. Each verb group lives in its own module."""

from __future__ import annotations

from mlflow_workspace_plugin.cli.main import main

__all__ = ["main"]
