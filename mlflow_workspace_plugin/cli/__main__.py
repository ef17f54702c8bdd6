"""``python -m mlflow_workspace_plugin.cli``: same as the ``mlflow-workspace`` command."""

from mlflow_workspace_plugin.cli.main import main

main()
