"""Seed 000: run this repository's MLflow project through the ``azureml`` backend, once with a
``backend_config`` dict and once with a JSON file; optionally on a named compute target.

    python examples/projects_run.py                 # local runs in the workspace
    python examples/projects_run.py --compute cpu-cluster

The seeds' ``use_conda=False`` argument was removed in MLflow 2: ``env_manager="local"`` is today's
spelling (``USE_CONDA: false`` in backend_config means the same to this backend).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow

from mlflow_workspace_plugin import Workspace

PROJECT = Path(__file__).resolve().parent.parent
CONFIG_FILE = Path(__file__).resolve().parent / "backend_config.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compute", default=None, help="run on this compute target of the workspace")
    args = parser.parse_args()

    ws = Workspace.from_config()
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    if args.compute:
        mlflow.set_experiment("train-mlflow-project-amlcompute")
        remote_env = {"COMPUTE": args.compute, "USE_CONDA": False}
        remote_run = mlflow.projects.run(uri=str(PROJECT), parameters={"alpha": 0.3},
                                         backend="azureml", backend_config=remote_env)
        print(f"remote run {remote_run.run_id}: {remote_run.get_status()}")
        return

    mlflow.set_experiment("experiment-with-mlflow-projects")
    local_env = {"USE_CONDA": False}
    dict_run = mlflow.projects.run(uri=str(PROJECT), parameters={"alpha": 0.3}, backend="azureml",
                                   env_manager="local", backend_config=local_env)
    file_run = mlflow.projects.run(uri=str(PROJECT), parameters={"alpha": 0.6}, backend="azureml",
                                   env_manager="local", backend_config=str(CONFIG_FILE))
    for run in (dict_run, file_run):
        print(f"local run {run.run_id}: {run.get_status()}")


if __name__ == "__main__":
    main()
