"""Seed 000's remote case on a Ray compute target: this repository's project (ElasticNet, autolog,
``outputs/metrics.txt``) submitted with ``backend_config={"COMPUTE": "cpu-cluster", ...}``.

    # with a Ray head already running and a workspace config.json naming it (see README):
    MLFLOW_WORKSPACE_CONFIG=examples/ray/config.json python examples/ray/run_on_ray.py

    # self-contained: start a private loopback-only Ray head and a throw-away workspace
    python examples/ray/run_on_ray.py --start-head
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

import mlflow

from mlflow_workspace_plugin import Workspace

PROJECT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compute", default="cpu-cluster", help="compute target of the workspace")
    parser.add_argument("--start-head", action="store_true",
                        help="start a private Ray head on 127.0.0.1 and use a temporary workspace")
    args = parser.parse_args()

    with ExitStack() as stack:
        if args.start_head:
            from mlflow_workspace_plugin.compute.ray_head import LocalRayHead

            head = stack.enter_context(LocalRayHead(num_cpus=2))
            folder = Path(tempfile.mkdtemp(prefix="ray-example-"))
            config = folder / "config.json"
            config.write_text(json.dumps({"workspace_name": "ray-example", "local_path": str(folder / "ws"),
                                          "compute": {args.compute: {"type": "ray", "address": head.address}}}))
            os.environ["MLFLOW_WORKSPACE_CONFIG"] = str(config)
            print(f"Ray head at {head.address}; workspace config {config}")

        ws = Workspace.from_config()
        mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
        mlflow.set_experiment("train-mlflow-project-amlcompute")
        remote_env = {"COMPUTE": args.compute, "USE_CONDA": False}
        remote_run = mlflow.projects.run(uri=str(PROJECT), parameters={"alpha": 0.3},
                                         backend="azureml", backend_config=remote_env)
        run = mlflow.MlflowClient().get_run(remote_run.run_id)
        print(f"remote run {remote_run.run_id}: {remote_run.get_status()} on Ray job "
              f"{run.data.tags.get('ray.job_id')}; test_rmse={run.data.metrics.get('test_rmse'):.3f}")


if __name__ == "__main__":
    main()
