"""Executors: where a run's command executes (this machine, a Ray cluster, ...).

See :mod:`mlflow_workspace_plugin.compute.base` for the interface and
:mod:`mlflow_workspace_plugin.compute.registry` for how a compute target name finds its executor.
"""
